package retention

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
)

// recorder wraps a backend: it records every Delete in order, answers
// ErrLocked (and a retain-until date from Stat) for locked keys, and fails
// every Delete after the first failAfter with errCrash (never when -1).
type recorder struct {
	storage.Backend
	mu        sync.Mutex
	deletes   []string
	locked    map[string]time.Time
	failAfter int
	// untilInError: a locked Delete says until when (as S3's does), and
	// stats counts the Stats of locked keys.
	untilInError bool
	stats        int
}

var errCrash = errors.New("connection reset (simulated crash)")

func (r *recorder) Delete(ctx context.Context, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if until, ok := r.locked[key]; ok {
		if r.untilInError {
			return storage.OpError("delete", key, &storage.LockedError{Until: until, Why: "test lock"})
		}
		return storage.OpError("delete", key, storage.ErrLocked)
	}
	if r.failAfter >= 0 && len(r.deletes) >= r.failAfter {
		return storage.OpError("delete", key, errCrash)
	}
	r.deletes = append(r.deletes, key)
	return r.Backend.Delete(ctx, key)
}

func (r *recorder) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, err := r.Backend.Stat(ctx, key)
	r.mu.Lock()
	defer r.mu.Unlock()
	if until, ok := r.locked[key]; ok && err == nil {
		info.RetainUntil = until
		r.stats++
	}
	return info, err
}

// testRepo is a file repository with backups on days 1, 8, 15 and 22 of
// November 2026 (starting in segments 2, 4, 6, 8) and segments 1 to 12.
func testRepo(t *testing.T) (*recorder, []string) {
	t.Helper()
	r, ids, _ := testRepoWith(t, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", old))
	return r, ids
}

// testRepoWith is testRepo with identity id; it also returns the
// repository's directory.
func testRepoWith(t *testing.T, id repository.Identity) (*recorder, []string, string) {
	t.Helper()
	fb, dir := filetest.New(t)
	r := &recorder{Backend: fb, locked: map[string]time.Time{}, failAfter: -1}
	repotest.Init(t, fb, id)
	for n := uint32(1); n <= 12; n++ {
		put(t, fb, segObj(1, n).Key, "segment")
	}
	var ids []string
	for i, d := range []int{1, 8, 15, 22} {
		bi := done(d, 1, uint32(2+2*i))
		writeBackup(t, fb, *bi.Manifest)
		ids = append(ids, bi.ID)
	}
	return r, ids, dir
}

func put(t *testing.T, b storage.Backend, key, body string) {
	t.Helper()
	repotest.Put(t, b, key, []byte(body))
}

// writeBackup stores a backup of two parts.
func writeBackup(t *testing.T, b storage.Backend, m repository.BackupManifest) {
	t.Helper()
	repotest.WriteBackup(t, b, repotest.Backup{Manifest: m, PartSize: 6, Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("part 0part 1")}}})
}

