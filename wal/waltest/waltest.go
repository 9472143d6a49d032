package waltest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/walvault/walvault/wal"
)

// Cluster is what a segment's header says about the server that wrote it.
type Cluster struct {
	SystemID    uint64
	SegmentSize uint32 // a valid WAL segment size; wal.MinSegmentSize keeps tests fast
}

// Header returns the long page header PostgreSQL 15 writes at the start of
// segment s of cluster c.
func (c Cluster) Header(t testing.TB, s wal.Segment) wal.Header {
	t.Helper()
	addr, err := s.StartLSN(c.SegmentSize)
	if err != nil {
		t.Fatalf("StartLSN(%s): %v", s, err)
	}
	return wal.Header{
		Magic:       0xD110,
		Info:        0x0002, // XLP_LONG_HEADER
		Timeline:    s.Timeline,
		PageAddr:    addr,
		SystemID:    c.SystemID,
		SegmentSize: c.SegmentSize,
		BlockSize:   8192,
	}
}

// Segment returns segment s of cluster c: its header, then pseudo-random
// bytes from seed.
func (c Cluster) Segment(t testing.TB, s wal.Segment, seed uint64) []byte {
	t.Helper()
	return SegmentBytes(t, c.Header(t, s), int(c.SegmentSize), seed)
}

// SegmentBytes returns size bytes: h's bytes, then pseudo-random bytes
// from seed (the same for the same seed). h may be damaged on purpose: its
// fields are written as they are.
func SegmentBytes(t testing.TB, h wal.Header, size int, seed uint64) []byte {
	t.Helper()
	hdr, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, size)
	copy(buf, hdr)
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	rand.NewChaCha8(key).Read(buf[len(hdr):])
	return buf
}

// History returns a timeline history file holding entries, as PostgreSQL
// writes it.
func History(t testing.TB, entries ...wal.HistoryEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wal.FormatHistory(&b, entries); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// WriteFile writes data as file name in dir, as PostgreSQL hands it to
// archive_command, and returns its path and its sha256 in hex.
func WriteFile(t testing.TB, dir, name string, data []byte) (path, sum string) {
	t.Helper()
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, SHA256(data)
}

// SHA256 is data's sha256 in hex, as walvault records it.
func SHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// FileName classifies name as a WAL file name, failing the test when it
// is not one.
func FileName(t testing.TB, name string) wal.FileName {
	t.Helper()
	f, err := wal.Classify(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
