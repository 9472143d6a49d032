package restore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

// prefetchSetup archives segments first..last of timeline 1 and returns
// the repository and a pg_wal directory with its RECOVERYXLOG path.
func prefetchSetup(t *testing.T, first, last uint32) (storage.Backend, map[string][]byte, string, string) {
	t.Helper()
	b := mem.New()
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
	b := storagetest.NewFault(repo)
	ctx := context.Background()

	s2 := seg(1, 0, 2)
	res, fromCache, err := restore.FetchCached(ctx, b, s2.String(), dest, dir, restore.FetchOptions{})
	if err != nil || !fromCache || b.Calls(storagetest.OpGet) != 0 {
		t.Fatalf("FetchCached(%s): fromCache %v, err %v, %d downloads; want a hand-over without download", s2, fromCache, err, b.Calls(storagetest.OpGet))
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
		before := b.Calls(storagetest.OpGet)
		_, fromCache, err := restore.FetchCached(ctx, b, s3.String(), dest, dir, restore.FetchOptions{})
		if err != nil || fromCache || b.Calls(storagetest.OpGet) == before {
			t.Fatalf("FetchCached(corrupted %s): fromCache %v, err %v; want a download from the repository", s3, fromCache, err)
		}
		assertDest(t, dest, data[s3.String()])
		if _, err := os.Stat(cachedPath(dir, s3)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("corrupted copy of %s not deleted: %v", s3, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		s5 := seg(1, 0, 5)
		before := b.Calls(storagetest.OpGet)
		_, fromCache, err := restore.FetchCached(ctx, b, s5.String(), dest, dir, restore.FetchOptions{})
		if err != nil || fromCache || b.Calls(storagetest.OpGet) == before {
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
		before := b.Calls(storagetest.OpGet)
		_, _, err := restore.FetchCached(ctx, b, s6.String(), dest, dir, restore.FetchOptions{})
		if !errors.Is(err, storage.ErrNotFound) || b.Calls(storagetest.OpGet) == before {
			t.Fatalf("FetchCached(unarchived %s): got %v after %d requests; want ErrNotFound from the repository", s6, err, b.Calls(storagetest.OpGet)-before)
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
	b := storagetest.NewFault(repo)
	ctx := context.Background()
	s := seg(2, 0, 4)
	_, fromCache, err := restore.FetchCached(ctx, b, s.String(), dest, dir, restore.FetchOptions{})
	if err != nil || fromCache || b.Calls(storagetest.OpGet) == 0 {
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

// gatedBackend holds every segment download until release is closed and
// reports each one's key on started when it begins.
type gatedBackend struct {
	storage.Backend
	hold    func(key string) bool // nil: hold every WAL download
	started chan string
	release chan struct{}
}

func newGated(b storage.Backend, hold func(key string) bool) *gatedBackend {
	return &gatedBackend{Backend: b, hold: hold, started: make(chan string, 64), release: make(chan struct{})}
}

func (g *gatedBackend) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if strings.HasPrefix(key, "wal/") && (g.hold == nil || g.hold(key)) {
		g.started <- key
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, storage.ObjectInfo{}, ctx.Err()
		}
	}
	return g.Backend.Get(ctx, key)
}

func holdSegment(s wal.Segment) func(string) bool {
	return func(key string) bool { return strings.Contains(key, s.String()) }
}

// runPrefetch runs PrefetchNext in the background; the result comes on the
// returned channel.
func runPrefetch(b storage.Backend, dir, after string, count int, opts restore.PrefetchOptions) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := restore.Prefetch(context.Background(), b, dir, after, testSegSize, count, opts)
		done <- err
	}()
	return done
}

func waitStarted(t *testing.T, g *gatedBackend, what string) string {
	t.Helper()
	select {
	case key := <-g.started:
		return key
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no download started", what)
		return ""
	}
}

// TestPrefetchParallel: a batch downloads several segments at once.
func TestPrefetchParallel(t *testing.T) {
	t.Parallel()
	repo, data, _, dir := prefetchSetup(t, 1, 6)
	g := newGated(repo, nil)
	done := runPrefetch(g, dir, seg(1, 0, 1).String(), 4, restore.PrefetchOptions{Parallel: 3})
	// Three downloads are held at once; one after another, the second
	// would never start.
	for i := range 3 {
		waitStarted(t, g, fmt.Sprintf("download %d of 3 at once", i+1))
	}
	select {
	case key := <-g.started:
		t.Fatalf("a fourth download (%s) started beyond Parallel 3", key)
	case <-time.After(100 * time.Millisecond):
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for n := uint32(2); n <= 5; n++ {
		s := seg(1, 0, n)
		if got, err := os.ReadFile(cachedPath(dir, s)); err != nil || !bytes.Equal(got, data[s.String()]) {
			t.Errorf("cached %s: %d bytes, %v; want the archived file", s, len(got), err)
		}
	}
	if entries := dirEntries(t, filepath.Join(dir, "00000001")); len(entries) != 8 {
		t.Errorf("cache holds %q, want 4 segments and 4 records, no busy or temp files", entries)
	}
}

// TestPrefetchWaitsForInFlight: wal-fetch for a segment the prefetcher is
// downloading waits for that download and takes its result, without a
// download of its own.
func TestPrefetchWaitsForInFlight(t *testing.T) {
	t.Parallel()
	repo, data, dest, dir := prefetchSetup(t, 1, 3)
	s2 := seg(1, 0, 2)
	g := newGated(repo, holdSegment(s2))
	done := runPrefetch(g, dir, seg(1, 0, 1).String(), 1, restore.PrefetchOptions{})
	waitStarted(t, g, "prefetch of segment 2")

	fg := storagetest.NewFault(repo)
	type fetched struct {
		fromCache bool
		err       error
	}
	got := make(chan fetched, 1)
	go func() {
		_, fromCache, err := restore.FetchCached(context.Background(), fg, s2.String(), dest, dir, restore.FetchOptions{PrefetchWait: time.Minute})
		got <- fetched{fromCache, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("FetchCached returned while the prefetch was in flight: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	close(g.release)
	select {
	case r := <-got:
		if r.err != nil || !r.fromCache || fg.Calls(storagetest.OpGet) != 0 {
			t.Fatalf("FetchCached after the prefetch: fromCache %v, err %v, %d downloads; want the prefetched copy", r.fromCache, r.err, fg.Calls(storagetest.OpGet))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FetchCached still waiting 10s after the prefetch finished")
	}
	assertDest(t, dest, data[s2.String()])
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestPrefetchWaitBounded: a prefetch that takes too long is not waited
// for past PrefetchWait: the segment is downloaded in the call.
func TestPrefetchWaitBounded(t *testing.T) {
	t.Parallel()
	repo, data, dest, dir := prefetchSetup(t, 1, 3)
	s2 := seg(1, 0, 2)
	g := newGated(repo, holdSegment(s2))
	done := runPrefetch(g, dir, seg(1, 0, 1).String(), 1, restore.PrefetchOptions{})
	defer func() {
		close(g.release)
		<-done
	}()
	waitStarted(t, g, "prefetch of segment 2")
	fg := storagetest.NewFault(repo)
	start := time.Now()
	_, fromCache, err := restore.FetchCached(context.Background(), fg, s2.String(), dest, dir, restore.FetchOptions{PrefetchWait: 300 * time.Millisecond})
	elapsed := time.Since(start)
	if err != nil || fromCache || fg.Calls(storagetest.OpGet) == 0 {
		t.Fatalf("FetchCached: fromCache %v, err %v, %d downloads; want its own download", fromCache, err, fg.Calls(storagetest.OpGet))
	}
	if elapsed < 300*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("FetchCached took %v, want the 300ms wait and then a download", elapsed)
	}
	assertDest(t, dest, data[s2.String()])
}

// TestPrefetchHelperHoldBusy is not a test: TestPrefetchCrashedDownload
// runs the test binary through it as a process that holds a segment's busy
// lock until it is killed.
func TestPrefetchHelperHoldBusy(t *testing.T) {
	path := os.Getenv("WALVAULT_TEST_HOLD_BUSY")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
}

// TestPrefetchCrashedDownload: the busy lock of a prefetcher that died
// mid-download ends the wait at once; one left unlocked is not waited for.
func TestPrefetchCrashedDownload(t *testing.T) {
	t.Parallel()
	repo, data, dest, dir := prefetchSetup(t, 1, 3)
	tdir := filepath.Join(dir, "00000001")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		t.Fatal(err)
	}
	s2, s3 := seg(1, 0, 2), seg(1, 0, 3)
	opts := restore.FetchOptions{PrefetchWait: time.Minute}

	// Left behind, unlocked.
	if err := os.WriteFile(filepath.Join(tdir, "."+s3.String()+".busy"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, fromCache, err := restore.FetchCached(context.Background(), repo, s3.String(), dest, dir, opts); err != nil || fromCache {
		t.Fatalf("FetchCached(%s) past a stale busy file: fromCache %v, err %v", s3, fromCache, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("FetchCached waited %v for a busy file nobody holds", d)
	}
	assertDest(t, dest, data[s3.String()])

	// Held by a process that is then killed.
	helper := exec.Command(os.Args[0], "-test.run=^TestPrefetchHelperHoldBusy$")
	helper.Env = append(os.Environ(), "WALVAULT_TEST_HOLD_BUSY="+filepath.Join(tdir, "."+s2.String()+".busy"))
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Wait()
	defer helper.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("helper: %q", line)
	}
	got := make(chan error, 1)
	go func() {
		_, fromCache, err := restore.FetchCached(context.Background(), repo, s2.String(), dest, dir, opts)
		if err == nil && fromCache {
			err = errors.New("served from the cache")
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("FetchCached did not wait for a held busy lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	helper.Process.Kill()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FetchCached still waiting 10s after the lock holder died")
	}
	assertDest(t, dest, data[s2.String()])
}

// TestPrefetchFollow: a following prefetcher keeps the window ahead of the
// position wal-fetch notes, and exits when the cache is cleared, on a
// timeline switch, or when recovery stops moving.
func TestPrefetchFollow(t *testing.T) {
	t.Parallel()
	repo, data, dest, dir := prefetchSetup(t, 1, 6)
	opts := restore.PrefetchOptions{Follow: true, Idle: 10 * time.Second}
	// waitCached fails at once when the prefetcher returned before s was
	// cached, and says what the cache held either way.
	waitCached := func(t *testing.T, s wal.Segment, done <-chan error) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(cachedPath(dir, s) + ".sha256"); err == nil {
				return
			}
			select {
			case err := <-done:
				t.Fatalf("prefetcher returned (%v) before %s was cached; %s", err, s, cacheState(dir))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not prefetched after 10s, prefetcher still running; %s", s, cacheState(dir))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	exited := func(t *testing.T, done <-chan error, what string) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("prefetcher after %s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("prefetcher still running 5s after %s", what)
		}
	}

	t.Run("cleared", func(t *testing.T) {
		if err := restore.NotePosition(dir, seg(1, 0, 1).String()); err != nil {
			t.Fatal(err)
		}
		done := runPrefetch(repo, dir, seg(1, 0, 1).String(), 2, opts)
		waitCached(t, seg(1, 0, 2), done)
		waitCached(t, seg(1, 0, 3), done)
		s2 := seg(1, 0, 2)
		if _, ok, err := restore.TakePrefetched(dir, s2.String(), dest); !ok || err != nil {
			t.Fatalf("TakePrefetched(%s): %v, %v", s2, ok, err)
		}
		assertDest(t, dest, data[s2.String()])
		restore.NotePosition(dir, s2.String())
		waitCached(t, seg(1, 0, 4), done) // the window moved on
		restore.TidyPrefetch(dir, "00000002.history", time.Now(), nil)
		exited(t, done, "the cache was cleared")
	})
	t.Run("timeline switch", func(t *testing.T) {
		restore.NotePosition(dir, seg(1, 0, 3).String())
		done := runPrefetch(repo, dir, seg(1, 0, 3).String(), 2, opts)
		waitCached(t, seg(1, 0, 5), done)
		restore.NotePosition(dir, seg(2, 0, 4).String())
		exited(t, done, "a switch to timeline 2")
	})
	t.Run("idle", func(t *testing.T) {
		restore.TidyPrefetch(dir, "00000002.history", time.Now(), nil)
		restore.NotePosition(dir, seg(1, 0, 5).String())
		start := time.Now()
		idle := opts
		idle.Idle = 300 * time.Millisecond
		done := runPrefetch(repo, dir, seg(1, 0, 5).String(), 4, idle)
		exited(t, done, "recovery stopped moving")
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("prefetcher exited after %v, before its idle time", d)
		}
		// Segment 6 came, 7 is not archived: the end of the archive for
		// now, not an error.
		if entries := dirEntries(t, filepath.Join(dir, "00000001")); len(entries) != 2 {
			t.Errorf("cache holds %q, want segment 6 and its record", entries)
		}
	})
}

// cacheState describes a prefetch cache for a failure message: the
// recorded position and the files of timeline 1.
func cacheState(dir string) string {
	position, err := os.ReadFile(filepath.Join(dir, "position"))
	var names []string
	entries, lerr := os.ReadDir(filepath.Join(dir, "00000001"))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return fmt.Sprintf("position %q (%v), timeline 1 holds %q (%v)", strings.TrimSpace(string(position)), err, names, lerr)
}
