package wal

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// historyCases are shared with FuzzParseHistory as seeds.
var historyCases = []struct {
	name    string
	in      string
	want    []HistoryEntry
	wantErr string // substring of the error; "" means no error
}{
	{name: "one entry", in: "1\t0/4002D98\tno recovery target specified\n",
		want: []HistoryEntry{{1, 0x4002D98, "no recovery target specified"}}},
	{name: "three generations", in: "1\t0/3000000\tno recovery target specified\n" +
		"2\t0/5000060\tbefore 2024-05-01 12:00:00+00\n" +
		"5\t1/A0000028\tat restore point \"before_upgrade\"\n",
		want: []HistoryEntry{
			{1, 0x3000000, "no recovery target specified"},
			{2, 0x5000060, "before 2024-05-01 12:00:00+00"},
			{5, 0x1_A0000028, `at restore point "before_upgrade"`},
		}},
	{name: "empty file", in: "", want: nil},
	{name: "comments and blank lines", in: "# a comment\n\n   \n\t# indented comment\n1\t0/3000000\treason\n",
		want: []HistoryEntry{{1, 0x3000000, "reason"}}},
	{name: "leading white space", in: "  1\t0/3000000\treason\n",
		want: []HistoryEntry{{1, 0x3000000, "reason"}}},
	{name: "no final newline", in: "1\t0/3000000\treason",
		want: []HistoryEntry{{1, 0x3000000, "reason"}}},
	{name: "CRLF", in: "1\t0/3000000\treason\r\n",
		want: []HistoryEntry{{1, 0x3000000, "reason"}}},
	{name: "trailing carriage returns, no newline (found by fuzzing)", in: "1\t0/0\t\r\r\r",
		want: []HistoryEntry{{1, 0, ""}}},
	{name: "no reason", in: "1\t0/3000000\n",
		want: []HistoryEntry{{1, 0x3000000, ""}}},
	{name: "empty reason", in: "1\t0/3000000\t\n",
		want: []HistoryEntry{{1, 0x3000000, ""}}},
	{name: "tab in reason kept", in: "1\t0/3000000\ta\tb\n",
		want: []HistoryEntry{{1, 0x3000000, "a\tb"}}},
	{name: "lower-case LSN", in: "1\t0/3a000000\tr\n",
		want: []HistoryEntry{{1, 0x3A000000, "r"}}},
	{name: "switchpoints may go back", in: "1\t0/5000000\tr\n2\t0/4000000\tr\n",
		want: []HistoryEntry{{1, 0x5000000, "r"}, {2, 0x4000000, "r"}}},

	{name: "hex timeline", in: "A\t0/3000000\tr\n", wantErr: "line 1: \"A\\t0/3000000\\tr\": want a decimal timeline ID first"},
	{name: "timeline zero", in: "0\t0/3000000\tr\n", wantErr: "timeline 0 is not valid"},
	{name: "timeline too big", in: "4294967296\t0/3000000\tr\n", wantErr: "want a decimal timeline ID"},
	{name: "negative timeline", in: "-1\t0/3000000\tr\n", wantErr: "want a decimal timeline ID"},
	{name: "missing LSN", in: "1\n", wantErr: "want a tab and a switchpoint LSN"},
	{name: "space instead of tab", in: "1 0/3000000 r\n", wantErr: "want a decimal timeline ID"},
	{name: "bad LSN", in: "1\t0-3000000\tr\n", wantErr: "switchpoint: invalid LSN"},
	{name: "timelines not increasing", in: "2\t0/3000000\tr\n2\t0/4000000\tr\n",
		wantErr: "line 2: timeline 2 does not follow timeline 2: timelines must be increasing"},
	{name: "timelines decreasing", in: "1\t0/3000000\tr\n3\t0/4000000\tr\n# c\n2\t0/5000000\tr\n",
		wantErr: "line 4: timeline 2 does not follow timeline 3"},
	{name: "line too long", in: "1\t0/3000000\t" + strings.Repeat("x", maxHistoryLine) + "\n", wantErr: "line longer than"},
}

