package wal

import (
	"errors"
	"strings"
	"testing"
)

// segmentNameCases are shared with FuzzParseSegmentName as seeds.
var segmentNameCases = []struct {
	name    string
	in      string
	want    Segment
	wantErr string // substring of the error; "" means no error
}{
	{name: "first segment", in: "000000010000000000000001", want: Segment{1, 0, 1}},
	{name: "high timeline and log", in: "0000000A000000FF000000FE", want: Segment{10, 0xFF, 0xFE}},
	{name: "max values", in: "FFFFFFFFFFFFFFFFFFFFFFFF", want: Segment{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}},
	{name: "segment zero", in: "000000010000000000000000", want: Segment{1, 0, 0}},
	{name: "empty", in: "", wantErr: "want 24 hex digits"},
	{name: "too short", in: "00000001000000000000001", wantErr: "got 23 characters"},
	{name: "too long", in: "0000000100000000000000011", wantErr: "got 25 characters"},
	{name: "lower case", in: "0000000100000000000000a1", wantErr: "lower-case hex digit 'a' at offset 22 (PostgreSQL writes upper case)"},
	{name: "not hex", in: "00000001000000000000000G", wantErr: "invalid character 'G' at offset 23"},
	{name: "timeline zero", in: "000000000000000000000001", wantErr: "timeline 0 is not valid"},
	{name: "bad timeline part", in: "x00000010000000000000001", wantErr: "invalid character 'x' at offset 0"},
	{name: "bad log part", in: "0000000100000G0000000001", wantErr: "invalid character 'G' at offset 13"},
	{name: "partial is not a segment", in: "000000010000000000000001.partial", wantErr: "want 24 hex digits"},
	{name: "space", in: "00000001 000000000000001", wantErr: "invalid character ' '"},
	{name: "non-ASCII", in: "00000001000000000000000\xc3", wantErr: "invalid byte 0xC3 at offset 23"},
}

func TestParseSegmentName(t *testing.T) {
	for _, tc := range segmentNameCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSegmentName(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseSegmentName(%q) = %+v, want error containing %q", tc.in, got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
				}
				if !errors.Is(err, ErrNotWALName) {
					t.Errorf("errors.Is(%v, ErrNotWALName) = false, want true", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSegmentName(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseSegmentName(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want %q", s, tc.in)
			}
		})
	}
}

