package archive_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/internal/osuser"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal/waltest"
)

// pgWAL lays out a pg_wal directory with n segments 000000010000000000000001
// onwards, each with a .ready in archive_status, and returns the directory
// and the segment names.
func pgWAL(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := 1; i <= n; i++ {
		s := seg(1, 0, uint32(i))
		writeSegment(t, dir, s.String(), header(t, s), uint64(i))
		touch(t, filepath.Join(dir, "archive_status", s.String()+".ready"))
		names = append(names, s.String())
	}
	return dir, names
}

// done does what PostgreSQL does after wal-push for name exited 0.
func done(t *testing.T, walDir, name string) {
	t.Helper()
	st := filepath.Join(walDir, "archive_status", name)
	if err := os.Rename(st+".ready", st+".done"); err != nil {
		t.Fatal(err)
	}
}

// faultWAL is pgWAL(t, n) whose last segment is already archived in a
// mem repository, so that the repository exists (as after the first
// wal-push) and every later Put is a WAL upload; b reaches it through a
// Fault.
func faultWAL(t *testing.T, n int) (fb *mem.Backend, b *storagetest.Fault, walDir string, names []string) {
	t.Helper()
	fb = mem.New()
	walDir, names = pgWAL(t, n)
	mustPush(t, fb, filepath.Join(walDir, names[n-1]), opts(repository.LZ4))
	return fb, storagetest.NewFault(fb), walDir, names
}

