package restore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// putPartial stores the first n bytes of data as a partial of s, as
// wal-receive does.
func putPartial(t *testing.T, b storage.Backend, s wal.Segment, data []byte, n int) string {
	t.Helper()
	start, _ := s.StartLSN(testSegSize)
	key := repository.PartialKey(s, start+wal.LSN(n), repository.LZ4)
	repotest.PutWAL(t, b, key, repository.LZ4, data[:n], nil)
	return key
}

func TestFetchServesNewestPartial(t *testing.T) {
	b := mem.New()
	pushSegment(t, b, seg(1, 0, 1), repository.LZ4) // creates walvault.json
	s := seg(1, 0, 2)
	data := segmentBytes(t, s, 7)
	putPartial(t, b, s, data, 1000)
	newest := putPartial(t, b, s, data, 5000)

	dir := t.TempDir()
	dest := filepath.Join(dir, "RECOVERYXLOG")
	res, err := restore.Fetch(context.Background(), b, s.String(), dest, restore.FetchOptions{})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if res.Key != newest || res.RawSize != testSegSize {
		t.Errorf("result %+v, want key %s and %d bytes", res, newest, testSegSize)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, testSegSize)
	copy(want, data[:5000])
	if !bytes.Equal(got, want) {
		t.Error("served file is not the newest partial zero-padded to the segment size")
	}

	// The prefetcher never caches a partial: the segment before s was
	// just served, s has only partials, so nothing is prefetched.
	cache := filepath.Join(t.TempDir(), "prefetch")
	prev := seg(s.Timeline, s.Log, s.Seg-1)
	if n, err := restore.PrefetchNext(context.Background(), b, cache, prev.String(), testSegSize, 2, restore.FetchOptions{}); n != 0 {
		t.Errorf("prefetch after %s with only partials of %s ahead: %d prefetched (%v), want 0", prev, s, n, err)
	}
	if _, ok, _ := restore.TakePrefetched(cache, s.String(), filepath.Join(dir, "from-cache")); ok {
		t.Errorf("a partial of %s was served from the prefetch cache", s)
	}
	// No partial, no segment: missing.
	if _, err := restore.Fetch(context.Background(), b, seg(1, 0, 3).String(), dest, restore.FetchOptions{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing segment: %v, want ErrNotFound", err)
	}
	// A complete segment wins over partials.
	full := pushSegment(t, b, s, repository.LZ4)
	if res, err := restore.Fetch(context.Background(), b, s.String(), dest, restore.FetchOptions{}); err != nil || res.Key != full.key {
		t.Errorf("with the full segment stored: %+v, %v", res, err)
	}
}

func TestFetchCorruptPartial(t *testing.T) {
	b := mem.New()
	pushSegment(t, b, seg(1, 0, 1), repository.LZ4)
	s := seg(1, 0, 2)
	key := putPartial(t, b, s, segmentBytes(t, s, 7), 4000)
	rewrite(t, b, key, func(body []byte, meta map[string]string) []byte {
		meta[repository.MetaSHA256] = hex.EncodeToString(make([]byte, 32))
		return body
	})
	if _, err := restore.Fetch(context.Background(), b, s.String(), filepath.Join(t.TempDir(), "RECOVERYXLOG"), restore.FetchOptions{}); !errors.Is(err, restore.ErrCorrupt) {
		t.Errorf("corrupt partial: %v, want ErrCorrupt", err)
	}
}