func TestParseHistory(t *testing.T) {
	for _, tc := range historyCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHistory(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseHistory = %+v, want error containing %q", got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHistory: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseHistory = %+v, want %+v", got, tc.want)
			}
			var buf bytes.Buffer
			if err := FormatHistory(&buf, got); err != nil {
				t.Fatalf("FormatHistory: %v", err)
			}
			back, err := ParseHistory(&buf)
			if err != nil {
				t.Fatalf("ParseHistory(FormatHistory): %v", err)
			}
			if !reflect.DeepEqual(back, got) {
				t.Errorf("round trip = %+v, want %+v", back, got)
			}
		})
	}
}

// TestHistoryTestdata reads the history file PostgreSQL 15 wrote when a
// standby was promoted, and writes it back byte for byte.
func TestHistoryTestdata(t *testing.T) {
	raw := readTestdata(t, "history", "00000002.history")
	got, err := ParseHistory(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []HistoryEntry{{Timeline: 1, SwitchPoint: 0x4002D98, Reason: "no recovery target specified"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseHistory = %+v, want %+v", got, want)
	}
	if err := CheckHistory(2, got); err != nil {
		t.Errorf("CheckHistory(2): %v", err)
	}
	var buf bytes.Buffer
	if err := FormatHistory(&buf, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Errorf("FormatHistory = %q, want PostgreSQL's %q", buf.Bytes(), raw)
	}
}

func TestFormatHistoryRefuses(t *testing.T) {
	tests := []struct {
		name    string
		in      []HistoryEntry
		wantErr string
	}{
		{name: "timeline zero", in: []HistoryEntry{{0, 1, "r"}}, wantErr: "timeline 0 is not valid"},
		{name: "not increasing", in: []HistoryEntry{{2, 1, "r"}, {1, 2, "r"}}, wantErr: "timeline 1 does not follow timeline 2"},
		{name: "newline in reason", in: []HistoryEntry{{1, 1, "a\nb"}}, wantErr: "contains a line break"},
		{name: "reason ends in CR", in: []HistoryEntry{{1, 1, "a\r"}}, wantErr: "contains a line break"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := FormatHistory(&buf, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("FormatHistory error = %v, want it to contain %q", err, tc.wantErr)
			}
			if buf.Len() != 0 {
				t.Errorf("FormatHistory wrote %q before failing, want nothing", buf.String())
			}
		})
	}
}

func TestFormatHistoryWriteError(t *testing.T) {
	errBoom := errors.New("boom")
	err := FormatHistory(failingWriter{errBoom}, []HistoryEntry{{1, 1, "r"}})
	if !errors.Is(err, errBoom) {
		t.Errorf("FormatHistory error = %v, want %v", err, errBoom)
	}
}

func TestParseHistoryReadError(t *testing.T) {
	errDisk := errors.New("disk on fire")
	_, err := ParseHistory(io.MultiReader(strings.NewReader("1\t0/3000000\tr\n"), errReader{errDisk}))
	if !errors.Is(err, errDisk) {
		t.Errorf("ParseHistory error = %v, want it to wrap %v", err, errDisk)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestCheckHistory(t *testing.T) {
	entries := []HistoryEntry{{1, 0x3000000, "r"}, {2, 0x5000000, "r"}}
	tests := []struct {
		name    string
		tli     TimelineID
		in      []HistoryEntry
		wantErr string
	}{
		{name: "child of last", tli: 3, in: entries},
		{name: "later descendant", tli: 7, in: entries},
		{name: "no entries", tli: 2, in: nil},
		{name: "lists itself", tli: 2, in: entries, wantErr: "history of timeline 2 lists timeline 2"},
		{name: "lists a newer timeline", tli: 1, in: entries, wantErr: "history of timeline 1 lists timeline 2"},
		{name: "timeline zero", tli: 0, in: nil, wantErr: "timeline 0 is not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckHistory(tc.tli, tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("CheckHistory = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("CheckHistory error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