// planNow loads the repository and plans policy. Plans run two hours
// ahead, so folders the test just wrote do not look like a running push.
func planNow(t *testing.T, b storage.Backend, policy string) Plan {
	t.Helper()
	inv, err := Load(context.Background(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanPolicy(inv, p, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func statuses(t *testing.T, b storage.Backend) string {
	t.Helper()
	list, err := repository.ListBackups(context.Background(), b)
	if err != nil {
		t.Fatalf("ListBackups: %v", err)
	}
	var out []string
	for _, bi := range list {
		out = append(out, bi.ID[6:8]+":"+string(bi.Status))
	}
	return strings.Join(out, " ")
}

func walLeft(t *testing.T, b storage.Backend) []string {
	t.Helper()
	var out []string
	err := b.List(context.Background(), "wal/", func(oi storage.ObjectInfo) error {
		out = append(out, strings.TrimSuffix(oi.Key[len("wal/00000001/"):], ".lz4"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestApplyOrder(t *testing.T) {
	ctx := context.Background()
	r, ids := testRepo(t)
	// A keep mark that was withdrawn: marks go last.
	for _, keep := range []bool{true, false} {
		if _, err := repository.WriteMark(ctx, r, ids[0], keep, time.Now(), repository.MarkOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	plan := planNow(t, r, "REDUNDANCY 2")
	if err := Preview(ctx, r, &plan, Options{}); err != nil {
		t.Fatal(err)
	}
	rep, err := Apply(ctx, r, plan, Options{CallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Groups in order; within a group (a window) any order.
	var groups [][]string
	for _, bid := range ids[:2] {
		groups = append(groups,
			[]string{repository.BackupManifestKey(bid)},
			[]string{repository.BackupPrefix(bid) + "backup_manifest",
				repository.BackupPartKey(bid, "base.tar", 0, repository.LZ4),
				repository.BackupPartKey(bid, "base.tar", 1, repository.LZ4)})
		if bid == ids[0] {
			marks, _ := repository.LoadMarks(ctx, r.Backend, bid)
			if len(marks) != 0 {
				t.Fatalf("marks of %s left: %+v", bid, marks)
			}
			// Two marks, one after the other, in the order they were written.
			var got []string
			for _, k := range r.deletes {
				if strings.Contains(k, "/marks/") {
					got = append(got, k)
				}
			}
			if len(got) != 2 || !strings.HasSuffix(got[0], "-keep") || !strings.HasSuffix(got[1], "-nokeep") {
				t.Fatalf("marks deleted: %v", got)
			}
			groups = append(groups, got[:1], got[1:])
		}
	}
	// The WAL after the backups, in one window.
	var wal []string
	for n := uint32(1); n <= 5; n++ {
		wal = append(wal, segObj(1, n).Key)
	}
	groups = append(groups, wal)
	var want, got []string
	for _, g := range groups {
		if len(r.deletes) < len(want)+len(g) {
			break
		}
		in := slices.Clone(r.deletes[len(want) : len(want)+len(g)])
		slices.Sort(in)
		got = append(got, in...)
		want = append(want, slices.Sorted(slices.Values(g))...)
	}
	if len(r.deletes) != len(want) || !reflect.DeepEqual(got, want) {
		t.Fatalf("delete order:\ngot  %s\nwant, a group at a time: %v", strings.Join(r.deletes, "\n     "), groups)
	}
	if got := statuses(t, r); got != "15:DONE 22:DONE" {
		t.Fatalf("after delete: %s", got)
	}
	if got, want := walLeft(t, r), names(1, 6, 12); !reflect.DeepEqual(got, want) {
		t.Fatalf("WAL left %v, want %v", got, want)
	}
	if len(rep.Backups) != 2 || rep.Backups[0].Outcome != Deleted || rep.Backups[0].Deleted != 6 || rep.Backups[1].Deleted != 4 {
		t.Fatalf("report: %+v", rep.Backups)
	}
	if rep.WAL.Deleted != 5 || rep.WAL.First != segName(1, 1) || rep.WAL.Last != segName(1, 5) || rep.WAL.Bytes != plan.WAL.Bytes {
		t.Fatalf("WAL report: %+v", rep.WAL)
	}
	// A second run finds nothing more to do.
	again := planNow(t, r, "REDUNDANCY 2")
	if len(again.DeletedBackups()) != 0 || len(again.WAL.Delete) != 0 {
		t.Fatalf("second plan deletes %+v and %d WAL objects", again.DeletedBackups(), len(again.WAL.Delete))
	}
}

// TestApplyInterrupted stops Apply at every point in turn: the repository
// always lists consistently, and a new delete finishes the job.
func TestApplyInterrupted(t *testing.T) {
	ctx := context.Background()
	for stop := 0; stop < 13; stop++ { // 13 deletes in all
		t.Run(fmt.Sprint(stop), func(t *testing.T) {
			r, _ := testRepo(t)
			r.failAfter = stop
			_, err := Apply(ctx, r, planNow(t, r, "REDUNDANCY 2"), Options{})
			if !errors.Is(err, errCrash) {
				t.Fatalf("Apply with a crash after %d deletes: err %v", stop, err)
			}
			got := statuses(t, r)
			// The backups kept are always whole and DONE; a backup being
			// deleted is DONE (untouched) or INCOMPLETE (manifest gone).
			if !strings.HasSuffix(got, "15:DONE 22:DONE") || strings.Contains(got, "WAITING") {
				t.Fatalf("after a crash after %d deletes: %s", stop, got)
			}
			r.failAfter = -1
			if _, err := Apply(ctx, r, planNow(t, r, "REDUNDANCY 2"), Options{}); err != nil {
				t.Fatal(err)
			}
			if got := statuses(t, r); got != "15:DONE 22:DONE" {
				t.Fatalf("after the second delete: %s", got)
			}
			if got, want := walLeft(t, r), names(1, 6, 12); !reflect.DeepEqual(got, want) {
				t.Fatalf("WAL left %v, want %v", got, want)
			}
		})
	}
}

func TestApplyLocked(t *testing.T) {
	for _, untilInError := range []bool{false, true} {
		t.Run(fmt.Sprintf("until in the error %v", untilInError), func(t *testing.T) {
			testApplyLocked(t, untilInError)
		})
	}
}

// testApplyLocked: locked objects are kept and reported with their
// retain-until date, asked with a Stat unless the refusal said it.
func testApplyLocked(t *testing.T, untilInError bool) {
	ctx := context.Background()
	r, ids := testRepo(t)
	r.untilInError = untilInError
	until := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	r.locked[repository.BackupManifestKey(ids[0])] = until
	lockedPart := repository.BackupPartKey(ids[1], "base.tar", 1, repository.LZ4)
	r.locked[lockedPart] = until
	r.locked[segObj(1, 1).Key] = until

	plan := planNow(t, r, "REDUNDANCY 2")
	if err := Preview(ctx, r, &plan, Options{}); err != nil {
		t.Fatal(err)
	}
	if !plan.Backups[0].LockedUntil.Equal(until) || !plan.Backups[1].LockedUntil.IsZero() {
		t.Fatalf("Preview: locked until %v and %v", plan.Backups[0].LockedUntil, plan.Backups[1].LockedUntil)
	}
	rep, err := Apply(ctx, r, plan, Options{})
	if err != nil {
		t.Fatalf("locks are not errors: %v", err)
	}
	a, b := rep.Backups[0], rep.Backups[1]
	if a.Outcome != KeptByLock || a.Deleted != 0 || len(a.Locked) != 1 || !a.Locked[0].RetainUntil.Equal(until) {
		t.Fatalf("backup with a locked manifest: %+v", a)
	}
	if b.Outcome != PartlyDeleted || len(b.Locked) != 1 || b.Locked[0].Key != lockedPart || !b.Locked[0].RetainUntil.Equal(until) {
		t.Fatalf("backup with a locked part: %+v", b)
	}
	for _, k := range r.deletes {
		if strings.HasPrefix(k, repository.BackupPrefix(ids[0])) {
			t.Fatalf("deleted %s of a backup whose manifest is locked", k)
		}
	}
	// The backup kept by its lock still needs WAL from segment 2; segment 1
	// is locked.
	if rep.WAL.Deleted != 0 || rep.WAL.Held != 4 || len(rep.WAL.Locked) != 1 || !rep.WAL.Locked[0].RetainUntil.Equal(until) {
		t.Fatalf("WAL: %+v", rep.WAL)
	}
	if got := statuses(t, r); got != "01:DONE 08:INCOMPLETE 15:DONE 22:DONE" {
		t.Fatalf("after delete: %s", got)
	}
	// Preview's Stat of the locked manifest, then one per locked object
	// Apply met, unless the refusal said until when.
	want := 4
	if untilInError {
		want = 1
	}
	if r.stats != want {
		t.Errorf("%d Stats of locked objects, want %d", r.stats, want)
	}
}

func TestApplyRechecks(t *testing.T) {
	ctx := context.Background()
	r, ids := testRepo(t)
	stray := "20261110T000000Z"
	put(t, r, repository.BackupPartKey(stray, "base.tar", 0, repository.LZ4), "interrupted")
	plan := planNow(t, r, "REDUNDANCY 2")
	if got := len(plan.DeletedBackups()); got != 3 {
		t.Fatalf("plan deletes %d backups, want 3", got)
	}
	// Between plan and apply: the oldest is marked keep, and the
	// incomplete one gets its manifest (its push finished after all).
	if _, err := repository.WriteMark(ctx, r, ids[0], true, time.Now(), repository.MarkOptions{}); err != nil {
		t.Fatal(err)
	}
	m := *done(10, 1, 5).Manifest
	if err := repository.WriteBackupManifest(ctx, r, m, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := Apply(ctx, r, plan, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Outcome{}
	for _, br := range rep.Backups {
		got[br.ID] = br.Outcome
	}
	want := map[string]Outcome{ids[0]: KeptByMark, ids[1]: Deleted, stray: KeptComplete}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if rep.WAL.Deleted != 0 {
		t.Fatalf("WAL deleted although a kept backup's start is unknown: %+v", rep.WAL)
	}
}

func TestLoadSkipsForeignKeys(t *testing.T) {
	ctx := context.Background()
	r, ids := testRepo(t)
	put(t, r, "backups/notes.txt", "mine")
	put(t, r, "wal/00000002.history", "1\t0/5000000\tbranch\n")
	inv, err := Load(ctx, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Backups) != 4 || len(inv.Objects) != 4 || len(inv.Objects[ids[0]]) != 4 || len(inv.WAL) != 13 || inv.SegmentSize != segSize {
		t.Fatalf("inventory: %d backups, %d folders (%d objects in the first), %d WAL, segment size %d",
			len(inv.Backups), len(inv.Objects), len(inv.Objects[ids[0]]), len(inv.WAL), inv.SegmentSize)
	}
	plan, err := PlanPolicy(inv, Policy{Redundancy, 1}, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, r, plan, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"backups/notes.txt", "wal/00000002.history"} {
		if _, err := r.Stat(ctx, k); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
}

// hiding adds storage.Versioned to a recorder: the keys in hidden are
// hidden behind a delete marker.
type hiding struct {
	*recorder
	hidden map[string]bool
}

func (h hiding) ListHidden(ctx context.Context, prefix string, fn func(storage.HiddenObject) error) error {
	return nil
}

func (h hiding) GetHidden(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if !h.hidden[key] {
		return nil, storage.ObjectInfo{}, storage.OpError("get hidden", key, storage.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader("{}")), storage.ObjectInfo{Key: key}, nil
}

func (h hiding) Unhide(ctx context.Context, key string) error { return storage.ErrNotFound }

func (h hiding) Versions(ctx context.Context, key string) ([]storage.ObjectVersion, error) {
	return nil, nil
}

func (h hiding) GetVersion(ctx context.Context, key, versionID string) (io.ReadCloser, storage.ObjectInfo, error) {
	return nil, storage.ObjectInfo{}, storage.OpError("get version", key, storage.ErrNotFound)
}

// TestApplyHiddenManifest: a backup whose manifest someone hid behind a
// delete marker looks INCOMPLETE, but retention must not finish the job.
func TestApplyHiddenManifest(t *testing.T) {
	ctx := context.Background()
	r, ids := testRepo(t)
	h := hiding{recorder: r, hidden: map[string]bool{repository.BackupManifestKey(ids[1]): true}}
	if err := r.Backend.Delete(ctx, repository.BackupManifestKey(ids[1])); err != nil {
		t.Fatal(err)
	}
	plan := planNow(t, h, "REDUNDANCY 2")
	if d := plan.DeletedBackups(); len(d) != 2 || d[1].ID != ids[1] || d[1].Status != repository.StatusIncomplete {
		t.Fatalf("plan: %+v", d)
	}
	rep, err := Apply(ctx, h, plan, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Backups[0].Outcome != Deleted || rep.Backups[1].Outcome != KeptHidden || rep.WAL.Deleted != 0 {
		t.Fatalf("report: %+v", rep)
	}
	for _, k := range r.deletes {
		if strings.HasPrefix(k, repository.BackupPrefix(ids[1])) {
			t.Fatalf("deleted %s of a backup whose manifest is only hidden", k)
		}
	}
}

// windowGate records the order in which WAL deletes start and holds each
// until want of them are in flight (or patience runs out).
type windowGate struct {
	storage.Backend
	want int

	mu       sync.Mutex
	started  []string
	inFlight int
	most     int
	full     chan struct{}
}

func (g *windowGate) Delete(ctx context.Context, key string) error {
	if !strings.HasPrefix(key, "wal/") {
		return g.Backend.Delete(ctx, key)
	}
	g.mu.Lock()
	g.started = append(g.started, key)
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	if g.inFlight == g.want {
		close(g.full)
		g.full = make(chan struct{})
	}
	full := g.full
	g.mu.Unlock()
	select {
	case <-full:
	case <-time.After(200 * time.Millisecond): // the last, short window
	}
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	return g.Backend.Delete(ctx, key)
}

// TestApplyDeletesWALInWindows: WAL goes deleteWindow objects at once
// (each is a round trip or two), window after window, oldest first; the
// report still counts and names them in order.
func TestApplyDeletesWALInWindows(t *testing.T) {
	ctx := context.Background()
	fb, _ := filetest.New(t)
	repotest.Init(t, fb, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", old))
	const segments = 40
	for n := uint32(1); n <= segments+4; n++ { // the backup needs 41 to 43
		put(t, fb, segObj(1, n).Key, "segment")
	}
	writeBackup(t, fb, *done(1, 1, segments+1).Manifest)
	gate := &windowGate{Backend: fb, want: deleteWindow, full: make(chan struct{})}
	plan := planNow(t, gate, "REDUNDANCY 1")
	if len(plan.WAL.Delete) != segments {
		t.Fatalf("the plan deletes %d WAL objects, want %d (%s)", len(plan.WAL.Delete), segments, plan.WAL.Reason)
	}
	rep, err := Apply(ctx, gate, plan, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if gate.most != deleteWindow || deleteWindow < 8 {
		t.Errorf("at most %d WAL deletes in flight, want %d (and at least 8)", gate.most, deleteWindow)
	}
	// Every delete of a window starts before any of the next one.
	window := func(key string) int {
		for i, f := range plan.WAL.Delete {
			if f.Key == key {
				return i / deleteWindow
			}
		}
		t.Fatalf("deleted %s, which the plan does not", key)
		return -1
	}
	for i := 1; i < len(gate.started); i++ {
		if window(gate.started[i]) < window(gate.started[i-1]) {
			t.Fatalf("delete of %s (window %d) started after one of window %d", gate.started[i], window(gate.started[i]), window(gate.started[i-1]))
		}
	}
	if rep.WAL.Deleted != segments || rep.WAL.First != segName(1, 1) || rep.WAL.Last != segName(1, segments) {
		t.Errorf("WAL report: %+v", rep.WAL)
	}
	if got, want := walLeft(t, fb), names(1, segments+1, segments+4); !reflect.DeepEqual(got, want) {
		t.Errorf("WAL left %v, want %v", got, want)
	}
}

// TestApplyLockedByPolicy: WAL written less than the repository's lock
// days ago (less an hour's margin) is still locked: Apply reports it with
// the end of its lock and sends no delete; older WAL, and WAL whose lock
// ends within the margin, is asked as before.
func TestApplyLockedByPolicy(t *testing.T) {
	ctx := context.Background()
	lock := repository.LockPolicy{Mode: storage.Governance, Days: 30}
	r, _, dir := testRepoWith(t, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", old).WithLock(lock))
	now := time.Now()
	written := map[uint32]time.Time{
		1: now.Add(-40 * 24 * time.Hour),
		2: now.Add(-40 * 24 * time.Hour),
		3: now.Add(-30*24*time.Hour + 30*time.Minute), // its lock ends within the margin: asked
		4: now.Add(-2 * 24 * time.Hour),
		5: now.Add(-time.Hour),
	}
	for n, at := range written {
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(segObj(1, n).Key)), at, at); err != nil {
			t.Fatal(err)
		}
	}
	plan := planNow(t, r, "REDUNDANCY 2")
	if len(plan.WAL.Delete) != 5 {
		t.Fatalf("the plan deletes %d WAL objects, want 5", len(plan.WAL.Delete))
	}
	rep, err := Apply(ctx, r, plan, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var walDeletes []string
	for _, k := range r.deletes {
		if strings.HasPrefix(k, "wal/") {
			walDeletes = append(walDeletes, k)
		}
	}
	slices.Sort(walDeletes)
	if want := []string{segObj(1, 1).Key, segObj(1, 2).Key, segObj(1, 3).Key}; !reflect.DeepEqual(walDeletes, want) {
		t.Errorf("WAL deletes sent: %v, want %v", walDeletes, want)
	}
	if rep.WAL.Deleted != 3 || rep.WAL.LockedByPolicy != 2 || len(rep.WAL.Locked) != 2 {
		t.Fatalf("WAL report: %+v", rep.WAL)
	}
	for i, n := range []uint32{4, 5} {
		l := rep.WAL.Locked[i]
		want := written[n].Add(30 * 24 * time.Hour)
		if l.Key != segObj(1, n).Key || l.RetainUntil.Sub(want).Abs() > time.Second {
			t.Errorf("locked %d: %+v, want %s until %v", i, l, segObj(1, n).Key, want)
		}
	}
}

// TestKeepLocked: after Preview finds a locked manifest, KeepLocked plans
// the WAL as Apply deletes it: the WAL the locked backup needs is not
// counted for deletion, so a dry run shows what --confirm deletes.
func TestKeepLocked(t *testing.T) {
	ctx := context.Background()
	r, ids := testRepo(t)
	r.locked[repository.BackupManifestKey(ids[0])] = time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	plan := planNow(t, r, "REDUNDANCY 2")
	before := len(plan.WAL.Delete)
	if err := Preview(ctx, r, &plan, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := KeepLocked(&plan); err != nil {
		t.Fatal(err)
	}
	rep, err := Apply(ctx, r, plan, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(plan.WAL.Delete); got >= before || got != rep.WAL.Deleted {
		t.Errorf("WAL counted for deletion: %d before KeepLocked, %d after; Apply deleted %d: want fewer after, and what Apply deletes", before, got, rep.WAL.Deleted)
	}
}

// TestApplyDeletesResurfacedVersions: in a versioned bucket a delete
// removes the current version only; a key uploaded twice came back visible
// while the run said it was deleted. Apply deletes the older versions too,
// and one under a lock keeps the key, reported locked.
func TestApplyDeletesResurfacedVersions(t *testing.T) {
	ctx := context.Background()
	m := mem.New()
	repotest.Init(t, m, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", old))
	twice, lockedOlder := segObj(1, 1).Key, segObj(1, 2).Key
	for n := uint32(1); n <= 12; n++ {
		var opts storage.PutOptions
		if k := segObj(1, n).Key; k == lockedOlder { // its first version is locked
			opts.Retention = &storage.Retention{Mode: storage.Governance, Until: time.Now().Add(24 * time.Hour)}
		}
		if err := m.Put(ctx, segObj(1, n).Key, strings.NewReader("segment"), opts); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range []int{1, 8, 15, 22} {
		writeBackup(t, m, *done(d, 1, uint32(2+2*i)).Manifest)
	}
	for _, k := range []string{twice, lockedOlder} { // uploaded again
		if err := m.Put(ctx, k, strings.NewReader("segment"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	b := storage.Stack(m, storage.StackOptions{})
	rep, err := Apply(ctx, b, planNow(t, b, "REDUNDANCY 1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, twice); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("%s, uploaded twice, after delete: %v; want gone", twice, err)
	}
	if _, err := b.Stat(ctx, lockedOlder); err != nil {
		t.Errorf("%s, whose older version is locked: %v; want it kept", lockedOlder, err)
	}
	if len(rep.WAL.Locked) != 1 || rep.WAL.Locked[0].Key != lockedOlder {
		t.Errorf("locked WAL reported: %+v; want %s", rep.WAL.Locked, lockedOlder)
	}
}

// TestKeepLockedKeepsChains: an incremental backup its lock keeps (its
// manifest is locked, while the policy would delete it) keeps the full
// backup it builds on, whose lock ended first: retention never leaves an
// incremental without its chain (explore22a F7).
func TestKeepLockedKeepsChains(t *testing.T) {
	ctx := context.Background()
	fb, _ := filetest.New(t)
	r := &recorder{Backend: fb, locked: map[string]time.Time{}, failAfter: -1}
	repotest.Init(t, fb, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", old))
	for n := uint32(1); n <= 12; n++ {
		put(t, fb, segObj(1, n).Key, "segment")
	}
	full, inc, newer := done(1, 1, 2), done(2, 1, 4), done(8, 1, 6)
	inc.Manifest.Type, inc.Manifest.Parent = repository.BackupIncremental, full.ID
	for _, bi := range []repository.BackupInfo{full, inc, newer} {
		writeBackup(t, fb, *bi.Manifest)
	}
	r.locked[repository.BackupManifestKey(inc.ID)] = time.Now().Add(48 * time.Hour)
	plan := planNow(t, r, "REDUNDANCY 1")
	if err := Preview(ctx, r, &plan, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := KeepLocked(&plan); err != nil {
		t.Fatal(err)
	}
	for _, bp := range plan.Backups {
		if bp.ID == full.ID && (bp.Delete || !strings.Contains(bp.Reason, "ancestor of incremental backup "+inc.ID)) {
			t.Errorf("full backup %s under a locked incremental: delete %v (%s); want kept as its ancestor", full.ID, bp.Delete, bp.Reason)
		}
	}
	if _, err := Apply(ctx, r, plan, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fb.Stat(ctx, repository.BackupManifestKey(full.ID)); err != nil {
		t.Errorf("full backup %s after delete: %v; want it kept", full.ID, err)
	}
}
