package wal

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestHeaderTestdata reads the real PostgreSQL 15 segments in
// testdata/segments/ok: every header must decode to what the server
// reported and pass Check against its own file name.
func TestHeaderTestdata(t *testing.T) {
	// sha256 of the raw (decompressed) segments, recorded when they were
	// made; a mismatch means testdata was damaged.
	wantSHA := map[string]string{
		"000000010000000000000002":         "b47c33500da1cd33debe0cd30590048151a646dd863263432904730c4f9907b3",
		"000000020000000000000004":         "8ab67369b2abed95a07aa49b25c5a2397ac2f3d2785cdf2236120c0551dbbd4f",
		"000000010000000000000004.partial": "98f570b54db35a48aea27fed1731b468e224429b2bcc64e3efae226cf820c5ec",
	}
	// The header timeline is the timeline of the page's first record: the
	// first segment of timeline 2 starts with timeline 1's WAL.
	wantTimeline := map[string]TimelineID{
		"000000010000000000000002":         1,
		"000000020000000000000004":         1,
		"000000010000000000000004.partial": 1,
	}
	for _, s := range okSegments(t) {
		t.Run(s.name, func(t *testing.T) {
			f, err := Classify(s.name)
			if err != nil {
				t.Fatal(err)
			}
			if f.Kind != KindSegment && f.Kind != KindPartial {
				t.Fatalf("Kind = %v, want a segment or partial segment", f.Kind)
			}
			r := openSegment(t, s.path)
			h, err := ReadHeader(r)
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			wantAddr, err := f.Segment.StartLSN(realSegmentSize)
			if err != nil {
				t.Fatal(err)
			}
			want := Header{
				Magic:       0xD110,
				PGMajor:     15,
				Info:        0x0006, // XLP_LONG_HEADER | XLP_BKP_REMOVABLE
				Timeline:    wantTimeline[s.name],
				PageAddr:    wantAddr,
				SystemID:    realSystemID,
				SegmentSize: realSegmentSize,
				BlockSize:   realBlockSize,
			}
			if h != want {
				t.Errorf("ReadHeader = %+v, want %+v", h, want)
			}
			if err := h.Check(f.Segment); err != nil {
				t.Errorf("Check(%s): %v", f.Segment, err)
			}

			// ReadHeader consumed exactly HeaderSize bytes: the rest of the
			// stream completes the segment.
			sum := sha256.New()
			first, _ := h.MarshalBinary()
			sum.Write(first)
			n, err := io.Copy(sum, r)
			if err != nil {
				t.Fatal(err)
			}
			if got := n + HeaderSize; got != int64(h.SegmentSize) {
				t.Errorf("segment is %d bytes, want header's segment size %d", got, h.SegmentSize)
			}
			if got := hex.EncodeToString(sum.Sum(nil)); got != wantSHA[s.name] {
				t.Errorf("sha256 of header as re-encoded + rest = %s, want %s", got, wantSHA[s.name])
			}
		})
	}
}

