package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
)

const partsTestID = "20261125T103000Z"

// storeParts stores raw cut into parts of partSize (lz4) and returns them;
// corrupt, when set, changes the stored bytes of part i.
func storeParts(t testing.TB, b storage.Backend, raw []byte, partSize int, corrupt func(i int, stored []byte) []byte) []repository.BackupPart {
	t.Helper()
	var parts []repository.BackupPart
	for i := 0; len(raw) > 0; i++ {
		n := min(partSize, len(raw))
		stored := raw[:n]
		if corrupt != nil {
			stored = corrupt(i, bytes.Clone(stored))
		}
		parts = append(parts, repotest.PutPart(t, b, repository.BackupPartKey(partsTestID, "base.tar", i, repository.LZ4), repository.LZ4, raw[:n], stored))
		raw = raw[n:]
	}
	return parts
}

func randomRaw(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{3}).Read(b)
	return b
}

// fetchGoroutines lists the part fetches still running.
func fetchGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "restore.(*partStream).fill.func") || strings.Contains(g, "restore.(*partStream).fetch") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func noFetchGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for fetchGoroutines() != "" {
		if time.Now().After(deadline) {
			t.Errorf("part fetches left running:\n%s", fetchGoroutines())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getLog records the order of Gets and can hold the Get of one key.
type getLog struct {
	storage.Backend
	mu   sync.Mutex
	gets []string
}

func (g *getLog) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	g.mu.Lock()
	g.gets = append(g.gets, key)
	g.mu.Unlock()
	return g.Backend.Get(ctx, key)
}

func (g *getLog) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.gets)
}

// These tests do not run in parallel: they look for leftover fetches.

func TestPartStreamReadsInOrder(t *testing.T) {
	b := newFixtureRepo(t)
	raw := randomRaw(5*partChunk*2 + 12345) // parts of 2.5 chunks
	parts := storeParts(t, b, raw, partChunk*5/2, nil)
	gl := &getLog{Backend: b}
	s := newPartStream(t.Context(), gl, partsTestID, parts)
	// Small reads of odd sizes cross chunk and part boundaries.
	var got bytes.Buffer
	buf := make([]byte, 7777)
	for {
		n, err := s.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), raw) {
		t.Fatalf("read %d bytes, not the %d stored", got.Len(), len(raw))
	}
	if s.total != int64(len(raw)) {
		t.Errorf("total %d, want %d", s.total, len(raw))
	}
	// Fetches run at once, so Gets may come in any order; each part is
	// fetched exactly once.
	seen := map[string]int{}
	for _, k := range gl.gets {
		seen[k]++
	}
	for _, p := range parts {
		if seen[p.Key] != 1 {
			t.Errorf("%s fetched %d times, want once", p.Key, seen[p.Key])
		}
	}
	if len(gl.gets) != len(parts) {
		t.Errorf("%d Gets for %d parts", len(gl.gets), len(parts))
	}
	s.Close()
	noFetchGoroutines(t)
}

// TestPartStreamReadsAhead: the next part is fetched while the current
// one is being read, but no further than partsAhead.
func TestPartStreamReadsAhead(t *testing.T) {
	b := newFixtureRepo(t)
	raw := randomRaw(6 * partChunk)
	parts := storeParts(t, b, raw, partChunk, nil)
	gl := &getLog{Backend: b}
	s := newPartStream(t.Context(), gl, partsTestID, parts)
	defer s.Close()
	if _, err := s.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for gl.count() < 1+partsAhead && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := gl.count(); n != 1+partsAhead {
		t.Errorf("%d parts fetched while reading the first, want %d", n, 1+partsAhead)
	}
	s.Close()
	noFetchGoroutines(t)
}

