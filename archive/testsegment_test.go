package archive_test

// Test fixtures for wal-push: synthetic 1 MiB WAL segments with a real
// long page header (wal/waltest), and the real segments in wal/testdata.
// Repositories are storage/mem, or storage/file/filetest where a test
// looks at the files.

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
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
	otherSysID  = 7300000000000000002
	testSegSize = wal.MinSegmentSize // 1 MiB keeps the tests fast

	// Facts about wal/testdata/segments/ok (see wal/testdata/README.md).
	realSysID = 7712040661191622168
)

var testNow = time.Date(2026, 11, 25, 9, 36, 37, 0, time.UTC)

func seg(tli wal.TimelineID, log, n uint32) wal.Segment {
	return wal.Segment{Timeline: tli, Log: log, Seg: n}
}

// header returns the long page header PostgreSQL 15 writes at the start of
// s with testSegSize segments on cluster testSysID.
func header(t testing.TB, s wal.Segment) wal.Header {
	t.Helper()
	return waltest.Cluster{SystemID: testSysID, SegmentSize: testSegSize}.Header(t, s)
}

// writeSegment writes a segment file called name into dir: h's bytes, then
// pseudo-random bytes seeded by seed up to h.SegmentSize (testSegSize when
// h's size is not a valid one). It returns the path and the file's sha256.
func writeSegment(t testing.TB, dir, name string, h wal.Header, seed uint64) (string, string) {
	t.Helper()
	size := int(h.SegmentSize)
	if wal.ValidateSegmentSize(h.SegmentSize) != nil {
		size = testSegSize
	}
	path, sum := waltest.WriteFile(t, dir, name, waltest.SegmentBytes(t, h, size, seed))
	markReady(t, dir, name)
	return path, sum
}

// markReady marks name ready for archiving, as PostgreSQL does before it
// runs archive_command, when dir is a pg_wal (has archive_status).
func markReady(t testing.TB, dir, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "archive_status")); err == nil {
		touch(t, filepath.Join(dir, "archive_status", name+".ready"))
	}
}

// realSegments decompresses wal/testdata/segments/ok/*.gz into dir and
// returns the paths, named as PostgreSQL named them.
func realSegments(t testing.TB, dir string) []string {
	t.Helper()
	gz, err := filepath.Glob(filepath.Join("..", "wal", "testdata", "segments", "ok", "*.gz"))
	if err != nil || len(gz) == 0 {
		t.Fatalf("no segments in wal/testdata/segments/ok: %v", err)
	}
	var paths []string
	for _, p := range gz {
		out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(p), ".gz"))
		copyGunzip(t, p, out)
		paths = append(paths, out)
	}
	return paths
}

func copyGunzip(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatalf("gunzip %s: %v", src, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func opts(c repository.Compression) archive.Options {
	return archive.Options{Compression: c, Host: "db-1", Version: "test", Now: func() time.Time { return testNow }}
}

// mustPush pushes path and fails the test on an error.
func mustPush(t testing.TB, b storage.Backend, path string, o archive.Options) archive.Result {
	t.Helper()
	res, err := archive.Push(context.Background(), b, path, o)
	if err != nil {
		t.Fatalf("Push(%s): got %v, want nil", filepath.Base(path), err)
	}
	return res
}

// keys lists every object in b.
func keys(t testing.TB, b storage.Backend) []string {
	t.Helper()
	var got []string
	err := b.List(context.Background(), "", func(oi storage.ObjectInfo) error {
		got = append(got, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List: got %v, want nil", err)
	}
	return got
}

// object returns the stored body (as stored, compressed or not) and info.
func object(t testing.TB, b storage.Backend, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	rc, info, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): got %v, want nil", key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return body, info
}

// assertAbsent fails unless key is authoritatively absent.
func assertAbsent(t testing.TB, b storage.Backend, key string) {
	t.Helper()
	if _, err := b.Stat(context.Background(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%q): got %v, want ErrNotFound (nothing stored)", key, err)
	}
}

// assertNoTempFiles fails if the file backend left a temp file under root.
func assertNoTempFiles(t testing.TB, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temp file left in the repository: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func walKey(t testing.TB, name string, c repository.Compression) string {
	t.Helper()
	f, err := wal.Classify(name)
	if err != nil {
		t.Fatalf("Classify(%q): %v", name, err)
	}
	return repository.WALKey(f, c)
}