// TestHeaderCases checks ReadHeader and Check on headers derived from a
// real segment's (patched bytes) and on headers built from scratch.
func TestHeaderCases(t *testing.T) {
	pg15 := realHeaderBytes(t, "testdata/segments/ok/000000010000000000000002.gz")
	le16 := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	le64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

	tests := []struct {
		name         string
		in           []byte
		seg          string // the name to Check against
		wantReadErr  string // substring of ReadHeader's error
		wantCheckErr string // substring of Check's error
		check        func(t *testing.T, h Header)
	}{
		{name: "ok", in: pg15, seg: "000000010000000000000002"},
		{name: "ok with trailing data", in: append(bytes.Clone(pg15), make([]byte, 8192)...), seg: "000000010000000000000002"},
		{name: "wrong page address", in: pg15, seg: "000000010000000000000003",
			wantCheckErr: "segment 000000010000000000000003: header page address 0/2000000, file name says 0/3000000"},
		{name: "wrong log", in: pg15, seg: "000000010000000100000002",
			wantCheckErr: "segment 000000010000000100000002: header page address 0/2000000, file name says 1/2000000"},
		{name: "header timeline newer than name", in: patch(pg15, 4, le32(2)), seg: "000000010000000000000002",
			wantCheckErr: "segment 000000010000000000000002: header timeline 2, file name says 1"},
		{name: "header timeline older than name (timeline switch)", in: pg15, seg: "000000030000000000000002"},
		{name: "header timeline zero", in: patch(pg15, 4, le32(0)), seg: "000000010000000000000002",
			wantCheckErr: "header timeline 0 is not valid"},
		{name: "name timeline zero", in: pg15, seg: "", wantCheckErr: "file name timeline 0 is not valid"},
		{name: "PostgreSQL 14 magic", in: patch(pg15, 0, le16(0xD10D)), seg: "000000010000000000000002",
			wantCheckErr: "segment 000000010000000000000002: unknown WAL page magic 0xD10D: walvault supports PostgreSQL 15 (0xD110), 16 (0xD113), 17 (0xD116) and 18 (0xD118)",
			check: func(t *testing.T, h Header) {
				if h.PGMajor != 0 {
					t.Errorf("PGMajor = %d, want 0 for unknown magic", h.PGMajor)
				}
			}},
		{name: "PostgreSQL 17 development magic", in: patch(pg15, 0, le16(0xD114)), seg: "000000010000000000000002",
			wantCheckErr: "unknown WAL page magic 0xD114"},
		{name: "garbage", in: bytes.Repeat([]byte{0xFF}, HeaderSize), seg: "000000010000000000000002",
			wantCheckErr: "unknown WAL page magic 0xFFFF"},
		{name: "zeros", in: make([]byte, HeaderSize), seg: "000000010000000000000002",
			wantCheckErr: "unknown WAL page magic 0x0000"},
		{name: "big-endian magic", in: patch(pg15, 0, []byte{0xD1, 0x10}), seg: "000000010000000000000002",
			wantReadErr: "big-endian segment not supported: page magic reads 0x10D1, which is PostgreSQL 15's 0xD110 byte-swapped"},
		{name: "big-endian PostgreSQL 18", in: headerBytes(headerFields{magic: 0xD118, bigEndian: true}), seg: "000000010000000000000003",
			wantReadErr: "PostgreSQL 18's 0xD118 byte-swapped"},
		{name: "missing long header flag", in: patch(pg15, 2, le16(0x0004)), seg: "000000010000000000000002",
			wantCheckErr: "segment 000000010000000000000002: first page has no long header (xlp_info 0x0004 lacks XLP_LONG_HEADER 0x0002): not the start of a WAL segment"},
		{name: "no flags at all", in: headerBytes(headerFields{noInfo: true}), seg: "000000010000000000000003",
			wantCheckErr: "first page has no long header (xlp_info 0x0000"},
		{name: "unknown flag", in: patch(pg15, 2, le16(0x0012)), seg: "000000010000000000000002",
			wantCheckErr: "invalid xlp_info bits 0x0010 (PostgreSQL 15 defines 0x000F)"},
		{name: "continuation record on first page", in: patch(patch(pg15, 2, le16(0x0007)), 16, le32(1234)), seg: "000000010000000000000002",
			check: func(t *testing.T, h Header) {
				if h.RemLen != 1234 {
					t.Errorf("RemLen = %d, want 1234", h.RemLen)
				}
			}},
		{name: "segment size not a power of two", in: patch(pg15, 32, le32(3<<20)), seg: "000000010000000000000002",
			wantCheckErr: "segment 000000010000000000000002: header segment size 3145728 is invalid: want a power of two between 1 MiB and 1 GiB"},
		{name: "segment size zero", in: patch(pg15, 32, le32(0)), seg: "000000010000000000000002",
			wantCheckErr: "header segment size 0 is invalid"},
		{name: "name out of range for header's segment size", in: headerBytes(headerFields{segSize: 1 << 30, pageAddr: 0x100000000}), seg: "000000010000000100000004",
			wantCheckErr: "segment 000000010000000100000004: segment number 00000004 is out of range for the header's segment size 1 GiB (the last in each log is 00000003)"},
		{name: "1 GiB segments", in: headerBytes(headerFields{segSize: 1 << 30, pageAddr: 0x1_C0000000}), seg: "000000010000000100000003"},
		{name: "1 MiB segments", in: headerBytes(headerFields{segSize: 1 << 20, pageAddr: 0x300000}), seg: "000000010000000000000003"},
		{name: "block size zero", in: patch(pg15, 36, le32(0)), seg: "000000010000000000000002",
			wantCheckErr: "header block size 0 is invalid: want a power of two between 1 KiB and 64 KiB"},
		{name: "block size 3000", in: patch(pg15, 36, le32(3000)), seg: "000000010000000000000002",
			wantCheckErr: "header block size 3000 is invalid"},
		{name: "block size 128 KiB", in: patch(pg15, 36, le32(128<<10)), seg: "000000010000000000000002",
			wantCheckErr: "header block size 131072 is invalid"},
		{name: "block size 32 KiB", in: headerBytes(headerFields{blockSize: 32 << 10}), seg: "000000010000000000000003"},
		{name: "other system identifier decodes (compared by the caller)", in: patch(pg15, 24, le64(42)), seg: "000000010000000000000002",
			check: func(t *testing.T, h Header) {
				if h.SystemID != 42 {
					t.Errorf("SystemID = %d, want 42", h.SystemID)
				}
			}},
		{name: "PostgreSQL 16", in: headerBytes(headerFields{magic: 0xD113}), seg: "000000010000000000000003",
			check: func(t *testing.T, h Header) { wantMajor(t, h, 16) }},
		{name: "PostgreSQL 17", in: headerBytes(headerFields{magic: 0xD116}), seg: "000000010000000000000003",
			check: func(t *testing.T, h Header) { wantMajor(t, h, 17) }},
		{name: "PostgreSQL 18", in: headerBytes(headerFields{magic: 0xD118, tli: 7, pageAddr: 0x16_B3000000}), seg: "0000000700000016000000B3",
			check: func(t *testing.T, h Header) { wantMajor(t, h, 18) }},
		{name: "empty file", in: nil, wantReadErr: "WAL segment header: file too short: got 0 of 40 bytes"},
		{name: "one byte", in: pg15[:1], wantReadErr: "file too short: got 1 of 40 bytes"},
		{name: "short header only (24 bytes)", in: pg15[:24], wantReadErr: "file too short: got 24 of 40 bytes"},
		{name: "one byte short", in: pg15[:HeaderSize-1], wantReadErr: "file too short: got 39 of 40 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			h, err := ReadHeader(r)
			if tc.wantReadErr != "" {
				if err == nil {
					t.Fatalf("ReadHeader = %+v, want error containing %q", h, tc.wantReadErr)
				}
				if !strings.Contains(err.Error(), tc.wantReadErr) {
					t.Errorf("ReadHeader error = %q, want it to contain %q", err, tc.wantReadErr)
				}
				if !errors.Is(err, ErrInvalidHeader) {
					t.Errorf("errors.Is(%v, ErrInvalidHeader) = false, want true", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if left := r.Len(); left != len(tc.in)-HeaderSize {
				t.Errorf("ReadHeader left %d bytes unread, want %d", left, len(tc.in)-HeaderSize)
			}
			if tc.check != nil {
				tc.check(t, h)
			}
			var seg Segment
			if tc.seg != "" {
				if seg, err = ParseSegmentName(tc.seg); err != nil {
					t.Fatal(err)
				}
			}
			err = h.Check(seg)
			if tc.wantCheckErr == "" {
				if err != nil {
					t.Errorf("Check(%s): %v", seg, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) = nil, want error containing %q", seg, tc.wantCheckErr)
			}
			if !strings.Contains(err.Error(), tc.wantCheckErr) {
				t.Errorf("Check error = %q, want it to contain %q", err, tc.wantCheckErr)
			}
			if !errors.Is(err, ErrInvalidHeader) {
				t.Errorf("errors.Is(%v, ErrInvalidHeader) = false, want true", err)
			}
		})
	}
}

func wantMajor(t *testing.T, h Header, major int) {
	t.Helper()
	if h.PGMajor != major {
		t.Errorf("PGMajor = %d, want %d (magic 0x%04X)", h.PGMajor, major, h.Magic)
	}
}

func TestReadHeaderShortIsUnexpectedEOF(t *testing.T) {
	_, err := ReadHeader(bytes.NewReader(make([]byte, 10)))
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrInvalidHeader) {
		t.Errorf("error = %v, want it to wrap io.ErrUnexpectedEOF and ErrInvalidHeader", err)
	}
}

func TestReadHeaderReadError(t *testing.T) {
	errDisk := errors.New("disk on fire")
	_, err := ReadHeader(io.MultiReader(bytes.NewReader(make([]byte, 8)), errReader{errDisk}))
	if !errors.Is(err, errDisk) {
		t.Errorf("error = %v, want it to wrap %v", err, errDisk)
	}
	if errors.Is(err, ErrInvalidHeader) {
		t.Errorf("error = %v: a read failure is not an invalid header", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestCheckByteSwappedMagic covers a Header built in code rather than
// read: Check still names the byte order.
func TestCheckByteSwappedMagic(t *testing.T) {
	h := Header{Magic: 0x10D1, Info: xlpLongHeader, Timeline: 1, PageAddr: 0x3000000, SegmentSize: 16 << 20, BlockSize: 8192}
	err := h.Check(Segment{1, 0, 3})
	if err == nil || !strings.Contains(err.Error(), "big-endian segment not supported (page magic 0x10D1 is byte-swapped)") {
		t.Errorf("Check error = %v, want big-endian", err)
	}
}

func TestMarshalBinaryRoundTrip(t *testing.T) {
	for _, s := range okSegments(t) {
		t.Run(s.name, func(t *testing.T) {
			raw := realHeaderBytes(t, s.path)
			h, err := ReadHeader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) {
				t.Errorf("MarshalBinary = %x, want PostgreSQL's %x", got, raw)
			}
		})
	}
}
