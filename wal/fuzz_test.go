package wal

import (
	"bytes"
	"reflect"
	"testing"
)

// The fuzz tests are seeded from testdata/ and the table cases. Their
// properties: nothing panics, and whatever a parser accepts prints back to
// something that parses to the same value.
//
//	go test -run='^$' -fuzz=FuzzClassify -fuzztime=20s ./wal/
//
// On a busy machine add -fuzzminimizetime=2s: the engine minimises every
// new interesting input for up to 60s by default, and the progress line
// shows "0/sec" meanwhile. Inputs that make a fuzz test fail belong in the
// table cases of the matching _test.go file, not in testdata/fuzz.

func FuzzParseSegmentName(f *testing.F) {
	for _, tc := range segmentNameCases {
		f.Add(tc.in)
	}
	for _, name := range testdataFileNames(f) {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, in string) {
		seg, err := ParseSegmentName(in)
		if err != nil {
			return
		}
		// Only PostgreSQL's own spelling is accepted, so it prints back as is.
		if s := seg.String(); s != in {
			t.Fatalf("ParseSegmentName(%q).String() = %q", in, s)
		}
		back, err := ParseSegmentName(seg.String())
		if err != nil || back != seg {
			t.Fatalf("ParseSegmentName(%q) = %+v, %v; want %+v", seg.String(), back, err, seg)
		}
		// Size-dependent arithmetic agrees with itself for every size the
		// name fits.
		for size := uint32(MinSegmentSize); size != 0 && size <= MaxSegmentSize; size <<= 1 {
			lsn, err := seg.StartLSN(size)
			if err != nil {
				if seg.Seg < segmentsPerLog(size) {
					t.Fatalf("StartLSN(%d) of %s: %v", size, seg, err)
				}
				continue
			}
			at, err := SegmentFromLSN(seg.Timeline, lsn, size)
			if err != nil || at != seg {
				t.Fatalf("SegmentFromLSN(%s, %d) = %s, %v; want %s", lsn, size, at, err, seg)
			}
			if next, err := seg.Next(size); err == nil {
				nextLSN, err := next.StartLSN(size)
				if err != nil || nextLSN != lsn+LSN(size) {
					t.Fatalf("Next(%d) of %s = %s starting at %s, %v; want start %s", size, seg, next, nextLSN, err, lsn+LSN(size))
				}
			}
		}
	})
}

func FuzzParseLSN(f *testing.F) {
	for _, tc := range lsnCases {
		f.Add(tc.in)
	}
	f.Add("0/4002D98") // the switchpoint in testdata/history/00000002.history
	f.Fuzz(func(t *testing.T, in string) {
		lsn, err := ParseLSN(in)
		if err != nil {
			return
		}
		back, err := ParseLSN(lsn.String())
		if err != nil || back != lsn {
			t.Fatalf("ParseLSN(%q) = %#x; ParseLSN(%q) = %#x, %v", in, uint64(lsn), lsn.String(), uint64(back), err)
		}
	})
}

func FuzzClassify(f *testing.F) {
	for _, tc := range classifyCases {
		f.Add(tc.in)
	}
	for _, name := range testdataFileNames(f) {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, in string) {
		fn, err := Classify(in)
		if err != nil {
			return
		}
		if s := fn.String(); s != in {
			t.Fatalf("Classify(%q).String() = %q", in, s)
		}
		back, err := Classify(fn.String())
		if err != nil || back != fn {
			t.Fatalf("Classify(%q) = %+v, %v; want %+v", fn.String(), back, err, fn)
		}
		if fn.Kind != KindTimelineHistory && fn.Timeline != fn.Segment.Timeline {
			t.Fatalf("Classify(%q): Timeline %d, Segment.Timeline %d", in, fn.Timeline, fn.Segment.Timeline)
		}
	})
}

func FuzzParseHistory(f *testing.F) {
	for _, tc := range historyCases {
		// Large seeds (the over-long line) make minimisation crawl; the
		// limit they test is covered by the table.
		if len(tc.in) <= 4096 {
			f.Add([]byte(tc.in))
		}
	}
	f.Add(readTestdata(f, "history", "00000002.history"))
	f.Fuzz(func(t *testing.T, in []byte) {
		entries, err := ParseHistory(bytes.NewReader(in))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := FormatHistory(&buf, entries); err != nil {
			t.Fatalf("FormatHistory of parsed %+v: %v", entries, err)
		}
		back, err := ParseHistory(&buf)
		if err != nil {
			t.Fatalf("ParseHistory(FormatHistory(%+v)): %v", entries, err)
		}
		if !reflect.DeepEqual(back, entries) {
			t.Fatalf("round trip = %+v, want %+v", back, entries)
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	for _, s := range okSegments(f) {
		f.Add(realHeaderBytes(f, s.path), s.name)
	}
	f.Add(headerBytes(headerFields{magic: 0xD118, bigEndian: true}), "000000010000000000000003")
	f.Add(headerBytes(headerFields{segSize: 1 << 30, pageAddr: 0x1_C0000000}), "000000010000000100000003")
	f.Add(make([]byte, HeaderSize-1), "000000010000000000000001")
	f.Fuzz(func(t *testing.T, in []byte, name string) {
		h, err := ReadHeader(bytes.NewReader(in))
		if err != nil {
			return
		}
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ReadHeader(bytes.NewReader(b))
		if err != nil || back != h {
			t.Fatalf("ReadHeader(MarshalBinary(%+v)) = %+v, %v", h, back, err)
		}
		// Check never panics, whatever the header and name hold, and
		// accepts only headers that agree with the name.
		seg, err := ParseSegmentName(name)
		if err != nil {
			seg = Segment{Timeline: h.Timeline, Log: uint32(h.PageAddr >> 32)}
			if h.SegmentSize != 0 {
				seg.Seg = uint32(uint64(uint32(h.PageAddr)) / uint64(h.SegmentSize))
			}
		}
		if h.Check(seg) == nil {
			start, err := seg.StartLSN(h.SegmentSize)
			if err != nil || start != h.PageAddr || h.Timeline > seg.Timeline || h.PGMajor == 0 {
				t.Fatalf("Check(%s) accepted %+v (start %s, %v)", seg, h, start, err)
			}
		}
	})
}
