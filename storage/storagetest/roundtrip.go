package storagetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
)

// walMetadata is metadata shaped like what wal-push stores.
func walMetadata() map[string]string {
	return map[string]string{
		"sha256":            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"size":              "16777216",
		"system-identifier": "7301234567890123456",
		"timeline":          "1",
		"host":              "db-1.example.com",
		"written-at":        "2025-01-02T03:04:05Z",
	}
}

func testRoundTripSmall(t *testing.T, s *suite) {
	for _, tc := range []struct {
		name string
		key  string
		size int64 // the Size hint
	}{
		{"known size", "wal/00000001/000000010000000000000001.lz4", -2},
		{"unknown size", "wal/00000001/000000010000000000000002.lz4", -1},
		{"deep key", "backups/20250102T030405/parts/a/b/c/base.tar.lz4", -2},
	} {
		body := []byte("walvault round trip: " + tc.key + "\n")
		size := tc.size
		if size == -2 {
			size = int64(len(body))
		}
		md := walMetadata()
		mustPut(t, s, tc.key, body, storage.PutOptions{Size: size, Metadata: md})
		checkObject(t, s, tc.key, body, md)
	}
}

func testRoundTripEmpty(t *testing.T, s *suite) {
	for _, tc := range []struct {
		key  string
		size int64
		md   map[string]string
	}{
		{"empty/size-0", 0, nil},
		{"empty/size-unknown", -1, map[string]string{"kind": "empty"}},
	} {
		mustPut(t, s, tc.key, nil, storage.PutOptions{Size: tc.size, Metadata: tc.md})
		checkObject(t, s, tc.key, nil, tc.md)
	}
}

func testRoundTripBinary(t *testing.T, s *suite) {
	// Every byte value, twice, and a body ending without a newline.
	body := make([]byte, 512)
	for i := range body {
		body[i] = byte(i)
	}
	md := map[string]string{"punctuation": `!"#$%&'()*+,-./:;<=>?@[\]^_{|}~`, "x": "1"}
	mustPut(t, s, "bin/all-bytes", body, storage.PutOptions{Size: int64(len(body)), Metadata: md})
	checkObject(t, s, "bin/all-bytes", body, md)
}

// testRoundTripLarge streams LargeObjectSize bytes from a generator into Put
// (sizeHint as PutOptions.Size) and reads them back through Get's stream,
// comparing sha256 and byte counts; nothing holds the object in memory.
func testRoundTripLarge(t *testing.T, s *suite, sizeHint int64) {
	size := s.opts.LargeObjectSize
	key := fmt.Sprintf("large/%d.bin", size)
	gen := newGenerator(7, size)
	putHash := sha256.New()
	md := map[string]string{"kind": "large"}
	if err := s.b.Put(s.ctx, key, io.TeeReader(gen, putHash), storage.PutOptions{Size: sizeHint, Metadata: md}); err != nil {
		t.Fatalf("Put(%q, %d bytes, Size %d): got %v, want nil", key, size, sizeHint, err)
	}
	if gen.read != size {
		t.Fatalf("Put(%q): read %d bytes of the body, want %d (Put reads r to EOF)", key, gen.read, size)
	}
	want := putHash.Sum(nil)

	rc, info, err := s.b.Get(s.ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): got %v, want nil", key, err)
	}
	getHash := sha256.New()
	n, err := io.Copy(getHash, rc)
	if cerr := rc.Close(); cerr != nil {
		t.Errorf("Get(%q): Close: got %v, want nil", key, cerr)
	}
	if err != nil {
		t.Fatalf("Get(%q): reading body after %d bytes: got %v, want nil", key, n, err)
	}
	if n != size {
		t.Errorf("Get(%q): body length: got %d, want %d", key, n, size)
	}
	if got := getHash.Sum(nil); !bytes.Equal(got, want) {
		t.Errorf("Get(%q): sha256: got %x, want %x", key, got, want)
	}
	if info.Size != size {
		t.Errorf("Get(%q): info.Size: got %d, want %d", key, info.Size, size)
	}
	if !equalMetadata(info.Metadata, md) {
		t.Errorf("Get(%q): metadata: got %v, want %v", key, info.Metadata, md)
	}
	sinfo := mustStat(t, s, key)
	if sinfo.Size != size {
		t.Errorf("Stat(%q): Size: got %d, want %d", key, sinfo.Size, size)
	}
	checkInfoMatches(t, "Get", info, "Stat", sinfo)
}

// testStat checks what Stat reports, and that List's entries agree with it.
func testStat(t *testing.T, s *suite) {
	key := "wal/00000001/000000010000000000000003.lz4"
	body := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	md := walMetadata()
	mustPut(t, s, key, body, storage.PutOptions{Size: int64(len(body)), Metadata: md})
	info := mustStat(t, s, key)
	if info.Size != int64(len(body)) {
		t.Errorf("Stat(%q): Size: got %d, want %d", key, info.Size, len(body))
	}
	if !equalMetadata(info.Metadata, md) {
		t.Errorf("Stat(%q): metadata: got %v, want %v", key, info.Metadata, md)
	}
	checkModTime(t, "Stat("+key+")", info.ModTime)
	if !info.RetainUntil.IsZero() {
		t.Errorf("Stat(%q): RetainUntil: got %v, want zero (no retention was asked)", key, info.RetainUntil)
	}
	_, ginfo := mustGet(t, s, key)
	checkInfoMatches(t, "Get", ginfo, "Stat", info)

	listed := list(t, s, key)
	if len(listed) != 1 {
		t.Fatalf("List(%q): got %d entries, want 1", key, len(listed))
	}
	// List may report ModTime more or less precisely than Stat (S3 lists
	// milliseconds, HEAD says seconds): they agree within a second.
	if l := listed[0]; l.Key != key || l.Size != info.Size || l.ModTime.Sub(info.ModTime).Abs() >= time.Second {
		t.Errorf("List(%q): got key %q size %d mtime %v, want Stat's key %q size %d mtime %v (within 1s)",
			key, l.Key, l.Size, l.ModTime, key, info.Size, info.ModTime)
	}
}
