package retention

import (
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Policy
		wantErr string
	}{
		{"redundancy", "REDUNDANCY 2", Policy{Redundancy, 2}, ""},
		{"redundancy lower case", "redundancy 7", Policy{Redundancy, 7}, ""},
		{"redundancy spaces", "  Redundancy \t 1  ", Policy{Redundancy, 1}, ""},
		{"window", "RECOVERY WINDOW OF 7 DAYS", Policy{RecoveryWindow, 7}, ""},
		{"window one day", "recovery window of 1 day", Policy{RecoveryWindow, 1}, ""},
		{"window spaces", "RECOVERY   WINDOW OF  30   Days", Policy{RecoveryWindow, 30}, ""},
		{"redundancy 0", "REDUNDANCY 0", Policy{}, "at least 1"},
		{"redundancy negative", "REDUNDANCY -1", Policy{}, "at least 1"},
		{"redundancy word", "REDUNDANCY two", Policy{}, "whole number"},
		{"redundancy huge", "REDUNDANCY 99999999999999999999", Policy{}, "too large"},
		{"window 0", "RECOVERY WINDOW OF 0 DAYS", Policy{}, "at least 1"},
		{"window negative", "RECOVERY WINDOW OF -3 DAYS", Policy{}, "at least 1"},
		{"window too long", "RECOVERY WINDOW OF 40000 DAYS", Policy{}, "too large"},
		{"window fraction", "RECOVERY WINDOW OF 1.5 DAYS", Policy{}, "whole number"},
		{"window weeks", "RECOVERY WINDOW OF 2 WEEKS", Policy{}, "RECOVERY WINDOW OF n DAYS"},
		{"empty", "", Policy{}, "empty"},
		{"no number", "REDUNDANCY", Policy{}, "REDUNDANCY n"},
		{"extra word", "REDUNDANCY 2 BACKUPS", Policy{}, "REDUNDANCY n"},
		{"unknown", "KEEP EVERYTHING", Policy{}, "REDUNDANCY n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePolicy(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePolicy(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				// Every error names both accepted forms.
				for _, form := range []string{"REDUNDANCY n", "RECOVERY WINDOW OF n DAYS"} {
					if !strings.Contains(err.Error(), form) {
						t.Errorf("error %q does not name %q", err, form)
					}
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePolicy(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			back, err := ParsePolicy(got.String())
			if err != nil || back != got {
				t.Fatalf("round trip of %v via %q: %v, %v", got, got.String(), back, err)
			}
		})
	}
}