func touch(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func aheadOpts(n int) archive.AheadOptions {
	return archive.AheadOptions{Options: opts(repository.LZ4), Concurrency: n}
}

func pushAhead(t *testing.T, b storage.Backend, path string, o archive.AheadOptions) archive.AheadResult {
	t.Helper()
	res, err := archive.PushAhead(context.Background(), b, path, o)
	if err != nil {
		t.Fatalf("PushAhead(%s): got %v, want nil", filepath.Base(path), err)
	}
	return res
}

func recordPath(walDir, name string) string {
	return filepath.Join(walDir, "walvault", "pushed", name)
}

func records(t *testing.T, walDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(walDir, "walvault", "pushed"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func aheadNames(r archive.AheadResult) []string {
	var names []string
	for _, a := range r.Ahead {
		names = append(names, a.File.String())
	}
	slices.Sort(names)
	return names
}

func TestPushAheadPushesRecordsAndSkipsLater(t *testing.T) {
	t.Parallel()
	b := mem.New()
	walDir, names := pgWAL(t, 6)

	res := pushAhead(t, b, filepath.Join(walDir, names[0]), aheadOpts(3))
	if res.Skipped || res.File.String() != names[0] || res.AheadFailed != 0 {
		t.Fatalf("first call: got %+v, want %s pushed, not skipped, no failure", res, names[0])
	}
	if got, want := aheadNames(res), names[1:4]; !slices.Equal(got, want) {
		t.Fatalf("pushed ahead: got %q, want %q (the oldest .ready after the requested one)", got, want)
	}
	if res.AheadBytes != 3*testSegSize {
		t.Errorf("AheadBytes: got %d, want %d", res.AheadBytes, 3*testSegSize)
	}
	for _, n := range names[:4] {
		if _, info := object(t, b, walKey(t, n, repository.LZ4)); info.Metadata[repository.MetaSHA256] != fileSHA256(t, filepath.Join(walDir, n)) {
			t.Errorf("%s: stored sha256 %s, want the file's", n, info.Metadata[repository.MetaSHA256])
		}
	}
	for _, n := range names[4:] {
		assertAbsent(t, b, walKey(t, n, repository.LZ4))
	}
	if got, want := records(t, walDir), names[1:4]; !slices.Equal(got, want) {
		t.Fatalf("records: got %q, want %q (the requested file is never recorded)", got, want)
	}
	for _, d := range []string{filepath.Join(walDir, "walvault"), filepath.Join(walDir, "walvault", "pushed")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: got %v %v, want mode 0700", d, fi.Mode(), err)
		}
	}
	var rec struct {
		SHA256     string `json:"sha256"`
		Size       int64  `json:"size"`
		Repository string `json:"repository"`
	}
	if err := json.Unmarshal(readFileT(t, recordPath(walDir, names[1])), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.SHA256 != fileSHA256(t, filepath.Join(walDir, names[1])) || rec.Size != testSegSize || rec.Repository != b.Location() {
		t.Errorf("record of %s: got %+v, want the file's sha256, size %d and repository %s", names[1], rec, testSegSize, b.Location())
	}
	// archive_status is PostgreSQL's: untouched.
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(walDir, "archive_status", n+".ready")); err != nil {
			t.Errorf("%s.ready: %v, want it left alone", n, err)
		}
	}

	// PostgreSQL's own calls for the pushed-ahead files: skipped, record gone.
	done(t, walDir, names[0])
	for _, n := range names[1:4] {
		res := pushAhead(t, b, filepath.Join(walDir, n), aheadOpts(3))
		if !res.Skipped || !res.AlreadyArchived || res.File.String() != n || len(res.Ahead) != 0 {
			t.Fatalf("call for %s: got %+v, want skipped at once", n, res)
		}
		if res.Proof != archive.ProofSHA256 {
			t.Errorf("call for %s, written just before it was pushed ahead: proven by %q, want %q (hashed again)", n, res.Proof, archive.ProofSHA256)
		}
		if _, err := os.Stat(recordPath(walDir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("record of %s after PostgreSQL's call: %v, want it removed", n, err)
		}
		done(t, walDir, n)
	}
	// The next call with no record pushes and looks ahead again.
	res = pushAhead(t, b, filepath.Join(walDir, names[4]), aheadOpts(3))
	if res.Skipped || !slices.Equal(aheadNames(res), names[5:]) {
		t.Fatalf("call for %s: got %+v, want pushed with %s ahead", names[4], res, names[5])
	}
}

func readFileT(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPushAheadChangedFileIsPushedAgain: a record is trusted only while it
// matches the file on disk and the repository.
func TestPushAheadChangedFileIsPushedAgain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		other  bool // record for another repository
		// wantConflict: the stored copy differs, so pushing again fails as
		// a conflict; otherwise it is "already archived" after a real push.
		wantConflict bool
	}{
		{"same size and mtime, other bytes", func(t *testing.T, p string) {
			fi, _ := os.Stat(p)
			s := seg(1, 0, 2)
			writeSegment(t, filepath.Dir(p), filepath.Base(p), header(t, s), 99)
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, false, true},
		{"rewritten", func(t *testing.T, p string) {
			s := seg(1, 0, 2)
			writeSegment(t, filepath.Dir(p), filepath.Base(p), header(t, s), 98)
		}, false, true},
		{"same bytes, new mtime", func(t *testing.T, p string) {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(p, later, later); err != nil {
				t.Fatal(err)
			}
		}, false, false},
		{"record of another repository", func(t *testing.T, p string) {}, true, false},
	}
	for _, tc := range tests {
		// A settled file is one the later call would trust on its inode
		// and change time: the changes must be seen that way too.
		for _, settled := range []bool{false, true} {
			name := tc.name
			if settled {
				name += ", settled"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := mem.New()
				walDir, names := pgWAL(t, 2)
				if settled {
					time.Sleep(archive.SettledMargin + 100*time.Millisecond)
				}
				pushAhead(t, b, filepath.Join(walDir, names[0]), aheadOpts(4))
				rp := recordPath(walDir, names[1])
				if _, err := os.Stat(rp); err != nil {
					t.Fatalf("record of %s: %v", names[1], err)
				}
				if tc.other {
					var rec map[string]any
					json.Unmarshal(readFileT(t, rp), &rec)
					rec["repository"] = "file:///somewhere/else"
					data, _ := json.Marshal(rec)
					os.WriteFile(rp, data, 0o600)
				}
				p := filepath.Join(walDir, names[1])
				tc.change(t, p)
				res, err := archive.PushAhead(context.Background(), b, p, aheadOpts(4))
				if res.Skipped {
					t.Fatalf("PushAhead(%s) after the change: skipped, want pushed again", names[1])
				}
				if tc.wantConflict {
					if !errors.Is(err, archive.ErrConflict) {
						t.Fatalf("PushAhead(%s) with other content: got %v, want ErrConflict (never silently skipped)", names[1], err)
					}
				} else if err != nil || !res.AlreadyArchived {
					t.Fatalf("PushAhead(%s): got %+v, %v, want pushed again: already archived", names[1], res, err)
				}
				if _, err := os.Stat(rp); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("record after the call: %v, want removed", err)
				}
			})
		}
	}
}

