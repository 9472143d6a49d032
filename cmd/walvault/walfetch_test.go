package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// breakingGets makes the bodies of the first n Gets of WAL objects break
// after 100 bytes with a reset connection: an outage that starts during a
// download. n < 0 breaks every one.
type breakingGets struct {
	storage.Backend
	mu    sync.Mutex
	n     int
	calls int
}

func (b *breakingGets) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := b.Backend.Get(ctx, key)
	if err != nil || !strings.HasPrefix(key, repository.WALPrefix) {
		return rc, info, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.n >= 0 && b.calls > b.n {
		return rc, info, nil
	}
	return brokenBody{io.LimitReader(rc, 100), rc}, info, nil
}

func (b *breakingGets) gets() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// brokenBody reads its 100 bytes, then fails as a reset connection does.
type brokenBody struct {
	r io.Reader
	io.Closer
}

func (b brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, storagetest.ErrConnReset
	}
	return n, err
}

// fetchRepo is a repository holding one archived segment, and that segment.
func fetchRepo(t *testing.T) (storage.Backend, string, []byte) {
	t.Helper()
	s := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	data := waltest.Cluster{SystemID: 7300000000000000001, SegmentSize: wal.MinSegmentSize}.Segment(t, s, 1)
	src, _ := waltest.WriteFile(t, t.TempDir(), s.String(), data)
	b := mem.New()
	if _, err := archive.Push(context.Background(), b, src, archive.Options{Compression: repository.LZ4, Host: "db-1", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return b, s.String(), data
}

// TestFetchRidesOutBrokenDownloads: a download that breaks mid-body is
// fetched again until the deadline, and the segment lands whole.
func TestFetchRidesOutBrokenDownloads(t *testing.T) {
	inner, name, data := fetchRepo(t)
	const breaks = 4
	b := &breakingGets{Backend: inner, n: breaks}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err := fetchRidingOut(ctx, storage.WithRetry(b, storage.DefaultRetryPolicy, nil), name, dest, filepath.Join(filepath.Dir(dest), "prefetch"), restore.FetchOptions{Compression: repository.LZ4}, true)
	if err != nil {
		t.Fatalf("fetch through %d broken downloads: got %v, want success", breaks, err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatalf("fetched %d bytes, want the archived segment's %d", len(got), len(data))
	}
	if got := b.gets(); got != breaks+1 {
		t.Fatalf("downloads: got %d, want %d", got, breaks+1)
	}
}

// TestFetchRidesOutAGap: a segment missing while a later one is archived
// (a storage that did not show it for a moment, a push ahead that stored
// the later one first) is asked for again and restored once it shows; one
// that stays missing ends the fetch at the deadline with exit 200, never
// exit 1, which would end recovery before the later WAL. On a standby
// (rideOutGap false) the gap is answered at once, and a standby exits 1.
func TestFetchRidesOutAGap(t *testing.T) {
	b := mem.New()
	segments := map[uint32][]byte{}
	dir := t.TempDir()
	for _, n := range []uint32{3, 4, 5} {
		s := wal.Segment{Timeline: 1, Log: 0, Seg: n}
		segments[n] = waltest.Cluster{SystemID: 7300000000000000001, SegmentSize: wal.MinSegmentSize}.Segment(t, s, 1)
		waltest.WriteFile(t, dir, s.String(), segments[n])
	}
	pushSeg := func(n uint32) {
		t.Helper()
		if _, err := archive.Push(context.Background(), b, filepath.Join(dir, wal.Segment{Timeline: 1, Log: 0, Seg: n}.String()), archive.Options{Compression: repository.LZ4, Host: "db-1", Version: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	pushSeg(3)
	pushSeg(5)
	name := wal.Segment{Timeline: 1, Log: 0, Seg: 4}.String()
	fetch := func(timeout time.Duration, rideOut bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		_, _, err := fetchRidingOut(ctx, b, name, dest, "", restore.FetchOptions{Compression: repository.LZ4}, rideOut)
		if err == nil {
			if got, _ := os.ReadFile(dest); !bytes.Equal(got, segments[4]) {
				t.Fatalf("fetched %d bytes, want segment 4's %d", len(got), len(segments[4]))
			}
		}
		return err
	}

	start := time.Now()
	err := fetch(3*time.Second, false)
	var gap *restore.GapError
	if !errors.As(err, &gap) || time.Since(start) > time.Second || exitCode("wal-fetch", standbyFailure{err}) != exitFailed {
		t.Fatalf("a gap on a standby: %v after %v; want the GapError at once, exit 1 as a standby", err, time.Since(start))
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, _, err = fetchRidingOut(ctx, b, name, filepath.Join(t.TempDir(), "RECOVERYXLOG"), "", restore.FetchOptions{Compression: repository.LZ4, Log: slog.New(slog.NewTextHandler(&logs, nil))}, true)
	cancel()
	if !errors.As(err, &gap) || exitCode("wal-fetch", err) != exitRecoveryMustStop {
		t.Fatalf("a gap that stays: %v (exit %d); want the GapError at the deadline, exit %d", err, exitCode("wal-fetch", err), exitRecoveryMustStop)
	}
	// Asked again every few seconds, warned of once a minute (explore22d
	// F8: one warning each 5 s of a 10-minute timeout flooded the log).
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings while riding out a gap for 3s, want 1:\n%s", n, logs.String())
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		pushSeg(4)
	}()
	if err := fetch(time.Minute, true); err != nil {
		t.Fatalf("a segment that shows after a moment: %v; want it restored", err)
	}
}

// TestFetchBrokenDownloadsEndAtDeadline: downloads that keep breaking end
// the fetch near its deadline with the stream's error, dest untouched.
func TestFetchBrokenDownloadsEndAtDeadline(t *testing.T) {
	inner, name, _ := fetchRepo(t)
	b := &breakingGets{Backend: inner, n: -1}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	const deadline = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	_, _, err := fetchRidingOut(ctx, storage.WithRetry(b, storage.DefaultRetryPolicy, nil), name, dest, filepath.Join(filepath.Dir(dest), "prefetch"), restore.FetchOptions{Compression: repository.LZ4}, true)
	elapsed := time.Since(start)
	if !errors.Is(err, storagetest.ErrConnReset) || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("fetch with every download broken: got %v, want the reset connection", err)
	}
	if exitCode("wal-fetch", err) != exitRecoveryMustStop {
		t.Fatalf("exit %d, want %d", exitCode("wal-fetch", err), exitRecoveryMustStop)
	}
	if elapsed > deadline+3*time.Second {
		t.Fatalf("fetch ended after %v, want by the %v deadline (plus a margin)", elapsed, deadline)
	}
	if got := b.gets(); got < 2 {
		t.Fatalf("downloads: got %d, want more than one", got)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dest after a failed fetch: %v, want it absent", err)
	}
}

// TestPrefetchCount: the prefetcher keeps at most 256 MiB of segments in
// pg_wal, and at least one.
func TestPrefetchCount(t *testing.T) {
	for _, tc := range []struct {
		count   int
		segSize int64
		want    int
	}{{8, 16 << 20, 8}, {64, 16 << 20, 16}, {8, 64 << 20, 4}, {8, 1 << 30, 1}, {8, 1 << 20, 8}, {1, 1 << 30, 1}} {
		if got := prefetchCount(tc.count, tc.segSize); got != tc.want {
			t.Errorf("prefetchCount(%d, %d MiB) = %d, want %d", tc.count, tc.segSize>>20, got, tc.want)
		}
	}
}
