package retention

import (
	"errors"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
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
