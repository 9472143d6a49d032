package restore_test

// Test fixtures for wal-fetch: a repository (storage/mem) filled by the
// real wal-push (archive.Push) from synthetic 1 MiB WAL segments
// (wal/waltest), and helpers to damage what is stored.

import (
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

const (
	testSysID   = 7300000000000000001
	testSegSize = wal.MinSegmentSize // 1 MiB keeps the tests fast
)

func seg(tli wal.TimelineID, log, n uint32) wal.Segment {
	return wal.Segment{Timeline: tli, Log: log, Seg: n}
}

// segmentBytes returns a 1 MiB segment s of cluster testSysID: the long
// page header PostgreSQL 15 writes, then pseudo-random bytes from seed.
func segmentBytes(t testing.TB, s wal.Segment, seed uint64) []byte {
	t.Helper()
	return waltest.Cluster{SystemID: testSysID, SegmentSize: testSegSize}.Segment(t, s, seed)
}

// archived is a file pushed into a test repository.
type archived struct {
	name string // WAL file name
	key  string // object key
	raw  []byte // the file as PostgreSQL wrote it
	sum  string // its sha256
}

// push writes data as file name and archives it with wal-push.
func push(t testing.TB, b storage.Backend, name string, data []byte, c repository.Compression) archived {
	t.Helper()
	src, sum := waltest.WriteFile(t, t.TempDir(), name, data)
	res, err := archive.Push(context.Background(), b, src, archive.Options{
		Compression: c, Host: "db-1", Version: "test",
		Now: func() time.Time { return time.Date(2026, 11, 25, 9, 36, 37, 0, time.UTC) },
	})
	if err != nil {
		t.Fatalf("Push(%s): got %v, want nil", name, err)
	}
	return archived{name: name, key: res.Key, raw: data, sum: sum}
}

// pushSegment archives segment s (seed 1) into b.
func pushSegment(t testing.TB, b storage.Backend, s wal.Segment, c repository.Compression) archived {
	t.Helper()
	return push(t, b, s.String(), segmentBytes(t, s, 1), c)
}

// rewrite replaces key's object with what edit makes of its stored body
// and metadata: damage done to the storage behind walvault's back. The
// object is damaged in place (deleted, then put), so a versioned backend
// (mem) keeps no intact older version for wal-fetch to fall back on.
func rewrite(t testing.TB, b storage.Backend, key string, edit func(body []byte, meta map[string]string) []byte) {
	t.Helper()
	rc, info, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	meta := maps.Clone(info.Metadata)
	body = edit(body, meta)
	if err := b.Delete(context.Background(), key); err != nil {
		t.Fatalf("rewrite %q: %v", key, err)
	}
	if err := b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{Metadata: meta}); err != nil {
		t.Fatalf("rewrite %q: %v", key, err)
	}
}

// dirEntries lists the names in dir, temp files included.
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// mustClassify is wal.Classify for a name a test made.
func mustClassify(t testing.TB, name string) wal.FileName {
	t.Helper()
	f, err := wal.Classify(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
