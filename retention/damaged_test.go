package retention

import (
	"errors"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// TestPlanRefusesDamaged: a DAMAGED manifest hides which WAL and parent
// its backup needs, so neither a policy nor --backup (of it or another)
// plans any deletion.
func TestPlanRefusesDamaged(t *testing.T) {
	damaged := repository.BackupInfo{ID: id(3), Status: repository.StatusDamaged, Damage: errors.New("manifest of backup " + id(3) + " is not valid JSON")}
	inv := inventory([]repository.BackupInfo{done(1, 1, 2), done(2, 1, 6), damaged, done(4, 1, 14)}, nil, segRange(1, 1, 20))
	check := func(what string, plan Plan, err error) {
		t.Helper()
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), id(3)+" is DAMAGED") || !strings.Contains(err.Error(), "version history") {
			t.Errorf("%s: err %v, want ErrRefused naming %s DAMAGED and the version history", what, err, id(3))
		}
		if len(plan.DeletedBackups()) > 0 || len(plan.WAL.Delete) > 0 {
			t.Errorf("%s: plan deletes %d backups, %d WAL files; want nothing", what, len(plan.DeletedBackups()), len(plan.WAL.Delete))
		}
	}
	plan, err := PlanPolicy(inv, Policy{Kind: Redundancy, N: 1}, now)
	check("REDUNDANCY 1", plan, err)
	plan, err = PlanBackup(inv, id(1), now)
	check("--backup "+id(1), plan, err)
	plan, err = PlanBackup(inv, id(3), now)
	check("--backup "+id(3), plan, err)
}

// partDamaged is backup d, starting in startSeg, whose only part is
// listed with 100 of the 700 bytes its manifest records.
func partDamaged(d int, startSeg uint32) repository.BackupInfo {
	bi := done(d, 1, startSeg)
	bi.Status = repository.StatusDamaged
	bi.Damage = &repository.PartDamage{BackupID: bi.ID, Key: repository.BackupPrefix(bi.ID) + "base.tar.00000.lz4", Want: 700, Size: 100}
	return bi
}

// TestPlanRefusesDamagedPart: the newest backup's part is truncated (the
// tester's F7). REDUNDANCY 1 must not count it and delete the older
// backup that still restores: no policy plans anything, nor --backup of
// another, and the refusal says how to get the part back or to delete the
// damaged backup alone, which --backup of it then does, and only that.
func TestPlanRefusesDamagedPart(t *testing.T) {
	inv := inventory([]repository.BackupInfo{done(1, 1, 2), done(2, 1, 6), partDamaged(3, 10)}, nil, segRange(1, 1, 14))
	key := repository.BackupPrefix(id(3)) + "base.tar.00000.lz4"
	for _, p := range []Policy{{Kind: Redundancy, N: 1}, {Kind: Redundancy, N: 2}, {Kind: RecoveryWindow, N: 1}} {
		plan, err := PlanPolicy(inv, p, now)
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("%v: err %v, want ErrRefused", p, err)
		}
		for _, want := range []string{id(3) + " is DAMAGED", key + " has 100 bytes, its manifest says 700", "version history", "walvault delete --backup " + id(3) + " --confirm"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: %q does not say %q", p, err, want)
			}
		}
		if len(plan.DeletedBackups()) > 0 || len(plan.WAL.Delete) > 0 {
			t.Errorf("%v: plan deletes %d backups, %d WAL files; want nothing", p, len(plan.DeletedBackups()), len(plan.WAL.Delete))
		}
	}
	if _, err := PlanBackup(inv, id(1), now); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), id(3)+" is DAMAGED") {
		t.Errorf("--backup %s: %v, want ErrRefused naming %s DAMAGED", id(1), err, id(3))
	}

	plan, err := PlanBackup(inv, id(3), now)
	if err != nil {
		t.Fatalf("--backup %s (the damaged one): %v", id(3), err)
	}
	if del := plan.DeletedBackups(); len(del) != 1 || del[0].ID != id(3) {
		t.Errorf("--backup %s deletes %+v, want only it", id(3), del)
	}
	// The oldest backup stays, so the WAL it needs does too.
	for _, f := range plan.WAL.Delete {
		if f.Start >= wal.LSN(2*segSize) {
			t.Errorf("--backup %s deletes WAL %s, which %s needs", id(3), f.Key, id(1))
		}
	}
}

// TestPlanDamagedPartChain: an incremental on a backup with a damaged part
// cannot be restored either: --backup may delete it, newest first, and
// then the damaged parent; a DAMAGED manifest elsewhere still refuses all.
func TestPlanDamagedPartChain(t *testing.T) {
	parent := partDamaged(2, 6)
	inv := inventory([]repository.BackupInfo{done(1, 1, 2), parent, incr(3, 2, 10), incr(4, 3, 14), done(5, 1, 18)}, nil, segRange(1, 1, 20))
	if _, err := PlanBackup(inv, id(2), now); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "build on backup "+id(2)) {
		t.Errorf("--backup %s with incrementals on it: %v, want ErrRefused naming them", id(2), err)
	}
	plan, err := PlanBackup(inv, id(4), now)
	if err != nil {
		t.Fatalf("--backup %s, on a damaged parent: %v", id(4), err)
	}
	if del := plan.DeletedBackups(); len(del) != 1 || del[0].ID != id(4) {
		t.Errorf("--backup %s deletes %+v, want only it", id(4), del)
	}
	if _, err := PlanPolicy(inv, Policy{Kind: Redundancy, N: 1}, now); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), id(3)+", "+id(4)+"), then for "+id(2)) {
		t.Errorf("REDUNDANCY 1: %v, want ErrRefused saying to delete %s and %s, then %s", err, id(3), id(4), id(2))
	}

	manifest := repository.BackupInfo{ID: id(6), Status: repository.StatusDamaged, Damage: errors.New("not valid JSON")}
	inv = inventory([]repository.BackupInfo{done(1, 1, 2), parent, done(5, 1, 18), manifest}, nil, segRange(1, 1, 20))
	if _, err := PlanBackup(inv, id(2), now); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), id(6)+" is DAMAGED") {
		t.Errorf("--backup %s with %s's manifest DAMAGED: %v, want ErrRefused naming %s", id(2), id(6), err, id(6))
	}
}
