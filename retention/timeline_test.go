package retention

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// TestPlanKeepsBackupLeadingToNewTimeline: after a point-in-time restore
// from backup A to before a mistake, promoted as timeline 2 and archiving
// to the same repository, backup B, taken on timeline 1 after the branch
// (the nightly backup after the mistake), is the newest, but no restore
// of it can follow timeline 2. Both policies keep A, and the WAL from its
// start, timeline 2's first segments included (explore22b F2).
func TestPlanKeepsBackupLeadingToNewTimeline(t *testing.T) {
	a, b := done(20, 1, 2), done(23, 1, 7) // B stops in segment 9, after the branch in segment 5
	recent := now.Add(-2 * time.Hour)
	walObjs := segRange(1, 1, 9)
	for _, o := range segRange(2, 5, 7) {
		o.ModTime = recent
		walObjs = append(walObjs, o)
	}
	walObjs = append(walObjs, storage.ObjectInfo{Key: "wal/00000002.history", Size: 40, ModTime: recent})
	for _, policy := range []string{"REDUNDANCY 1", "RECOVERY WINDOW OF 1 DAYS"} {
		inv := inventory([]repository.BackupInfo{a, b}, nil, walObjs)
		inv.Histories = map[wal.TimelineID][]wal.HistoryEntry{2: {{Timeline: 1, SwitchPoint: wal.LSN(5*segSize + 0x80)}}}
		p, err := ParsePolicy(policy)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := PlanPolicy(inv, p, now)
		if err != nil {
			t.Fatalf("%s: %v", policy, err)
		}
		if plan.Backups[0].Delete || !strings.Contains(plan.Backups[0].Reason, "leads to timeline 2") {
			t.Errorf("%s: backup %s, the only one leading to timeline 2: delete %v (%s); want it kept, saying why", policy, a.ID, plan.Backups[0].Delete, plan.Backups[0].Reason)
		}
		for _, f := range plan.WAL.Delete {
			if f.Name.String() != segName(1, 1) {
				t.Errorf("%s: deletes WAL %s; want only what lies before backup %s's start", policy, f.Name, a.ID)
			}
		}
	}
	// Without timeline 2's history nothing says where it branched, so
	// which backup leads to it is unknown: the policy deletes nothing
	// rather than the only backup that may restore it (explore23g F3: an
	// encrypted history an older walvault archived, no decrypt-with).
	inv := inventory([]repository.BackupInfo{a, b}, nil, walObjs)
	inv.HistoryProblems = map[wal.TimelineID]string{2: "00000002.history is encrypted and records no branch point in its metadata"}
	_, err := PlanPolicy(inv, Policy{Kind: Redundancy, N: 1}, now)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "timeline 2 is in use") || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("history unknown: %v; want a refusal naming timeline 2 and why its history is unknown", err)
	}
}

// TestPlanTimelinesInUse: which timelines retention keeps a backup for
// (explore22e F1, F2, F5):
//   - right after a promotion only timeline 2's history file is archived:
//     the backup leading to it is kept;
//   - a restored copy promoted as timeline 2 took a backup here (the
//     newest), while the primary goes on on timeline 1: the primary's
//     newest backup is kept too, and the WAL it needs;
//   - a copy promoted long ago, that took a backup of its own and whose
//     timeline nobody writes any more, pins nothing: its backups age out;
//   - the newest timeline without a backup of its own keeps the one
//     leading to it, whatever its times (explore22g F2).
func TestPlanTimelinesInUse(t *testing.T) {
	recent, longAgo := now.Add(-2*time.Hour), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	history := map[wal.TimelineID][]wal.HistoryEntry{2: {{Timeline: 1, SwitchPoint: wal.LSN(5*segSize + 0x80)}}}
	historyObj := func(at time.Time) storage.ObjectInfo {
		return storage.ObjectInfo{Key: "wal/00000002.history", Size: 40, ModTime: at}
	}
	plan := func(backups []repository.BackupInfo, walObjs []storage.ObjectInfo) Plan {
		t.Helper()
		inv := inventory(backups, nil, walObjs)
		inv.Histories = history
		p, err := PlanPolicy(inv, Policy{Kind: Redundancy, N: 1}, now)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	kept := func(p Plan, id string) bool {
		for _, bp := range p.Backups {
			if bp.ID == id {
				return !bp.Delete
			}
		}
		return false
	}

	// Only the history file of timeline 2 so far.
	a, b := done(20, 1, 2), done(23, 1, 7)
	p := plan([]repository.BackupInfo{a, b}, append(segRange(1, 1, 9), historyObj(recent)))
	if !kept(p, a.ID) {
		t.Errorf("timeline 2 with only its history file: backup %s, the one leading to it, deleted", a.ID)
	}

	// The copy's backup on timeline 2 is the newest; timeline 1 goes on.
	primary, copyBackup := done(21, 1, 8), done(22, 2, 6)
	walObjs := append(segRange(1, 1, 12), historyObj(longAgo))
	walObjs = append(walObjs, segObj(2, 6))
	for i := range walObjs {
		if strings.HasPrefix(walObjs[i].Key, "wal/00000001/") {
			walObjs[i].ModTime = recent // the primary archives on
		}
	}
	p = plan([]repository.BackupInfo{done(1, 1, 2), primary, copyBackup}, walObjs)
	if !kept(p, primary.ID) || !kept(p, copyBackup.ID) {
		t.Errorf("a copy's backup newest while timeline 1 goes on: the primary's %s kept %v, the copy's %s kept %v; want both", primary.ID, kept(p, primary.ID), copyBackup.ID, kept(p, copyBackup.ID))
	}

	// A copy promoted long ago, that took a backup of its own: nothing on
	// timeline 2 since.
	old1, copyOwn, newer1 := done(1, 1, 2), done(3, 2, 6), done(22, 1, 9)
	dead := append(segRange(1, 1, 12), historyObj(longAgo))
	for i := range dead {
		if strings.HasPrefix(dead[i].Key, "wal/00000001/") {
			dead[i].ModTime = recent
		}
	}
	dead = append(dead, storage.ObjectInfo{Key: "wal/00000002/" + segName(2, 6) + ".lz4", Size: 1000, ModTime: longAgo})
	p = plan([]repository.BackupInfo{old1, copyOwn, newer1}, dead)
	if kept(p, old1.ID) || kept(p, copyOwn.ID) {
		t.Errorf("a timeline nobody wrote to since %s pins backups: %+v", longAgo, p.Backups)
	}

	// The old primary took one more backup after the promotion, and
	// timeline 2, quiet, has archived nothing since (explore22g F2): it
	// has no backup of its own yet, so the one leading to it stays.
	a, late := done(20, 1, 2), done(24, 1, 9)
	p = plan([]repository.BackupInfo{a, late}, append(segRange(1, 1, 10), historyObj(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))))
	if !kept(p, a.ID) {
		t.Errorf("timeline 2 without a backup of its own, the old primary's later backup newest: %s, the one leading to timeline 2, deleted", a.ID)
	}
}
