package pg

import (
	"strings"
	"testing"
	"time"
)

func TestCheckVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		num  int
		want []string // nil: supported
	}{
		{140011, []string{"PostgreSQL 14.11 is too old", "15 or later"}},
		{150000, nil},
		{160014, nil},
		{170010, nil},
		{180004, nil},
		{190000, []string{"PostgreSQL 19.0 is not supported", "PostgreSQL 15 to 18", "supports PostgreSQL 19"}},
	} {
		err := CheckVersion(tc.num)
		if tc.want == nil {
			if err != nil {
				t.Errorf("CheckVersion(%d) = %v, want nil", tc.num, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("CheckVersion(%d) = nil, want a refusal", tc.num)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "\n") {
				t.Errorf("CheckVersion(%d) = %q, want one line containing %q", tc.num, err, w)
			}
		}
	}
}

func TestVersionNumOf(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{
		"18.4":                             180004,
		"15.10 (Debian 15.10-1.pgdg120+1)": 150010,
		"19devel":                          190000,
		"17beta2":                          170000,
		"":                                 0,
		"PostgreSQL":                       0,
	} {
		if got := VersionNumOf(in); got != want {
			t.Errorf("VersionNumOf(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestClockOffset(t *testing.T) {
	sent := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	answered := sent.Add(10 * time.Millisecond)
	for _, tc := range []struct {
		name   string
		server time.Time
		want   time.Duration
	}{
		{"same clock", sent.Add(5 * time.Millisecond), 0},
		{"within the round trip", sent.Add(9 * time.Millisecond), 0},
		{"server 5 minutes behind", sent.Add(5*time.Millisecond - 5*time.Minute), -5 * time.Minute},
		{"server 2 seconds ahead", sent.Add(5*time.Millisecond + 2*time.Second), 2 * time.Second},
	} {
		off, unc := ClockOffset(sent, answered, tc.server)
		if off != tc.want || unc != 5*time.Millisecond {
			t.Errorf("%s: offset %v ± %v, want %v ± 5ms", tc.name, off, unc, tc.want)
		}
	}
}
