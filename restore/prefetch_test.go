package restore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// prefetchSetup archives segments first..last of timeline 1 and returns
// the repository and a pg_wal directory with its RECOVERYXLOG path.
func prefetchSetup(t *testing.T, first, last uint32) (storage.Backend, map[string][]byte, string, string) {
	t.Helper()
	b, _ := newRepo(t)
	data := map[string][]byte{}
	for n := first; n <= last; n++ {
		a := pushSegment(t, b, seg(1, 0, n), repository.LZ4)
		data[a.name] = a.raw
	}
	pgwal := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.Mkdir(pgwal, 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(pgwal, "RECOVERYXLOG")
	return b, data, dest, restore.PrefetchDir(dest)
}

func prefetch(t *testing.T, b storage.Backend, dir, after string, count, want int) {
	t.Helper()
	n, err := restore.PrefetchNext(context.Background(), b, dir, after, testSegSize, count, restore.FetchOptions{})
	if err != nil || n != want {
		t.Fatalf("PrefetchNext(after %s, %d): got %d, %v; want %d, nil", after, count, n, err, want)
	}
}

func cachedPath(dir string, s wal.Segment) string {
	return filepath.Join(dir, "00000001", s.String())
}

func assertDest(t *testing.T, dest string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("dest: got %d bytes (err %v), want the archived %d bytes", len(got), err, len(want))
	}
}

// TestPrefetchNextWritesVerified: the next N segments land in the cache
// with their sha256 records, and a batch stops at the end of the archive.
func TestPrefetchNextWritesVerified(t *testing.T) {
	t.Parallel()
	b, data, _, dir := prefetchSetup(t, 1, 6)
	prefetch(t, b, dir, seg(1, 0, 1).String(), 3, 3)
	for n := uint32(2); n <= 4; n++ {
		s := seg(1, 0, n)
		got, err := os.ReadFile(cachedPath(dir, s))
		if err != nil || !bytes.Equal(got, data[s.String()]) {
			t.Errorf("cached %s: got %d bytes (err %v), want the archived file", s, len(got), err)
		}
		if _, err := os.Stat(cachedPath(dir, s) + ".sha256"); err != nil {
			t.Errorf("no sha256 record beside cached %s: %v", s, err)
		}
	}
	if _, err := os.Stat(cachedPath(dir, seg(1, 0, 5))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("segment 5 cached beyond the count: %v", err)
	}
	// Already cached ones are skipped; the batch ends at segment 6, the
	// last archived, without an error.
	prefetch(t, b, dir, seg(1, 0, 1).String(), 8, 2)
	if entries := dirEntries(t, filepath.Join(dir, "00000001")); len(entries) != 10 {
		t.Errorf("cache holds %q, want 5 segments and 5 records, no temp files", entries)
	}
}