func TestParseSegmentNameErrorMessage(t *testing.T) {
	_, err := ParseSegmentName("00000001000000000000000a")
	const want = `not a WAL segment name: "00000001000000000000000a": lower-case hex digit 'a' at offset 23 (PostgreSQL writes upper case)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestValidateSegmentSize(t *testing.T) {
	tests := []struct {
		name    string
		in      uint32
		wantErr bool
	}{
		{name: "1 MiB", in: 1 << 20},
		{name: "16 MiB default", in: 16 << 20},
		{name: "1 GiB", in: 1 << 30},
		{name: "zero", in: 0, wantErr: true},
		{name: "512 KiB", in: 512 << 10, wantErr: true},
		{name: "2 GiB", in: 1 << 31, wantErr: true},
		{name: "not a power of two", in: 3 << 20, wantErr: true},
		{name: "one byte off", in: 16<<20 + 1, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateSegmentSize(tc.in)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Errorf("ValidateSegmentSize(%d) = %v, want error: %v", tc.in, err, tc.wantErr)
			}
		})
	}
}

func TestSegmentLSN(t *testing.T) {
	tests := []struct {
		name     string
		seg      string
		segSize  uint32
		wantLSN  string
		wantNext string
		wantErr  string
	}{
		{name: "16 MiB", seg: "000000010000000000000003", segSize: 16 << 20, wantLSN: "0/3000000", wantNext: "000000010000000000000004"},
		{name: "16 MiB last in log", seg: "0000000100000000000000FF", segSize: 16 << 20, wantLSN: "0/FF000000", wantNext: "000000010000000100000000"},
		{name: "16 MiB second log", seg: "000000020000001600000017", segSize: 16 << 20, wantLSN: "16/17000000", wantNext: "000000020000001600000018"},
		{name: "1 MiB", seg: "000000010000000000000FFF", segSize: 1 << 20, wantLSN: "0/FFF00000", wantNext: "000000010000000100000000"},
		{name: "1 GiB", seg: "000000010000000500000003", segSize: 1 << 30, wantLSN: "5/C0000000", wantNext: "000000010000000600000000"},
		{name: "64 MiB", seg: "000000010000000000000002", segSize: 64 << 20, wantLSN: "0/8000000", wantNext: "000000010000000000000003"},
		{name: "out of range for 16 MiB", seg: "000000010000000000000100", segSize: 16 << 20,
			wantErr: "segment 000000010000000000000100: segment number 00000100 is out of range for 16 MiB segments (the last in each log is 000000FF)"},
		{name: "out of range for 1 GiB", seg: "000000010000000000000004", segSize: 1 << 30, wantErr: "out of range for 1 GiB segments (the last in each log is 00000003)"},
		{name: "bad size", seg: "000000010000000000000001", segSize: 3 << 20, wantErr: "invalid WAL segment size 3145728"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seg, err := ParseSegmentName(tc.seg)
			if err != nil {
				t.Fatal(err)
			}
			lsn, err := seg.StartLSN(tc.segSize)
			_, nextErr := seg.Next(tc.segSize)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("StartLSN error = %v, want it to contain %q", err, tc.wantErr)
				}
				if nextErr == nil || !strings.Contains(nextErr.Error(), tc.wantErr) {
					t.Errorf("Next error = %v, want it to contain %q", nextErr, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("StartLSN: %v", err)
			}
			if got := lsn.String(); got != tc.wantLSN {
				t.Errorf("StartLSN = %s, want %s", got, tc.wantLSN)
			}
			next, err := seg.Next(tc.segSize)
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if got := next.String(); got != tc.wantNext {
				t.Errorf("Next = %s, want %s", got, tc.wantNext)
			}
			// The segment holding its own first byte, and its last byte, is itself.
			for _, at := range []LSN{lsn, lsn + LSN(tc.segSize) - 1} {
				back, err := SegmentFromLSN(seg.Timeline, at, tc.segSize)
				if err != nil {
					t.Fatalf("SegmentFromLSN(%s): %v", at, err)
				}
				if back != seg {
					t.Errorf("SegmentFromLSN(%d, %s) = %s, want %s", seg.Timeline, at, back, seg)
				}
			}
			// And the byte after it is in the next segment.
			after, err := SegmentFromLSN(seg.Timeline, lsn+LSN(tc.segSize), tc.segSize)
			if err != nil {
				t.Fatal(err)
			}
			if after != next {
				t.Errorf("SegmentFromLSN(end) = %s, want Next = %s", after, next)
			}
		})
	}
}

func TestSegmentFromLSN(t *testing.T) {
	tests := []struct {
		name    string
		tli     TimelineID
		lsn     string
		segSize uint32
		want    string
		wantErr bool
	}{
		{name: "postgres docs example", tli: 1, lsn: "16/B374D848", segSize: 16 << 20, want: "0000000100000016000000B3"},
		{name: "real switchpoint", tli: 2, lsn: "0/4002D98", segSize: 16 << 20, want: "000000020000000000000004"},
		{name: "1 GiB", tli: 1, lsn: "16/B374D848", segSize: 1 << 30, want: "000000010000001600000002"},
		{name: "1 MiB", tli: 3, lsn: "16/B374D848", segSize: 1 << 20, want: "000000030000001600000B37"},
		{name: "max LSN", tli: 1, lsn: "FFFFFFFF/FFFFFFFF", segSize: 16 << 20, want: "00000001FFFFFFFF000000FF"},
		{name: "timeline zero", tli: 0, lsn: "0/1", segSize: 16 << 20, wantErr: true},
		{name: "bad size", tli: 1, lsn: "0/1", segSize: 0, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lsn, err := ParseLSN(tc.lsn)
			if err != nil {
				t.Fatal(err)
			}
			got, err := SegmentFromLSN(tc.tli, lsn, tc.segSize)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("SegmentFromLSN = %s, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("SegmentFromLSN(%d, %s, %d) = %s, want %s", tc.tli, tc.lsn, tc.segSize, got, tc.want)
			}
		})
	}
}

func TestSegmentNextEndOfAddressSpace(t *testing.T) {
	seg := Segment{Timeline: 1, Log: 0xFFFFFFFF, Seg: 0xFF}
	got, err := seg.Next(16 << 20)
	if err == nil {
		t.Fatalf("Next() = %s, want error", got)
	}
	const want = "segment 00000001FFFFFFFF000000FF: no segment follows it, it ends the WAL address space"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestSegmentValidateTimelineZero(t *testing.T) {
	if err := (Segment{Log: 0, Seg: 1}).Validate(16 << 20); err == nil {
		t.Error("Validate of timeline 0 = nil, want error")
	}
}
