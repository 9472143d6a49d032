package retention

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// partialKey is the key of wal-receive's partial of segment n on timeline
// tli that ends off bytes into the (16 MiB) segment.
func partialKey(tli, n uint32, off uint64) string {
	s := wal.Segment{Timeline: wal.TimelineID(tli), Seg: n}
	return repository.PartialKey(s, wal.LSN(uint64(n)*segSize+off), repository.LZ4)
}

func partialObj(tli, n uint32, off uint64) storage.ObjectInfo {
	return storage.ObjectInfo{Key: partialKey(tli, n, off), Size: 100, ModTime: old}
}

func partialKeys(fs []PartialFile) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Key)
	}
	return out
}

func TestPlanPartials(t *testing.T) {
	four := []repository.BackupInfo{done(1, 1, 2), done(8, 1, 4), done(15, 1, 6), done(22, 1, 8)}
	// Segments 1 to 12 on timeline 1, but 4 (lost; only a partial has it)
	// and 11 (not archived yet: the receiver's segment is 13, an
	// older orphan is in 11).
	var walObjs []storage.ObjectInfo
	for _, oi := range segRange(1, 1, 12) {
		if oi.Key != segObj(1, 4).Key && oi.Key != segObj(1, 11).Key {
			walObjs = append(walObjs, oi)
		}
	}
	partials := []storage.ObjectInfo{
		partialObj(1, 3, 0x1000), partialObj(1, 3, 0x2000), // superseded, before the cutoff
		partialObj(1, 4, 0x3000),                             // not archived, wholly before the cutoff
		partialObj(1, 9, 0x1000),                             // superseded, in the kept range: garbage all the same
		partialObj(1, 11, 0x1000),                            // not archived, kept range: its only copy
		partialObj(1, 13, 0x1000), partialObj(1, 13, 0x9000), // the open segment: both stay
		partialObj(2, 5, 0x500), // an old branch's last segment, wholly before the cutoff
		partialObj(2, 6, 0x500), // the cutoff's own segment, on another timeline: stays
		{Key: "partial/README"}, {Key: "partial/00000001/" + segName(1, 7) + "/junk"},
	}
	inv := inventory(four, nil, walObjs)
	inv.Partials = partials
	plan, err := PlanPolicy(inv, Policy{Redundancy, 2}, now) // cutoff 0/6000028
	if err != nil {
		t.Fatal(err)
	}
	pp := plan.Partials
	want := []string{partialKey(1, 3, 0x1000), partialKey(1, 3, 0x2000), partialKey(1, 4, 0x3000), partialKey(2, 5, 0x500), partialKey(1, 9, 0x1000)}
	if got := partialKeys(pp.Delete); !reflect.DeepEqual(got, want) {
		t.Fatalf("partials deleted:\ngot  %v\nwant %v", got, want)
	}
	var superseded []bool
	for _, f := range pp.Delete {
		superseded = append(superseded, f.Superseded)
	}
	if !reflect.DeepEqual(superseded, []bool{true, true, false, false, true}) || pp.Superseded != 3 {
		t.Fatalf("superseded flags %v (%d)", superseded, pp.Superseded)
	}
	if pp.Kept != 4 || pp.Open != 3 || pp.KeptBytes != 400 || pp.Bytes != 500 || len(pp.Other) != 2 {
		t.Fatalf("kept %d of %d segments (%d bytes), deleted %d bytes, other %v", pp.Kept, pp.Open, pp.KeptBytes, pp.Bytes, pp.Other)
	}
	if why := pp.Reason(plan.WAL); !strings.Contains(why, "3 superseded") || !strings.Contains(why, "2 wholly before 0/6000028") {
		t.Fatalf("reason %q", why)
	}
	// Partials never change what happens to the WAL.
	if got := len(plan.WAL.Delete); got != 4 {
		t.Fatalf("WAL deleted %d objects, want segments 1, 2, 3 and 5", got)
	}
}

func TestPlanPartialsWithoutCutoff(t *testing.T) {
	partials := []storage.ObjectInfo{partialObj(1, 2, 0x1000), partialObj(1, 5, 0x1000), partialObj(1, 1, 0x10)}
	tests := []struct {
		name    string
		backups []repository.BackupInfo
	}{
		{"no DONE backup", []repository.BackupInfo{waiting(1, 1, 2), incomplete(3)}},
		{"only the newest DONE backup, at segment 2", []repository.BackupInfo{done(1, 1, 2)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Segment 1 is gone (before any backup), 2 to 4 are archived.
			inv := inventory(tc.backups, nil, segRange(1, 2, 4))
			inv.Partials = partials
			plan, err := PlanPolicy(inv, Policy{Redundancy, 1}, now)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{partialKey(1, 2, 0x1000)} // superseded, whatever the backups
			if plan.WAL.Cutoff != 0 {
				want = []string{partialKey(1, 1, 0x10), partialKey(1, 2, 0x1000)} // and before the cutoff
			}
			if got := partialKeys(plan.Partials.Delete); !reflect.DeepEqual(got, want) {
				t.Fatalf("partials deleted %v, want %v", got, want)
			}
		})
	}
}

