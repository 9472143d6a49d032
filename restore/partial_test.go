package restore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
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

// TestFetchNoPartialForStandby: a standby streams, so a partial (older
// than what it streamed, and archived again under the full name with
// archive_mode = always) must never replace its copy of the segment: its
// fetch misses and PostgreSQL goes on streaming. Neither does a recovering
// server whose pg_wal already holds the segment get one; any other
// recovering server does (explore25c F1, F2).
func TestFetchNoPartialForStandby(t *testing.T) {
	b := mem.New()
	pushSegment(t, b, seg(1, 0, 1), repository.LZ4)
	s := seg(1, 0, 2)
	putPartial(t, b, s, segmentBytes(t, s, 7), 5000)
	dataDir := t.TempDir()
	for name, content := range map[string]string{"PG_VERSION": "17\n", "pg_wal/.keep": ""} {
		p := filepath.Join(dataDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(dataDir, "pg_wal", "RECOVERYXLOG")
	fetch := func() error {
		_, err := restore.Fetch(context.Background(), b, s.String(), dest, restore.FetchOptions{})
		return err
	}
	if err := fetch(); err != nil {
		t.Fatalf("a recovering server (recovery.signal): %v, want the partial served", err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fetch(); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a standby: %v, want ErrNotFound (no partial)", err)
	}
	if err := os.Remove(filepath.Join(dataDir, "standby.signal")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "pg_wal", s.String()), make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fetch(); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("pg_wal holding %s already: %v, want ErrNotFound (no partial)", s, err)
	}
}

// TestFetchStorageDownNamesTheFetch: with the storage unreachable, the
// file's own request and the question whether another codec's key holds
// it both fail: the error is the file's, not the side question's, which
// sent a DBA after codecs and delete markers (explore25b F4).
func TestFetchStorageDownNamesTheFetch(t *testing.T) {
	b := mem.New()
	pushSegment(t, b, seg(1, 0, 1), repository.LZ4)
	fault := storagetest.NewFault(b)
	down := errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")
	for _, op := range []storagetest.Op{storagetest.OpGet, storagetest.OpStat} {
		fault.Fail(op, func(string) bool { return true }, down)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := restore.Fetch(ctx, fault, seg(1, 0, 1).String(), filepath.Join(t.TempDir(), "x"), restore.FetchOptions{})
	if err == nil || strings.Contains(err.Error(), "another codec") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("fetch with the storage down: %v; want the fetch's own error naming the refused connection", err)
	}
}