// TestPrefetchHandOver: a cached segment is served without a download;
// a corrupted one is refused, deleted and fetched again; a missing one is
// fetched; not-found comes only from the repository.
func TestPrefetchHandOver(t *testing.T) {
	t.Parallel()
	repo, data, dest, dir := prefetchSetup(t, 1, 5)
	prefetch(t, repo, dir, seg(1, 0, 1).String(), 3, 3)
	b := &flakyBackend{Backend: repo}
	ctx := context.Background()

	s2 := seg(1, 0, 2)
	res, fromCache, err := restore.FetchCached(ctx, b, s2.String(), dest, dir, restore.FetchOptions{})
	if err != nil || !fromCache || b.gets.Load() != 0 {
		t.Fatalf("FetchCached(%s): fromCache %v, err %v, %d downloads; want a hand-over without download", s2, fromCache, err, b.gets.Load())
	}
	assertDest(t, dest, data[s2.String()])
	if res.RawSize != testSegSize {
		t.Errorf("RawSize: got %d, want %d", res.RawSize, testSegSize)
	}
	if _, err := os.Stat(cachedPath(dir, s2)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("handed-over %s still in the cache: %v", s2, err)
	}

	t.Run("corrupted", func(t *testing.T) {
		s3 := seg(1, 0, 3)
		f, err := os.OpenFile(cachedPath(dir, s3), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{0xFF, 0xEE}, 4096); err != nil {
			t.Fatal(err)
		}
		f.Close()
		before := b.gets.Load()
		_, fromCache, err := restore.FetchCached(ctx, b, s3.String(), dest, dir, restore.FetchOptions{})
		if err != nil || fromCache || b.gets.Load() == before {
			t.Fatalf("FetchCached(corrupted %s): fromCache %v, err %v; want a download from the repository", s3, fromCache, err)
		}
		assertDest(t, dest, data[s3.String()])
		if _, err := os.Stat(cachedPath(dir, s3)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("corrupted copy of %s not deleted: %v", s3, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		s5 := seg(1, 0, 5)
		before := b.gets.Load()
		_, fromCache, err := restore.FetchCached(ctx, b, s5.String(), dest, dir, restore.FetchOptions{})
		if err != nil || fromCache || b.gets.Load() == before {
			t.Fatalf("FetchCached(uncached %s): fromCache %v, err %v; want a download", s5, fromCache, err)
		}
		assertDest(t, dest, data[s5.String()])
		// Segment 4, passed over, was removed from the cache.
		if _, err := os.Stat(cachedPath(dir, seg(1, 0, 4))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("passed segment 4 still cached: %v", err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		s6 := seg(1, 0, 6)
		// Even a record planted for it does not make it present.
		os.MkdirAll(filepath.Join(dir, "00000001"), 0o700)
		os.WriteFile(cachedPath(dir, s6), []byte("junk"), 0o600)
		before := b.gets.Load()
		_, _, err := restore.FetchCached(ctx, b, s6.String(), dest, dir, restore.FetchOptions{})
		if !errors.Is(err, storage.ErrNotFound) || b.gets.Load() == before {
			t.Fatalf("FetchCached(unarchived %s): got %v after %d requests; want ErrNotFound from the repository", s6, err, b.gets.Load()-before)
		}
		assertDest(t, dest, data[seg(1, 0, 5).String()])
	})
	t.Run("history clears", func(t *testing.T) {
		prefetch(t, repo, dir, seg(1, 0, 2).String(), 2, 2)
		restore.FetchCached(ctx, b, "00000002.history", dest, dir, restore.FetchOptions{})
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cache after a history file request: %v, want it removed", err)
		}
	})
}

// TestPrefetchTimelineSwitch: segments of timeline 1 prefetched past the
// switch point are never served for timeline 2's names.
func TestPrefetchTimelineSwitch(t *testing.T) {
	t.Parallel()
	repo, data, dest, dir := prefetchSetup(t, 1, 6)
	for n := uint32(4); n <= 6; n++ {
		a := push(t, repo, seg(2, 0, n).String(), segmentBytes(t, seg(2, 0, n), 2), repository.LZ4)
		data[a.name] = a.raw
	}
	prefetch(t, repo, dir, seg(1, 0, 3).String(), 3, 3)
	b := &flakyBackend{Backend: repo}
	ctx := context.Background()
	s := seg(2, 0, 4)
	_, fromCache, err := restore.FetchCached(ctx, b, s.String(), dest, dir, restore.FetchOptions{})
	if err != nil || fromCache || b.gets.Load() == 0 {
		t.Fatalf("FetchCached(%s): fromCache %v, err %v; want a download from the repository", s, fromCache, err)
	}
	assertDest(t, dest, data[s.String()])
	if bytes.Equal(data[s.String()], data[seg(1, 0, 4).String()]) {
		t.Fatal("test setup: both timelines hold the same bytes")
	}
	if _, err := os.Stat(filepath.Join(dir, "00000001")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("timeline 1 cache after serving timeline 2: %v, want it removed", err)
	}
	// Prefetch on timeline 2 then serves timeline 2's files.
	prefetch(t, repo, dir, s.String(), 8, 2)
	s5 := seg(2, 0, 5)
	_, fromCache, err = restore.FetchCached(ctx, b, s5.String(), dest, dir, restore.FetchOptions{})
	if err != nil || !fromCache {
		t.Fatalf("FetchCached(%s): fromCache %v, err %v; want a hand-over", s5, fromCache, err)
	}
	assertDest(t, dest, data[s5.String()])
}

// TestPrefetchTidyStale: files older than PrefetchMaxAge go.
func TestPrefetchTidyStale(t *testing.T) {
	t.Parallel()
	repo, _, _, dir := prefetchSetup(t, 1, 3)
	prefetch(t, repo, dir, seg(1, 0, 1).String(), 2, 2)
	restore.TidyPrefetch(dir, seg(1, 0, 1).String(), time.Now().Add(restore.PrefetchMaxAge+time.Minute), nil)
	if entries := dirEntries(t, filepath.Join(dir, "00000001")); len(entries) != 0 {
		t.Errorf("cache after PrefetchMaxAge: %q, want empty", entries)
	}
}
