package archive_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

// identityCounter counts the reads of walvault.json and, while failPut is
// set, fails every other upload.
type identityCounter struct {
	*storagetest.Fault
	failPut atomic.Bool
}

func newIdentityCounter(b storage.Backend) *identityCounter {
	c := &identityCounter{Fault: storagetest.NewFault(b)}
	c.Before(storagetest.OpPut, func(key string) bool { return key != repository.IdentityKey }, func(context.Context, string) error {
		if c.failPut.Load() {
			return errors.New("injected upload failure")
		}
		return nil
	})
	return c
}

// reads is the number of Gets of walvault.json so far.
func (c *identityCounter) reads() int {
	n := 0
	for _, k := range c.Returned(storagetest.OpGet) {
		if k == repository.IdentityKey {
			n++
		}
	}
	return n
}

// clock is a settable Options.Now.
type clock struct{ now atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.now.Store(testNow.UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.now.Add(int64(d)) }
func (c *clock) opts(ttl time.Duration) archive.Options {
	o := opts(repository.LZ4)
	o.Now, o.IdentityCacheTTL = c.Now, ttl
	return o
}

const ttl = archive.DefaultIdentityCacheTTL

// cacheFiles lists the identity cache of walDir.
func cacheFiles(t *testing.T, walDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(walDir, "walvault", "identity", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// segmentOf writes segment s of cluster sysID into dir.
func segmentOf(t *testing.T, dir string, s wal.Segment, sysID uint64, seed uint64) string {
	t.Helper()
	h := header(t, s)
	h.SystemID = sysID
	p, _ := writeSegment(t, dir, s.String(), h, seed)
	return p
}

// wipe empties the repository directory: the repository is replaced at the
// same location.
func wipe(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPushIdentityCache: after one push has read walvault.json, the next
// pushes within the TTL do not read it again; after the TTL one does, and
// renews the cache. The cache is private to the server user.
func TestPushIdentityCache(t *testing.T) {
	t.Parallel()
	fb := mem.New()
	b := newIdentityCounter(fb)
	walDir, names := pgWAL(t, 4)
	clk := newClock()

	mustPush(t, b, filepath.Join(walDir, names[0]), clk.opts(ttl))
	if got := b.reads(); got != 1 {
		t.Fatalf("reads of walvault.json by the first push: got %d, want 1", got)
	}
	files := cacheFiles(t, walDir)
	if len(files) != 1 {
		t.Fatalf("identity cache files: got %q, want one", files)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(filepath.Dir(files[0])): 0o700, filepath.Dir(files[0]): 0o700, files[0]: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("mode of %s: got %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}

	clk.advance(ttl - time.Second)
	res := mustPush(t, b, filepath.Join(walDir, names[1]), clk.opts(ttl))
	if got := b.reads(); got != 1 {
		t.Errorf("reads of walvault.json within the TTL: got %d, want still 1", got)
	}
	if want := walKey(t, names[1], repository.LZ4); res.Key != want || res.AlreadyArchived {
		t.Errorf("push with a cached identity: got %+v, want %s stored", res, want)
	}

	// PostgreSQL's retry of a push that did store its segment: already
	// archived, and no reason to doubt the identity.
	if res := mustPush(t, b, filepath.Join(walDir, names[1]), clk.opts(ttl)); !res.AlreadyArchived {
		t.Errorf("second push of %s: got %+v, want already archived", names[1], res)
	}
	if got := b.reads(); got != 1 || len(cacheFiles(t, walDir)) != 1 {
		t.Errorf("after an already archived push: %d reads of walvault.json, cache %q; want 1 read, the entry kept", got, cacheFiles(t, walDir))
	}

	clk.advance(2 * time.Second) // the TTL counts from the read, not the last use
	mustPush(t, b, filepath.Join(walDir, names[2]), clk.opts(ttl))
	if got := b.reads(); got != 2 {
		t.Errorf("reads of walvault.json after the TTL: got %d, want 2", got)
	}
	mustPush(t, b, filepath.Join(walDir, names[3]), clk.opts(ttl))
	if got := b.reads(); got != 2 {
		t.Errorf("reads of walvault.json after the renewed read: got %d, want still 2", got)
	}
	for _, n := range names {
		if _, err := fb.Stat(context.Background(), walKey(t, n, repository.LZ4)); err != nil {
			t.Errorf("%s not archived: %v", n, err)
		}
	}
}

// TestPushIdentityCacheOff: with no TTL every push reads walvault.json and
// nothing is written under pg_wal.
func TestPushIdentityCacheOff(t *testing.T) {
	t.Parallel()
	fb := mem.New()
	b := newIdentityCounter(fb)
	walDir, names := pgWAL(t, 2)
	for _, n := range names {
		mustPush(t, b, filepath.Join(walDir, n), opts(repository.LZ4))
	}
	if got := b.reads(); got != 2 {
		t.Errorf("reads of walvault.json without a cache: got %d, want 2", got)
	}
	if _, err := os.Stat(filepath.Join(walDir, "walvault")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory without a cache: %v, want none created", err)
	}
}

// TestPushStaleIdentityCacheOtherCluster: the repository was replaced by
// another cluster's at the same location. A cache entry past its TTL, or
// one whose cluster is not the segment's, is not trusted: the push reads
// walvault.json and is refused before anything is written.
func TestPushStaleIdentityCacheOtherCluster(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		advance time.Duration
		sysID   uint64 // of the segment pushed after the replacement
	}{
		{"entry past its TTL", ttl, testSysID},
		{"entry of another cluster than the segment's", 0, otherSysID + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fb, root := filetest.New(t)
			b := newIdentityCounter(fb)
			walDir, names := pgWAL(t, 1) // cluster testSysID
			clk := newClock()
			mustPush(t, b, filepath.Join(walDir, names[0]), clk.opts(ttl))
			if len(cacheFiles(t, walDir)) != 1 {
				t.Fatal("no identity cached")
			}

			wipe(t, root)
			other := seg(1, 0, 7)
			mustPush(t, fb, segmentOf(t, t.TempDir(), other, otherSysID, 7), opts(repository.LZ4))
			before := keys(t, fb)

			clk.advance(tc.advance)
			s := seg(1, 0, 2)
			p := segmentOf(t, walDir, s, tc.sysID, 2)
			reads := b.reads()
			res, err := archive.Push(context.Background(), b, p, clk.opts(ttl))
			if !errors.Is(err, archive.ErrWrongCluster) {
				t.Fatalf("push into a replaced repository: got %+v, %v; want ErrWrongCluster", res, err)
			}
			if b.reads() != reads+1 {
				t.Errorf("reads of walvault.json: got %d more, want 1", b.reads()-reads)
			}
			if after := keys(t, fb); !slices.Equal(after, before) {
				t.Errorf("objects after the refused push: got %q, want unchanged %q", after, before)
			}
			assertAbsent(t, fb, walKey(t, s.String(), repository.LZ4))
			assertNoTempFiles(t, root)
		})
	}
}

// TestPushCachedIdentityConflictIsRechecked: within the TTL a push trusts
// the cache; if the repository was replaced and the name is taken there,
// the conditional create refuses the upload (nothing is overwritten), the
// identity is read again and the push is refused as another cluster's, not
// reported as a plain conflict, and the cache entry is gone.
func TestPushCachedIdentityConflictIsRechecked(t *testing.T) {
	t.Parallel()
	fb, root := filetest.New(t)
	b := newIdentityCounter(fb)
	walDir, names := pgWAL(t, 2)
	clk := newClock()
	mustPush(t, b, filepath.Join(walDir, names[0]), clk.opts(ttl))

	wipe(t, root)
	theirs := segmentOf(t, t.TempDir(), seg(1, 0, 2), otherSysID, 99)
	mustPush(t, fb, theirs, opts(repository.LZ4))
	key := walKey(t, names[1], repository.LZ4)
	stored, _ := object(t, fb, key)

	res, err := archive.Push(context.Background(), b, filepath.Join(walDir, names[1]), clk.opts(ttl))
	if !errors.Is(err, archive.ErrWrongCluster) || errors.Is(err, archive.ErrConflict) {
		t.Fatalf("push over a replaced repository's object: got %+v, %v; want ErrWrongCluster", res, err)
	}
	if got, _ := object(t, fb, key); string(got) != string(stored) {
		t.Error("the other cluster's object was overwritten")
	}
	if files := cacheFiles(t, walDir); len(files) != 0 {
		t.Errorf("identity cache after a conflict: got %q, want it dropped", files)
	}
}

// TestPushIdentityCacheDroppedOnFailedUpload: a failed upload drops the
// entry, so the next push reads walvault.json.
func TestPushIdentityCacheDroppedOnFailedUpload(t *testing.T) {
	t.Parallel()
	fb := mem.New()
	b := newIdentityCounter(fb)
	walDir, names := pgWAL(t, 2)
	clk := newClock()
	mustPush(t, b, filepath.Join(walDir, names[0]), clk.opts(ttl))
	b.failPut.Store(true)
	if _, err := archive.Push(context.Background(), b, filepath.Join(walDir, names[1]), clk.opts(ttl)); err == nil {
		t.Fatal("push with a failing upload: got nil, want the error")
	}
	if files := cacheFiles(t, walDir); len(files) != 0 {
		t.Errorf("identity cache after a failed upload: got %q, want it dropped", files)
	}
	b.failPut.Store(false)
	reads := b.reads()
	mustPush(t, b, filepath.Join(walDir, names[1]), clk.opts(ttl))
	if b.reads() != reads+1 {
		t.Errorf("reads of walvault.json after a failed upload: got %d more, want 1", b.reads()-reads)
	}
}

// TestPushIdentityCacheCorrupt: an entry that is torn, foreign, for another
// repository, from the future or describes no valid identity is ignored
// (walvault.json is read, the push succeeds) and replaced by a good one.
func TestPushIdentityCacheCorrupt(t *testing.T) {
	t.Parallel()
	good := func(t *testing.T, walDir string) map[string]any {
		var e map[string]any
		data, err := os.ReadFile(cacheFiles(t, walDir)[0])
		if err == nil {
			err = json.Unmarshal(data, &e)
		}
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	edit := func(f func(e map[string]any)) func(t *testing.T, walDir string) []byte {
		return func(t *testing.T, walDir string) []byte {
			e := good(t, walDir)
			f(e)
			data, _ := json.Marshal(e)
			return data
		}
	}
	identity := func(e map[string]any) map[string]any { return e["identity"].(map[string]any) }
	tests := map[string]func(t *testing.T, walDir string) []byte{
		"empty":            func(*testing.T, string) []byte { return nil },
		"torn":             func(t *testing.T, walDir string) []byte { d, _ := json.Marshal(good(t, walDir)); return d[:len(d)/2] },
		"not json":         func(*testing.T, string) []byte { return []byte("\x00\xff garbage") },
		"other repository": edit(func(e map[string]any) { e["repository"] = "file:///elsewhere" }),
		"from the future":  edit(func(e map[string]any) { e["verified_at"] = testNow.Add(time.Hour) }),
		"no time":          edit(func(e map[string]any) { delete(e, "verified_at") }),
		"no system id":     edit(func(e map[string]any) { delete(identity(e), "system_identifier") }),
		"bad compression":  edit(func(e map[string]any) { identity(e)["compression"] = "brotli" }),
		"newer format":     edit(func(e map[string]any) { identity(e)["format_version"] = repository.FormatVersion + 1 }),
		"bad lock policy":  edit(func(e map[string]any) { identity(e)["lock_mode"] = "FOREVER" }),
		"directory":        nil,
	}
	for name, corrupt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fb := mem.New()
			b := newIdentityCounter(fb)
			walDir, names := pgWAL(t, 2)
			clk := newClock()
			mustPush(t, b, filepath.Join(walDir, names[0]), clk.opts(ttl))
			path := cacheFiles(t, walDir)[0]
			if corrupt == nil {
				os.Remove(path)
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, corrupt(t, walDir), 0o600); err != nil {
				t.Fatal(err)
			}

			mustPush(t, b, filepath.Join(walDir, names[1]), clk.opts(ttl))
			if got := b.reads(); got != 2 {
				t.Errorf("reads of walvault.json with a %s entry: got %d, want 2", name, got)
			}
			if corrupt == nil {
				return // a directory in the way is not replaced; it only costs the read
			}
			if e := good(t, walDir); e["repository"] != fb.Location() || identity(e)["system_identifier"] != "7300000000000000001" {
				t.Errorf("entry after a push: got %v, want a good one", e)
			}
		})
	}
}

// TestPushIdentityCacheChecksWhatItMust: a cached identity still has to
// match the segment's segment size and the configured lock policy; when
// not, the repository decides, with the errors a push without a cache
// gives.
func TestPushIdentityCacheChecksWhatItMust(t *testing.T) {
	t.Parallel()
	fb, root := filetest.New(t)
	b := newIdentityCounter(fb)
	walDir, names := pgWAL(t, 1)
	clk := newClock()
	mustPush(t, b, filepath.Join(walDir, names[0]), clk.opts(ttl))
	before := keys(t, fb)

	o := clk.opts(ttl)
	o.Lock = repository.LockPolicy{Mode: storage.Governance, Days: 7}
	s := seg(1, 0, 2)
	p, _ := writeSegment(t, walDir, s.String(), header(t, s), 2)
	if _, err := archive.Push(context.Background(), b, p, o); !errors.Is(err, repository.ErrLockPolicy) {
		t.Errorf("push under another lock policy with a cached identity: got %v, want ErrLockPolicy", err)
	}

	big := seg(1, 0, 3)
	h := header(t, big)
	h.SegmentSize, h.PageAddr = 2*testSegSize, 3*2*testSegSize
	p, _ = writeSegment(t, walDir, big.String(), h, 3)
	if _, err := archive.Push(context.Background(), b, p, clk.opts(ttl)); err == nil || !strings.Contains(err.Error(), "segment size") {
		t.Errorf("push of another segment size with a cached identity: got %v, want the segment size refused", err)
	}
	if got := b.reads(); got != 3 {
		t.Errorf("reads of walvault.json: got %d, want 3 (each mismatch asks the repository)", got)
	}
	if after := keys(t, fb); !slices.Equal(after, before) {
		t.Errorf("objects after refused pushes: got %q, want unchanged %q", after, before)
	}
	assertNoTempFiles(t, root)
}

// TestPushIdentityCacheKeepsConfiguredCompression: the compression is the
// configured one, with the identity cached as with walvault.json read.
func TestPushIdentityCacheKeepsConfiguredCompression(t *testing.T) {
	t.Parallel()
	fb := mem.New()
	b := newIdentityCounter(fb)
	walDir, names := pgWAL(t, 2)
	clk := newClock()
	first := clk.opts(ttl)
	first.Compression = repository.None
	mustPush(t, b, filepath.Join(walDir, names[0]), first)
	res := mustPush(t, b, filepath.Join(walDir, names[1]), clk.opts(ttl)) // lz4 configured
	if want := walKey(t, names[1], repository.LZ4); res.Key != want {
		t.Errorf("key with a cached none identity and lz4 configured: got %q, want %q", res.Key, want)
	}
	if got := b.reads(); got != 1 {
		t.Errorf("reads of walvault.json: got %d, want 1", got)
	}
}

// TestPushIdentityCachePerRepository: two repositories pushed to from one
// pg_wal keep an entry each.
func TestPushIdentityCachePerRepository(t *testing.T) {
	t.Parallel()
	fa := mem.New()
	fb := mem.New()
	a, b := newIdentityCounter(fa), newIdentityCounter(fb)
	walDir, names := pgWAL(t, 3)
	clk := newClock()
	for _, n := range names {
		mustPush(t, a, filepath.Join(walDir, n), clk.opts(ttl))
		mustPush(t, b, filepath.Join(walDir, n), clk.opts(ttl))
	}
	if a.reads() != 1 || b.reads() != 1 {
		t.Errorf("reads of walvault.json: got %d and %d, want 1 each", a.reads(), b.reads())
	}
	if files := cacheFiles(t, walDir); len(files) != 2 {
		t.Errorf("identity cache files: got %q, want two", files)
	}
}

// TestPushToAnUnmountedRepository: a file:// repository at a mount point
// whose disk is not mounted shows as an empty directory. No push lands
// there, not within the identity cache's life (a file:// push checks
// walvault.json is still there) and not after it (the location held a
// repository this pg_wal pushed to: an empty one is a gone one, not a new
// one); once the disk is back, pushing goes on.
func TestPushToAnUnmountedRepository(t *testing.T) {
	t.Parallel()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := file.New(mnt)
	if err != nil {
		t.Fatal(err)
	}
	walDir, names := pgWAL(t, 3)
	o := opts(repository.LZ4)
	o.IdentityCacheTTL = time.Hour
	mustPush(t, b, filepath.Join(walDir, names[0]), o)

	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.Rename(mnt, disk); err != nil { // umount
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil { // the directory under the mount point
		t.Fatal(err)
	}
	history := filepath.Join(walDir, "00000002.history")
	if err := os.WriteFile(history, []byte("1\t0/300000\tno recovery target specified\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(walDir, "archive_status", "00000002.history.ready"))
	// A wal-push of its own opens the repository afresh: the empty
	// directory (the backend opened before would see its root replaced).
	fresh, err := file.New(mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(walDir, names[1]), history} {
		_, err := archive.Push(context.Background(), fresh, p, o)
		if !errors.As(err, new(*repository.GoneError)) || !strings.Contains(err.Error(), "a disk not mounted") {
			t.Fatalf("Push(%s) into the empty directory under the mount point: %v; want the repository gone", filepath.Base(p), err)
		}
	}
	// Past the cache's life, the repository is read: an empty location
	// where this pg_wal pushed before is gone, not new.
	later := o
	later.Now = func() time.Time { return testNow.Add(2 * time.Hour) }
	if _, err := archive.Push(context.Background(), fresh, filepath.Join(walDir, names[1]), later); !errors.As(err, new(*repository.GoneError)) {
		t.Fatalf("Push past the cache's life into the empty directory: %v; want the repository gone", err)
	}
	if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
		t.Errorf("the directory under the mount point holds %d entries, want none", len(ents))
	}

	if err := os.Remove(mnt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(disk, mnt); err != nil { // mounted again
		t.Fatal(err)
	}
	if fresh, err = file.New(mnt); err != nil {
		t.Fatal(err)
	}
	mustPush(t, fresh, filepath.Join(walDir, names[1]), o)
}

// TestPushByHandLeavesNothingBeside: a segment pushed by hand from outside
// a pg_wal (a copy out of a stopped server's) gets no identity cache beside
// it: walvault/identity/ is pg_wal's, never a directory's of the DBA's
// (explore22d F8).
func TestPushByHandLeavesNothingBeside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := seg(1, 0, 3)
	p, _ := writeSegment(t, dir, s.String(), header(t, s), 1)
	o := opts(repository.LZ4)
	o.IdentityCacheTTL = ttl
	mustPush(t, mem.New(), p, o)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory after a push by hand holds %q; want only the segment", names)
	}
}