// TestPartStreamCorruptLaterPart: a bad later part fails the stream with
// an error naming it, while its last bytes and everything after it are
// withheld, though they were fetched ahead.
func TestPartStreamCorruptLaterPart(t *testing.T) {
	b := newFixtureRepo(t)
	const partSize = 3 * partChunk
	raw := randomRaw(5 * partSize)
	parts := storeParts(t, b, raw, partSize, func(i int, stored []byte) []byte {
		if i == 2 {
			stored[len(stored)-1] ^= 0xFF // in the part's last chunk
		}
		return stored
	})
	s := newPartStream(t.Context(), b, partsTestID, parts)
	got, err := io.ReadAll(s)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), parts[2].Key) {
		t.Fatalf("read: %v; want an error wrapping ErrCorrupt naming %s", err, parts[2].Key)
	}
	if len(got) >= 3*partSize || len(got) < 2*partSize || !bytes.Equal(got, raw[:len(got)]) {
		t.Errorf("handed out %d bytes before the error, want the good parts and less than all of part 2 (%d..%d)", len(got), 2*partSize, 3*partSize)
	}
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Read after the failure: %v, want the same error", err)
	}
	s.Close()
	noFetchGoroutines(t)
}

// TestPartStreamCloseMidway: closing a stream whose fetches are blocked on
// their full queues ends them.
func TestPartStreamCloseMidway(t *testing.T) {
	b := newFixtureRepo(t)
	raw := randomRaw(4 * 4 * partChunk)
	parts := storeParts(t, b, raw, 4*partChunk*2, nil)
	s := newPartStream(t.Context(), b, partsTestID, parts)
	if _, err := io.ReadFull(s, make([]byte, partChunk+1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	s.Close()
	noFetchGoroutines(t)
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read after Close: nil error")
	}
}

// TestPartStreamDrainCurrent: drainCurrent verifies the part being read,
// fetched ahead or not.
func TestPartStreamDrainCurrent(t *testing.T) {
	b := newFixtureRepo(t)
	raw := randomRaw(3 * 2 * partChunk)
	for _, bad := range []int{-1, 0} {
		t.Run(fmt.Sprint("bad part ", bad), func(t *testing.T) {
			parts := storeParts(t, b, raw, 2*partChunk+7, func(i int, stored []byte) []byte {
				if i == bad {
					stored[len(stored)/2] ^= 1
				}
				return stored
			})
			s := newPartStream(t.Context(), b, partsTestID, parts)
			defer s.Close()
			if _, err := s.Read(make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			err := s.drainCurrent()
			if bad == 0 && !errors.Is(err, ErrCorrupt) {
				t.Errorf("drainCurrent: %v, want ErrCorrupt", err)
			}
			if bad < 0 && err != nil {
				t.Errorf("drainCurrent: %v, want nil", err)
			}
			s.Close()
			noFetchGoroutines(t)
		})
		b = newFixtureRepo(t)
	}
}

// TestRestoreBackupCorruptLaterPart: with parts fetched ahead, a damaged
// later part of a many-part archive still fails the restore and leaves no
// data directory behind.
func TestRestoreBackupCorruptLaterPart(t *testing.T) {
	b := newFixtureRepo(t)
	entries := baseEntries(tarEntry{name: "base/1/big", body: randomRaw(20 << 10)})
	var bad string
	m := storeFixture(t, b, fixture{id: fixtureID, partSize: 4 << 10, archives: []fixtureArchive{{name: baseArchive, entries: entries}},
		tamper: func(a string, seq int, raw []byte) []byte {
			if seq == 3 {
				raw[len(raw)-1] ^= 0xFF
			}
			return raw
		}})
	if n := len(m.Archives[0].Parts); n < 6 {
		t.Fatalf("fixture has %d parts, want at least 6", n)
	}
	bad = m.Archives[0].Parts[3].Key
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	_, err := RestoreBackup(context.Background(), b, opts)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("RestoreBackup: %v; want an error wrapping ErrCorrupt naming %s", err, bad)
	}
	assertLeftAsBefore(t, opts.DataDir, false, 0o750)
	noFetchGoroutines(t)
}

// TestPartStreamVerified: Verified moves from one part's end to the next
// only when the part's last chunk, sent once its sha256 matched, is handed
// out; never while the part's earlier (unverified) chunks are read.
func TestPartStreamVerified(t *testing.T) {
	b := newFixtureRepo(t)
	partSize := partChunk * 5 / 2
	raw := randomRaw(4*partSize + 12345)
	parts := storeParts(t, b, raw, partSize, nil)
	s := newPartStream(t.Context(), b, partsTestID, parts)
	defer s.Close()
	ends := []int64{0}
	for _, p := range parts {
		ends = append(ends, ends[len(ends)-1]+p.RawSize)
	}
	var read int64
	buf := make([]byte, 7777)
	sawLag := false
	for {
		n, err := s.Read(buf)
		read += int64(n)
		v := s.Verified()
		// The part holding the last byte read, [ends[j], ends[j+1]).
		j := 0
		for j+1 < len(ends) && ends[j+1] < read {
			j++
		}
		lastChunk := ends[j] + (parts[j].RawSize-1)/partChunk*partChunk // where its last chunk starts
		switch {
		case read > lastChunk && v != ends[j+1]:
			t.Fatalf("after %d bytes (in the last chunk of part %d) Verified is %d, want %d", read, j, v, ends[j+1])
		case read <= lastChunk && v != ends[j]:
			t.Fatalf("after %d bytes (in part %d, before its last chunk) Verified is %d, want %d", read, j, v, ends[j])
		}
		if v < read {
			sawLag = true
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if v := s.Verified(); v != int64(len(raw)) {
		t.Errorf("Verified at the end: %d, want %d", v, len(raw))
	}
	if !sawLag {
		t.Error("Verified never lagged behind the bytes read: the test did not read unverified chunks")
	}
}

// breakFirstBodies breaks the first body of every key after `after` bytes
// (a connection reset mid-download); later Gets of the key are whole.
type breakFirstBodies struct {
	storage.Backend
	after int64
	mu    sync.Mutex
	seen  map[string]int
}

func (b *breakFirstBodies) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := b.Backend.Get(ctx, key)
	if err != nil {
		return rc, info, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[key]++; b.seen[key] > 1 {
		return rc, info, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, b.after), errReader{storagetest.ErrConnReset}), rc}, info, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestPartStreamRefetchesBrokenDownload: a part whose download breaks
// mid-body is fetched again and read on from where it broke; the bytes
// and their check are as without the break.
func TestPartStreamRefetchesBrokenDownload(t *testing.T) {
	b := newFixtureRepo(t)
	raw := randomRaw(3*partChunk + 999)
	parts := storeParts(t, b, raw, partChunk*2, nil)
	broken := &breakFirstBodies{Backend: b, after: 100 << 10, seen: map[string]int{}}
	s := newPartStream(t.Context(), broken, partsTestID, parts)
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("reading parts whose first download broke: %v", err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatalf("read %d bytes, not the %d stored", len(got), len(raw))
	}
	for _, p := range parts {
		if broken.seen[p.Key] != 2 {
			t.Errorf("%s fetched %d times, want twice (broken, then again)", p.Key, broken.seen[p.Key])
		}
	}
	s.Close()
	noFetchGoroutines(t)
}

// TestPartStreamBrokenDownloadGivesUp: a part that breaks on every
// download fails the stream after maxPartRefetches, as a storage failure,
// never as corruption.
func TestPartStreamBrokenDownloadGivesUp(t *testing.T) {
	b := newFixtureRepo(t)
	raw := randomRaw(partChunk + 999)
	parts := storeParts(t, b, raw, partChunk*2, nil)
	f := storagetest.NewFault(b)
	f.BreakBodies(storagetest.AnyKey, 100<<10)
	s := newPartStream(t.Context(), f, partsTestID, parts)
	_, err := io.ReadAll(s)
	if err == nil || errors.Is(err, ErrCorrupt) || storage.StreamError(err) == nil {
		t.Fatalf("reading a part that breaks on every download: got %v, want a storage stream error, not corruption", err)
	}
	if got := f.Calls(storagetest.OpGet); got != 1+maxPartRefetches {
		t.Errorf("%d downloads of the part, want %d", got, 1+maxPartRefetches)
	}
	s.Close()
	noFetchGoroutines(t)
}
