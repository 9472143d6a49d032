package retention

import (
	"errors"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
)

// incr is a DONE incremental backup of day d on the backup of day parent.
func incr(d, parent int, startSeg uint32) repository.BackupInfo {
	bi := done(d, 1, startSeg)
	bi.Manifest.Type, bi.Manifest.Parent = repository.BackupIncremental, id(parent)
	return bi
}

// TestPlanPolicyKeepsChains: REDUNDANCY 1 keeps the newest backup, an
// incremental, and with it every backup it builds on, saying why; a full
// backup no kept incremental needs goes.
func TestPlanPolicyKeepsChains(t *testing.T) {
	t.Parallel()
	inv := Inventory{
		Backups: []repository.BackupInfo{
			done(1, 1, 2), incr(2, 1, 6),
			done(3, 1, 10), incr(4, 3, 14), incr(5, 4, 18),
		},
		SegmentSize: segSize,
		WAL:         segRange(1, 1, 22),
	}
	plan, err := PlanPolicy(inv, Policy{Kind: Redundancy, N: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{id(1): true, id(2): true, id(3): false, id(4): false, id(5): false}
	for _, bp := range plan.Backups {
		if bp.Delete != want[bp.ID] {
			t.Errorf("backup %s: delete %v (%s), want %v", bp.ID, bp.Delete, bp.Reason, want[bp.ID])
		}
	}
	for _, i := range []int{2, 3} {
		if r := plan.Backups[i].Reason; !strings.Contains(r, "ancestor of incremental backup "+id(5)) {
			t.Errorf("backup %s: reason %q, want it kept as an ancestor of %s", plan.Backups[i].ID, r, id(5))
		}
	}
	if plan.WAL.CutoffBackup != id(3) {
		t.Errorf("WAL cutoff at backup %s, want the chain's full backup %s", plan.WAL.CutoffBackup, id(3))
	}
}

// TestPlanBackupRefusesAncestor: delete --backup of a backup incrementals
// build on is refused naming them; the newest incremental itself may go.
func TestPlanBackupRefusesAncestor(t *testing.T) {
	t.Parallel()
	inv := Inventory{
		Backups:     []repository.BackupInfo{done(1, 1, 2), incr(2, 1, 6), incr(3, 2, 10), done(4, 1, 14)},
		SegmentSize: segSize,
		WAL:         segRange(1, 1, 18),
	}
	_, err := PlanBackup(inv, id(1), now)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), id(2)+", "+id(3)) {
		t.Fatalf("delete of the full backup: got %v, want a refusal naming %s and %s", err, id(2), id(3))
	}
	if _, err := PlanBackup(inv, id(2), now); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), id(3)) {
		t.Fatalf("delete of the first incremental: got %v, want a refusal naming %s", err, id(3))
	}
	if _, err := PlanBackup(inv, id(3), now); err != nil {
		t.Fatalf("delete of the last incremental: %v", err)
	}
}