// TestPushAheadSettledFileTrustedOnItsIdentity: a file that had not changed
// for SettledMargin before it was pushed ahead is trusted later on its inode
// and change time, without reading it; a copy put in its place, or a record
// without the identity (an older walvault's), is hashed again.
func TestPushAheadSettledFileTrustedOnItsIdentity(t *testing.T) {
	t.Parallel()
	b := mem.New()
	walDir, names := pgWAL(t, 4)
	time.Sleep(archive.SettledMargin + 100*time.Millisecond)
	pushAhead(t, b, filepath.Join(walDir, names[0]), aheadOpts(3))
	done(t, walDir, names[0])

	// Unchanged: proven by its identity.
	res := pushAhead(t, b, filepath.Join(walDir, names[1]), aheadOpts(3))
	if !res.Skipped || res.Proof != archive.ProofStat {
		t.Fatalf("call for the unchanged %s: got skipped %v proven by %q, want skipped, proven by %q", names[1], res.Skipped, res.Proof, archive.ProofStat)
	}
	done(t, walDir, names[1])

	// The same bytes and mtime in another file renamed into its place: the
	// inode and change time differ, so it is hashed, and it matches.
	p := filepath.Join(walDir, names[2])
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	tmp := p + ".copy"
	if err := os.WriteFile(tmp, readFileT(t, p), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	res = pushAhead(t, b, p, aheadOpts(3))
	if !res.Skipped || res.Proof != archive.ProofSHA256 {
		t.Fatalf("call for %s replaced by a copy: got skipped %v proven by %q, want skipped, proven by %q", names[2], res.Skipped, res.Proof, archive.ProofSHA256)
	}
	done(t, walDir, names[2])

	// A record without the identity, as an older walvault wrote it.
	rp := recordPath(walDir, names[3])
	var rec map[string]json.RawMessage // raw: nanosecond times do not survive float64
	if err := json.Unmarshal(readFileT(t, rp), &rec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dev", "inode", "ctime_ns", "read_at_ns"} {
		if _, ok := rec[k]; !ok {
			t.Fatalf("record of %s has no %q: %v", names[3], k, rec)
		}
		delete(rec, k)
	}
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(rp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	res = pushAhead(t, b, filepath.Join(walDir, names[3]), aheadOpts(3))
	if !res.Skipped || res.Proof != archive.ProofSHA256 {
		t.Fatalf("call for %s with an older record: got skipped %v proven by %q, want skipped, proven by %q", names[3], res.Skipped, res.Proof, archive.ProofSHA256)
	}
}

func TestPushAheadPrunesRecords(t *testing.T) {
	t.Parallel()
	b := mem.New()
	walDir, names := pgWAL(t, 5)
	pushAhead(t, b, filepath.Join(walDir, names[0]), aheadOpts(4))
	if got := records(t, walDir); len(got) != 4 {
		t.Fatalf("records: got %q, want 4", got)
	}
	// PostgreSQL recycled two of them (say, after a crash they were
	// archived by other means) and a crashed writer left a temp file.
	for _, n := range names[3:] {
		os.Remove(filepath.Join(walDir, n))
		os.Remove(filepath.Join(walDir, "archive_status", n+".ready"))
	}
	tmp := filepath.Join(walDir, "walvault", "pushed", ".tmp-"+names[1]+"-123")
	touch(t, tmp)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(tmp, old, old)

	res := pushAhead(t, b, filepath.Join(walDir, names[1]), aheadOpts(4))
	if !res.Skipped {
		t.Fatalf("call for %s: got %+v, want skipped", names[1], res)
	}
	if got, want := records(t, walDir), names[2:3]; !slices.Equal(got, want) {
		t.Fatalf("records after pruning: got %q, want %q", got, want)
	}
}

func TestPushAheadOff(t *testing.T) {
	t.Parallel()
	b := mem.New()
	walDir, names := pgWAL(t, 3)
	res := pushAhead(t, b, filepath.Join(walDir, names[0]), aheadOpts(0))
	if len(res.Ahead) != 0 || res.AheadFailed != 0 {
		t.Fatalf("Concurrency 0: got %+v, want nothing pushed ahead", res)
	}
	if _, err := os.Stat(filepath.Join(walDir, "walvault")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory with push-ahead off: %v, want none created", err)
	}
	// A file outside any pg_wal (no archive_status): a plain push.
	lone := filepath.Join(t.TempDir(), names[1])
	os.Link(filepath.Join(walDir, names[1]), lone)
	if res := pushAhead(t, b, lone, aheadOpts(4)); res.Skipped || len(res.Ahead) != 0 {
		t.Fatalf("push without archive_status: got %+v, want a plain push", res)
	}
}

func TestPushAheadConcurrencyBoundedAndFailuresOnlyLogged(t *testing.T) {
	t.Parallel()
	fb, b, walDir, names := faultWAL(t, 10)
	failed := walKey(t, names[2], repository.LZ4)
	// WAL uploads are slow, and one fails.
	b.Delay(storagetest.OpPut, func(key string) bool { return key != repository.IdentityKey }, 50*time.Millisecond)
	b.Fail(storagetest.OpPut, storagetest.Key(failed), errors.New("injected upload failure"))

	res := pushAhead(t, b, filepath.Join(walDir, names[0]), aheadOpts(3))
	if res.Skipped || len(res.Ahead) != 2 || res.AheadFailed != 1 {
		t.Fatalf("got %+v, want the requested file pushed, 2 ahead, 1 failed ahead", res)
	}
	if most := b.MaxInFlight(storagetest.OpPut); most > 4 {
		t.Errorf("uploads in flight: got at most %d, want at most 4 (requested + 3 ahead)", most)
	}
	if most := b.MaxInFlight(storagetest.OpPut); most < 2 {
		t.Errorf("uploads in flight: got at most %d, want them in parallel", most)
	}
	if got, want := records(t, walDir), []string{names[1], names[3]}; !slices.Equal(got, want) {
		t.Fatalf("records: got %q, want %q (none for the failed push)", got, want)
	}
	assertAbsent(t, fb, failed)
	done(t, walDir, names[0])
	// The requested file's failure is the call's error; ahead ones still go.
	_, err := archive.PushAhead(context.Background(), b, filepath.Join(walDir, names[2]), aheadOpts(3))
	if err == nil {
		t.Fatalf("PushAhead with the requested upload failing: got nil, want the error")
	}
	if got, want := records(t, walDir), []string{names[1], names[3], names[4], names[5], names[6]}; !slices.Equal(got, want) {
		t.Fatalf("records: got %q, want %q", got, want)
	}
}

// slowLink makes uploads behave as on a link too slow to carry more than
// one file within a call's time: an upload of a hog holds the link until
// its context ends, and an upload of a waiter goes only once some hog has
// started and none holds the link any more.
type slowLink struct {
	started, active atomic.Int32
	hogged          sync.Map // keys of the hogs that started
}

func (l *slowLink) install(b *storagetest.Fault, hogs, waiters []string) {
	b.Before(storagetest.OpPut, func(k string) bool { return slices.Contains(hogs, k) }, func(ctx context.Context, k string) error {
		l.hogged.Store(k, true)
		l.started.Add(1)
		l.active.Add(1)
		defer l.active.Add(-1)
		<-ctx.Done()
		return ctx.Err()
	})
	b.Before(storagetest.OpPut, func(k string) bool { return slices.Contains(waiters, k) }, func(ctx context.Context, k string) error {
		for l.started.Load() == 0 || l.active.Load() > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil
	})
}

// TestPushAheadYieldsTheLinkToTheRequestedFile: on a link too slow for
// the requested file and its pushes ahead within the call's time, the
// pushes ahead are cut off halfway (leaving no record) and the requested
// file is archived; otherwise all would fail together, on every retry.
func TestPushAheadYieldsTheLinkToTheRequestedFile(t *testing.T) {
	t.Parallel()
	fb, b, walDir, names := faultWAL(t, 5)
	var link slowLink
	link.install(b, []string{walKey(t, names[1], repository.LZ4), walKey(t, names[2], repository.LZ4), walKey(t, names[3], repository.LZ4)},
		[]string{walKey(t, names[0], repository.LZ4)})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	res, err := archive.PushAhead(ctx, b, filepath.Join(walDir, names[0]), aheadOpts(3))
	if err != nil {
		t.Fatalf("the requested file, its pushes ahead filling the link: %v, want it archived once they are cut off", err)
	}
	if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
		t.Errorf("archived after %v, want the pushes ahead cut off only halfway through the 2s", elapsed)
	}
	if len(res.Ahead) != 0 || res.AheadFailed != 3 {
		t.Errorf("got %d pushed ahead, %d failed; want the 3 cut off", len(res.Ahead), res.AheadFailed)
	}
	if got := records(t, walDir); len(got) != 0 {
		t.Errorf("records of pushes cut off: %q, want none", got)
	}
	object(t, fb, walKey(t, names[0], repository.LZ4))
	done(t, walDir, names[0])

	// After a cut-off the next calls push one file each, for a while.
	res = pushAhead(t, fb, filepath.Join(walDir, names[1]), aheadOpts(3))
	if len(res.Ahead) != 0 || res.AheadFailed != 0 {
		t.Errorf("the call after a cut-off pushed %d ahead (%d failed), want none", len(res.Ahead), res.AheadFailed)
	}
	done(t, walDir, names[1])
	paused := filepath.Join(walDir, "walvault", "ahead-paused")
	long := time.Now().Add(-11 * time.Minute)
	if err := os.Chtimes(paused, long, long); err != nil {
		t.Fatal(err)
	}
	if res = pushAhead(t, fb, filepath.Join(walDir, names[2]), aheadOpts(3)); len(res.Ahead) != 2 {
		t.Errorf("a call 11 minutes after the cut-off pushed %d ahead, want the 2 waiting", len(res.Ahead))
	}
}

// TestPushAheadResumesWhenTheLinkIsFastAgain: during the pause after a
// cut-off, a call whose own file took a large share of its time keeps the
// pause; one whose file took a small share ends it, and the next call
// pushes ahead again.
func TestPushAheadResumesWhenTheLinkIsFastAgain(t *testing.T) {
	t.Parallel()
	fb, b, walDir, names := faultWAL(t, 5)
	paused := filepath.Join(walDir, "walvault", "ahead-paused")
	if err := os.MkdirAll(filepath.Dir(paused), 0o700); err != nil {
		t.Fatal(err)
	}
	touch(t, paused)
	// 400 ms of a 2 s call: with 3 pushes ahead beside it, the file would
	// have needed 1.6 s, past the halfway cut-off.
	b.Before(storagetest.OpPut, func(k string) bool { return k == walKey(t, names[0], repository.LZ4) }, func(context.Context, string) error {
		time.Sleep(400 * time.Millisecond)
		return nil
	})
	call := func(b storage.Backend, name string, timeout time.Duration) archive.AheadResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res, err := archive.PushAhead(ctx, b, filepath.Join(walDir, name), aheadOpts(3))
		if err != nil {
			t.Fatalf("PushAhead(%s): %v", name, err)
		}
		done(t, walDir, name)
		return res
	}

	if res := call(b, names[0], 2*time.Second); len(res.Ahead) != 0 {
		t.Errorf("a call during the pause pushed %d ahead, want none", len(res.Ahead))
	}
	if _, err := os.Stat(paused); err != nil {
		t.Errorf("a call whose file took 400 ms of 2 s ended the pause (%v); want it kept", err)
	}
	if res := call(fb, names[1], time.Minute); len(res.Ahead) != 0 {
		t.Errorf("the call that ends the pause pushed %d ahead, want none: it began paused", len(res.Ahead))
	}
	if _, err := os.Stat(paused); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a call whose file took a small share of a minute kept the pause (%v); want it ended", err)
	}
	if res := call(fb, names[2], time.Minute); len(res.Ahead) != 2 {
		t.Errorf("the call after the pause ended pushed %d ahead, want the 2 waiting", len(res.Ahead))
	}
}

