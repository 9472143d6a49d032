package retention

import (
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
	// Without timeline 2's history nothing says where it branched: the
	// policy alone decides.
	inv := inventory([]repository.BackupInfo{a, b}, nil, walObjs)
	plan, err := PlanPolicy(inv, Policy{Kind: Redundancy, N: 1}, now)
	if err != nil || !plan.Backups[0].Delete {
		t.Errorf("history unknown: backup %s delete %v, err %v; want the policy's verdict (delete)", a.ID, plan.Backups[0].Delete, err)
	}
}
