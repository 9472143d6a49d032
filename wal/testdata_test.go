package wal

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Facts about the real WAL in testdata/, recorded when it was made (see
// testdata/README.md): pg_control_system() reported this system
// identifier, and initdb used the default sizes.
const (
	realSystemID    = 7712040661191622168
	realSegmentSize = DefaultSegmentSize
	realBlockSize   = 8192
)

// realSegment is one file in testdata/segments/ok: its WAL file name, the
// path of its gzip-compressed copy and the sha256 of its raw bytes.
type realSegment struct {
	name string
	path string
}

// okSegments lists testdata/segments/ok/*.gz; each file is named after the
// WAL file it holds.
func okSegments(t testing.TB) []realSegment {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "segments", "ok", "*.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no segments in testdata/segments/ok")
	}
	var segs []realSegment
	for _, p := range paths {
		segs = append(segs, realSegment{name: strings.TrimSuffix(filepath.Base(p), ".gz"), path: p})
	}
	return segs
}

// openSegment opens a compressed testdata segment as a stream of its raw
// bytes.
func openSegment(t testing.TB, path string) io.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	t.Cleanup(func() { zr.Close() })
	return zr
}

// realHeaderBytes returns the first HeaderSize bytes of a testdata segment.
func realHeaderBytes(t testing.TB, path string) []byte {
	t.Helper()
	b := make([]byte, HeaderSize)
	if _, err := io.ReadFull(openSegment(t, path), b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// headerFields describes a segment header for headerBytes; the zero value
// of each field means "as PostgreSQL 15 writes it for segment
// 000000010000000000000003 with default sizes".
type headerFields struct {
	magic     uint16
	info      uint16
	tli       TimelineID
	pageAddr  LSN
	sysID     uint64
	segSize   uint32
	blockSize uint32
	bigEndian bool // write every field byte-swapped, as a big-endian server would
	noInfo    bool // write xlp_info 0 (info is otherwise defaulted to a long header)
}

// headerBytes builds a HeaderSize-byte segment header for edge cases, the
// way pgBackRest's test harness writes WAL headers per version.
func headerBytes(f headerFields) []byte {
	if f.magic == 0 {
		f.magic = 0xD110
	}
	if f.info == 0 && !f.noInfo {
		f.info = 0x0006 // XLP_LONG_HEADER | XLP_BKP_REMOVABLE, as in the real segments
	}
	if f.tli == 0 {
		f.tli = 1
	}
	if f.pageAddr == 0 {
		f.pageAddr = 0x3000000
	}
	if f.sysID == 0 {
		f.sysID = realSystemID
	}
	if f.segSize == 0 {
		f.segSize = DefaultSegmentSize
	}
	if f.blockSize == 0 {
		f.blockSize = 8192
	}
	var order binary.ByteOrder = binary.LittleEndian
	if f.bigEndian {
		order = binary.BigEndian
	}
	b := make([]byte, HeaderSize)
	order.PutUint16(b[0:2], f.magic)
	order.PutUint16(b[2:4], f.info)
	order.PutUint32(b[4:8], uint32(f.tli))
	order.PutUint64(b[8:16], uint64(f.pageAddr))
	order.PutUint64(b[24:32], f.sysID)
	order.PutUint32(b[32:36], f.segSize)
	order.PutUint32(b[36:40], f.blockSize)
	return b
}

// testdataFileNames returns the names of the real WAL files in testdata:
// segments, the partial segment, the backup and timeline history files.
func testdataFileNames(t testing.TB) []string {
	t.Helper()
	var names []string
	for _, s := range okSegments(t) {
		names = append(names, s.name)
	}
	for _, dir := range []string{"history", "backup"} {
		entries, err := os.ReadDir(filepath.Join("testdata", dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			names = append(names, e.Name())
		}
	}
	return names
}

func readTestdata(t testing.TB, path ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// patch returns a copy of b with the bytes at off replaced.
func patch(b []byte, off int, with []byte) []byte {
	c := bytes.Clone(b)
	copy(c[off:], with)
	return c
}