// TestPushAheadWaitsForTheTimelinesHistory: no file of a timeline is
// pushed ahead while that timeline's history file waits or is the one
// asked for: if its push fails for good (another server took the
// timeline ID: a promotion while the repository was unreachable), this
// server's WAL of that timeline must not land beside the other's.
func TestPushAheadWaitsForTheTimelinesHistory(t *testing.T) {
	t.Parallel()
	b := mem.New()
	walDir, names := pgWAL(t, 1)
	mustPush(t, b, filepath.Join(walDir, names[0]), opts(repository.LZ4))
	done(t, walDir, names[0])
	history := []byte("1\t0/200000\tno recovery target specified\n")
	if err := os.WriteFile(filepath.Join(walDir, "00000002.history"), history, 0o600); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(walDir, "archive_status", "00000002.history.ready"))
	var tl2 []string
	for n := uint32(2); n <= 3; n++ {
		s := seg(2, 0, n)
		writeSegment(t, walDir, s.String(), header(t, s), uint64(n))
		touch(t, filepath.Join(walDir, "archive_status", s.String()+".ready"))
		tl2 = append(tl2, s.String())
	}
	// Another server's timeline 2 is in the repository already.
	other := filepath.Join(t.TempDir(), "00000002.history")
	if err := os.WriteFile(other, []byte("1\t0/180000\tno recovery target specified\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustPush(t, b, other, opts(repository.LZ4))

	res, err := archive.PushAhead(context.Background(), b, filepath.Join(walDir, "00000002.history"), aheadOpts(4))
	if err == nil {
		t.Fatalf("PushAhead of a history file another server's took: got %+v, want a conflict", res)
	}
	if len(res.Ahead) != 0 {
		t.Errorf("pushed ahead %q while timeline 2's history failed; want nothing", aheadNames(res))
	}
	for _, n := range tl2 {
		key := repository.WALKey(waltest.FileName(t, n), repository.LZ4)
		if _, err := b.Stat(context.Background(), key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s after the failed history push: %v, want it not archived", key, err)
		}
	}

	// Its own history archived (a repository without the other's): the
	// timeline's segments go ahead again.
	b2 := mem.New()
	mustPush(t, b2, filepath.Join(walDir, names[0]), opts(repository.LZ4))
	res = pushAhead(t, b2, filepath.Join(walDir, "00000002.history"), aheadOpts(4))
	if len(res.Ahead) != 0 {
		t.Errorf("pushed ahead %q beside the history file itself; want nothing yet", aheadNames(res))
	}
	done(t, walDir, "00000002.history")
	res = pushAhead(t, b2, filepath.Join(walDir, tl2[0]), aheadOpts(4))
	if got := aheadNames(res); !slices.Equal(got, tl2[1:]) {
		t.Errorf("pushed ahead %q once the history was archived; want %q", got, tl2[1:])
	}
}

// TestPushAheadAsRootKeepsServerOwner: a push run by hand as root (the
// README's advice for a missing segment) gives the state it creates in
// pg_wal/walvault to pg_wal's owner, so that the server's own calls can
// still record and cache there (explore24d F6).
func TestPushAheadAsRootKeepsServerOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root, to hand pg_wal to another user: run it as root (./scripts/test.sh does)")
	}
	t.Parallel()
	const uid, gid = 4242, 4343
	b := mem.New()
	walDir, names := pgWAL(t, 3)
	if err := os.Chown(walDir, uid, gid); err != nil {
		t.Fatal(err)
	}
	pushAhead(t, b, filepath.Join(walDir, names[0]), aheadOpts(2))
	for _, p := range []string{filepath.Join(walDir, "walvault"), filepath.Join(walDir, "walvault", "pushed"), recordPath(walDir, names[1])} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, ggot, _ := osuser.OwnerGroup(fi); got != uid || ggot != gid {
			t.Errorf("%s: owner %d:%d, want pg_wal's %d:%d", p, got, ggot, uid, gid)
		}
	}
}
