package wal

import (
	"errors"
	"strings"
	"testing"
)

// classifyCases are shared with FuzzClassify as seeds.
var classifyCases = []struct {
	name    string
	in      string
	want    FileName
	wantErr string // substring of the error; "" means no error
}{
	{name: "segment", in: "000000010000000000000001",
		want: FileName{Kind: KindSegment, Timeline: 1, Segment: Segment{1, 0, 1}}},
	{name: "partial", in: "000000010000000000000004.partial",
		want: FileName{Kind: KindPartial, Timeline: 1, Segment: Segment{1, 0, 4}}},
	{name: "backup history", in: "000000010000000000000003.00000028.backup",
		want: FileName{Kind: KindBackupHistory, Timeline: 1, Segment: Segment{1, 0, 3}, Offset: 0x28}},
	{name: "timeline history", in: "00000002.history",
		want: FileName{Kind: KindTimelineHistory, Timeline: 2}},
	{name: "timeline 1 history (PostgreSQL never writes it, but may ask for it)", in: "00000001.history",
		want: FileName{Kind: KindTimelineHistory, Timeline: 1}},
	{name: "high timeline history", in: "FFFFFFFF.history",
		want: FileName{Kind: KindTimelineHistory, Timeline: 0xFFFFFFFF}},

	{name: "empty", in: "", wantErr: `not a WAL file name: "": empty`},
	{name: "path", in: "pg_wal/000000010000000000000001", wantErr: "contains a path separator; pass the file's base name (%f), not its path"},
	{name: "windows path", in: `pg_wal\000000010000000000000001`, wantErr: "contains a path separator"},
	{name: "lower-case segment", in: "0000000100000000000000ab", wantErr: "lower-case hex digit 'a' at offset 22 (PostgreSQL writes upper case)"},
	{name: "lower-case history", in: "0000000a.history", wantErr: "lower-case hex digit 'a' at offset 7"},
	{name: "lower-case backup offset", in: "000000010000000000000003.0000002a.backup", wantErr: "lower-case hex digit 'a' at offset 32"},
	{name: "upper-case suffix", in: "000000010000000000000001.PARTIAL", wantErr: "want a segment (24 hex digits)"},
	{name: "timeline 0 segment", in: "000000000000000000000001", wantErr: "timeline 0 is not valid"},
	{name: "timeline 0 history", in: "00000000.history", wantErr: "timeline 0 is not valid"},
	{name: "timeline 0 partial", in: "000000000000000000000001.partial", wantErr: "timeline 0 is not valid"},
	{name: "short segment", in: "00000001000000000000001", wantErr: "want a segment"},
	{name: "backup offset too short", in: "000000010000000000000003.0028.backup", wantErr: "want a segment"},
	{name: "lower-case backup segment", in: "00000001000000000000000a.00000028.backup", wantErr: "lower-case hex digit 'a' at offset 23"},
	{name: "backup offset not hex", in: "000000010000000000000003.0000002G.backup", wantErr: "invalid character 'G' at offset 32"},
	{name: "backup without dot", in: "000000010000000000000003X00000028.backup", wantErr: "want a segment"},
	{name: "ready status file", in: "000000010000000000000001.ready", wantErr: "want a segment"},
	{name: "done status file", in: "000000010000000000000001.done", wantErr: "want a segment"},
	{name: "compressed segment", in: "000000010000000000000001.gz", wantErr: "want a segment"},
	{name: "history with long timeline", in: "000000002.history", wantErr: "want a segment"},
	{name: "RECOVERYXLOG", in: "RECOVERYXLOG", wantErr: "want a segment"},
	{name: "trailing newline", in: "000000010000000000000001\n", wantErr: "want a segment"},
	{name: "dot", in: ".", wantErr: "want a segment"},
}

func TestClassify(t *testing.T) {
	for _, tc := range classifyCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Classify(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Classify(%q) = %+v, want error containing %q", tc.in, got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "not a WAL file name: ") {
					t.Errorf("error = %q, want prefix %q", err, "not a WAL file name: ")
				}
				if !errors.Is(err, ErrNotWALName) {
					t.Errorf("errors.Is(%v, ErrNotWALName) = false, want true", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Classify(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("Classify(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want %q", s, tc.in)
			}
		})
	}
}

// TestClassifyTestdata classifies the names of the real files PostgreSQL
// 15 wrote: each must be recognised and print back unchanged.
func TestClassifyTestdata(t *testing.T) {
	want := map[string]Kind{
		"000000010000000000000002":                 KindSegment,
		"000000020000000000000004":                 KindSegment,
		"000000010000000000000004.partial":         KindPartial,
		"00000002.history":                         KindTimelineHistory,
		"000000010000000000000003.00000028.backup": KindBackupHistory,
	}
	names := testdataFileNames(t)
	if len(names) != len(want) {
		t.Errorf("testdata holds %d WAL files %q, want %d", len(names), names, len(want))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			f, err := Classify(name)
			if err != nil {
				t.Fatal(err)
			}
			if f.Kind != want[name] {
				t.Errorf("Kind = %v, want %v", f.Kind, want[name])
			}
			if f.String() != name {
				t.Errorf("String() = %q, want %q", f.String(), name)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		in   Kind
		want string
	}{
		{KindSegment, "WAL segment"},
		{KindPartial, "partial WAL segment"},
		{KindBackupHistory, "backup history file"},
		{KindTimelineHistory, "timeline history file"},
		{Kind(0), "Kind(0)"},
	}
	for _, tc := range tests {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tc.in), got, tc.want)
		}
	}
	if got := (FileName{}).String(); got != "" {
		t.Errorf("zero FileName.String() = %q, want empty", got)
	}
}