// TestPlanPartialsRunningPush: while a backup-push may be running, a
// partial written since it began stays even before the cutoff, like WAL.
func TestPlanPartialsRunningPush(t *testing.T) {
	backups := []repository.BackupInfo{done(1, 1, 2), done(8, 1, 4), incomplete(25)}
	recent := partialObj(2, 3, 0x100)
	recent.ModTime = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC) // the push began at 00:00 on the 25th
	inv := inventory(backups, nil, segRange(1, 1, 6))
	inv.Partials = []storage.ObjectInfo{partialObj(2, 2, 0x100), recent}
	plan, err := PlanPolicy(inv, Policy{Redundancy, 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	if plan.WAL.HeldSince.IsZero() {
		t.Fatal("the plan should hold WAL for the running push")
	}
	if got := partialKeys(plan.Partials.Delete); !reflect.DeepEqual(got, []string{partialKey(2, 2, 0x100)}) {
		t.Fatalf("partials deleted %v, want only the one written before the push", got)
	}
}

// TestApplyPartials runs the plan on a file repository: superseded and
// old partials go after the WAL, a locked one is skipped and reported,
// the open segment's partials stay, and a second delete finds nothing.
func TestApplyPartials(t *testing.T) {
	ctx := context.Background()
	r, _ := testRepo(t) // segments 1-12 on timeline 1; REDUNDANCY 2 keeps from segment 6
	for _, k := range []string{
		partialKey(1, 3, 0x1000),  // superseded
		partialKey(1, 10, 0x1000), // superseded, locked
		partialKey(2, 5, 0x1000),  // old branch, before the cutoff
		partialKey(2, 7, 0x1000),  // old branch, kept range
		partialKey(1, 13, 0x1000), partialKey(1, 13, 0x2000),
	} {
		put(t, r, k, "partial")
	}
	until := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	r.locked[partialKey(1, 10, 0x1000)] = until

	plan := planNow(t, r, "REDUNDANCY 2")
	if len(plan.Partials.Delete) != 3 {
		t.Fatalf("plan deletes partials %v", partialKeys(plan.Partials.Delete))
	}
	rep, err := Apply(ctx, r, plan, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// WAL 1-5 first, then the partials (one window: in any order).
	want := []string{partialKey(1, 3, 0x1000), partialKey(2, 5, 0x1000)}
	got := slices.Sorted(slices.Values(r.deletes[len(r.deletes)-2:]))
	if !reflect.DeepEqual(got, want) || !strings.HasPrefix(r.deletes[len(r.deletes)-3], "wal/") {
		t.Fatalf("deletes end with %v, want a segment then %v", r.deletes[len(r.deletes)-3:], want)
	}
	pr := rep.Partials
	if pr.Deleted != 2 || pr.Superseded != 1 || pr.First != segName(1, 3) || pr.Last != segName(2, 5) ||
		len(pr.Locked) != 1 || pr.Locked[0].Key != partialKey(1, 10, 0x1000) || !pr.Locked[0].RetainUntil.Equal(until) {
		t.Fatalf("partials report: %+v", pr)
	}
	var left []string
	if err := r.List(ctx, repository.PartialPrefix, func(oi storage.ObjectInfo) error {
		left = append(left, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantLeft := []string{partialKey(1, 10, 0x1000), partialKey(1, 13, 0x1000), partialKey(1, 13, 0x2000), partialKey(2, 7, 0x1000)}
	if !reflect.DeepEqual(left, wantLeft) {
		t.Fatalf("partials left %v, want %v", left, wantLeft)
	}
	delete(r.locked, partialKey(1, 10, 0x1000)) // the lock expired
	again := planNow(t, r, "REDUNDANCY 2")
	if got := partialKeys(again.Partials.Delete); !reflect.DeepEqual(got, []string{partialKey(1, 10, 0x1000)}) {
		t.Fatalf("second plan deletes %v, want only the partial whose lock expired", got)
	}
}

// TestApplyPartialsHeld: a backup kept by its lock lowers the cutoff; a
// partial that is not superseded is then held like WAL, a superseded one
// still goes.
func TestApplyPartialsHeld(t *testing.T) {
	ctx := context.Background()
	r, ids := testRepo(t)
	r.locked[repository.BackupManifestKey(ids[0])] = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	put(t, r, partialKey(2, 4, 0x1000), "old branch")
	put(t, r, partialKey(1, 3, 0x1000), "superseded")
	rep, err := Apply(ctx, r, planNow(t, r, "REDUNDANCY 2"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Partials.Held != 1 || rep.Partials.Deleted != 1 || rep.Partials.Superseded != 1 {
		t.Fatalf("partials report: %+v", rep.Partials)
	}
	if _, err := r.Stat(ctx, partialKey(2, 4, 0x1000)); err != nil {
		t.Fatalf("the held partial: %v", err)
	}
}

// TestApplyPartialsLockedByPolicy: partials written less than the
// repository's lock days ago are skipped without a delete request, as WAL
// is, and reported locked (explore22a F9: the dry run announced deletes
// that could not happen).
func TestApplyPartialsLockedByPolicy(t *testing.T) {
	ctx := context.Background()
	lock := repository.LockPolicy{Mode: storage.Governance, Days: 30}
	r, _, dir := testRepoWith(t, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", old).WithLock(lock))
	oldKey, recentKey := partialKey(1, 3, 0x1000), partialKey(1, 4, 0x1000) // both superseded
	for _, k := range []string{oldKey, recentKey} {
		put(t, r, k, "partial")
	}
	for k, at := range map[string]time.Time{oldKey: time.Now().Add(-40 * 24 * time.Hour), recentKey: time.Now().Add(-time.Hour)} {
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(k)), at, at); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Apply(ctx, r, planNow(t, r, "REDUNDANCY 2"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(r.deletes, recentKey) || !slices.Contains(r.deletes, oldKey) {
		t.Errorf("deletes sent %v: want %s, not %s (locked by the policy)", r.deletes, oldKey, recentKey)
	}
	if len(rep.Partials.Locked) != 1 || rep.Partials.Locked[0].Key != recentKey {
		t.Errorf("partials report locked %+v, want %s", rep.Partials.Locked, recentKey)
	}
}
