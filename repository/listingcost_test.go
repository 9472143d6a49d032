package repository_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/retention"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/verify"
	"github.com/walvault/walvault/wal"
)

// cost is what one command asked of the storage.
type cost struct {
	storage.Counts
	elapsed time.Duration
}

func (c cost) String() string {
	var parts []string
	for _, op := range []struct {
		name string
		n    int64
	}{{"Delete", c.Delete}, {"Get", c.Get}, {"List", c.List}, {"Put", c.Put}, {"Stat", c.Stat}} {
		if op.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op.name, op.n))
		}
	}
	return fmt.Sprintf("%d objects listed, %d requests (%s), %s", c.Listed, c.Calls(), strings.Join(parts, ", "), c.elapsed.Round(time.Millisecond))
}

// measure runs fn against a fresh counter over b.
func measure(t testing.TB, b storage.Backend, fn func(storage.Backend) error) cost {
	t.Helper()
	var c storage.Counter
	began := time.Now()
	if err := fn(storage.Count(b, &c)); err != nil {
		t.Fatal(err)
	}
	return cost{Counts: c.Counts(), elapsed: time.Since(began)}
}

const costSegSize = 16 << 20

// costRepo writes a repository of segments WAL segments on timeline 1 and
// backups DONE backups spread over them, each with a backup history file,
// walvault's manifest, backup_manifest and one part.
func costRepo(t testing.TB, segments, backups int) storage.Backend {
	t.Helper()
	b, _ := filetest.New(t)
	repotest.Init(t, b, repository.NewIdentity(7, costSegSize, 15, repository.LZ4, "h", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	seg := func(n int) wal.Segment { return wal.Segment{Timeline: 1, Log: uint32(n / 256), Seg: uint32(n % 256)} }
	for n := 1; n <= segments; n++ {
		repotest.PutWAL(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: seg(n)}, repository.LZ4), repository.LZ4, []byte("segment"), nil)
	}
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := range backups {
		n := 1 + i*segments/backups
		start, stop := seg(n), seg(n+1)
		startLSN, _ := start.StartLSN(costSegSize)
		stopLSN, _ := stop.StartLSN(costSegSize)
		at := t0.Add(time.Duration(i) * 24 * time.Hour)
		id := repository.NewBackupID(at)
		repotest.Put(t, b, repository.WALKey(wal.FileName{Kind: wal.KindBackupHistory, Timeline: 1, Segment: start, Offset: 0x28}, repository.None), []byte("history"))
		m := repository.BackupManifest{
			FormatVersion: repository.FormatVersion, ID: id, SystemID: "7", PGVersion: 150010, WALSegmentSize: costSegSize,
			StartTimeline: 1, StartLSN: (startLSN + 0x28).String(), StopTimeline: 1, StopLSN: (stopLSN + 0x100).String(),
			StartWAL: start.String(), StopWAL: stop.String(), StartTime: at, StopTime: at.Add(time.Minute),
		}
		repotest.WriteBackup(t, b, repotest.Backup{Manifest: m, Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("part")}}})
	}
	return b
}

// commandCosts measures the repository reads of backup-list, verify and
// delete (dry run, then confirmed) as cmd/walvault runs them.
func commandCosts(t testing.TB, b storage.Backend) map[string]cost {
	ctx := context.Background()
	policy, err := retention.ParsePolicy("REDUNDANCY 2")
	if err != nil {
		t.Fatal(err)
	}
	plan := func(b storage.Backend) (retention.Plan, error) {
		inv, err := retention.Load(ctx, b, nil)
		if err != nil {
			return retention.Plan{}, err
		}
		return retention.PlanPolicy(inv, policy, time.Now())
	}
	out := map[string]cost{}
	out["backup-list"] = measure(t, b, func(b storage.Backend) error {
		list, err := repository.ListBackups(ctx, b)
		if err == nil && (len(list) == 0 || list[0].Status != repository.StatusDone) {
			err = fmt.Errorf("backup-list: %+v", list)
		}
		return err
	})
	out["verify"] = measure(t, b, func(b storage.Backend) error {
		r, err := verify.Run(ctx, b, verify.Options{})
		if err == nil && !r.OK {
			err = fmt.Errorf("verify: %+v", r.Problems)
		}
		return err
	})
	out["delete (dry run)"] = measure(t, b, func(b storage.Backend) error {
		p, err := plan(b)
		if err != nil {
			return err
		}
		return retention.Preview(ctx, b, &p, retention.Options{})
	})
	out["delete --confirm"] = measure(t, b, func(b storage.Backend) error {
		p, err := plan(b)
		if err != nil {
			return err
		}
		_, err = retention.Apply(ctx, b, p, retention.Options{})
		return err
	})
	return out
}

var costOrder = []string{"backup-list", "verify", "delete (dry run)", "delete --confirm"}

// lsnRestoreCost measures what restore's LSN check reads of a costRepo:
// the inventory of the backups, then the WAL from the newest backup's
// start to a target past segments more segments, as restore/backup.go
// reads them; it fails unless the verdict is a full listing's.
func lsnRestoreCost(t testing.TB, b storage.Backend, past int) cost {
	ctx := context.Background()
	verdict := func(b storage.Backend, opts repository.LoadOptions) (repository.RecoveryReach, error) {
		inv, err := repository.LoadInventory(ctx, b, opts)
		if err != nil {
			return repository.RecoveryReach{}, err
		}
		m := inv.Backups[len(inv.Backups)-1].Manifest
		start, err := wal.ParseSegmentName(m.StartWAL)
		if err != nil {
			return repository.RecoveryReach{}, err
		}
		startLSN, _ := start.StartLSN(costSegSize)
		r := repository.RecoveryRange{Start: start, Target: startLSN + wal.LSN(past)*costSegSize + 0x100}
		if err := inv.LoadRecoveryWAL(ctx, b, r); err != nil {
			return repository.RecoveryReach{}, err
		}
		return inv.WAL.RecoveryReach(r)
	}
	want, err := verdict(b, repository.LoadOptions{Histories: true})
	if err != nil {
		t.Fatal(err)
	}
	return measure(t, b, func(b storage.Backend) error {
		got, err := verdict(b, repository.LoadOptions{BackupsOnly: true})
		if err == nil && got != want {
			err = fmt.Errorf("LSN check: %+v, a full listing's %+v", got, want)
		}
		return err
	})
}

// TestListingCostLSNTarget: restore's LSN check lists backups/, each
// backup's WAL range and the range to the target (a log or two here), not
// the archive; it reads walvault.json, each manifest and the history file
// of the next timeline (there is none).
func TestListingCostLSNTarget(t *testing.T) {
	const segments, backups = 1000, 5
	c := lsnRestoreCost(t, costRepo(t, segments, backups), 100)
	t.Log(c)
	if c.List > 1+backups+2 || c.Listed > segments/2 {
		t.Errorf("LSN check: %s; want backups/, each backup's WAL and a log or two to the target", c)
	}
	if c.Get != 1+backups+1 {
		t.Errorf("LSN check: %d Gets, want %d (walvault.json, each manifest, 00000002.history)", c.Get, 1+backups+1)
	}
}

// TestListingCost: every command lists the repository once (delete
// --confirm also lists each deleted backup's marks, read again just before
// it goes), and reads walvault.json once; backup-list lists backups/ and
// only the WAL of each backup, not the whole archive.
func TestListingCost(t *testing.T) {
	const segments, backups = 200, 5
	costs := commandCosts(t, costRepo(t, segments, backups))
	for _, name := range costOrder {
		c := costs[name]
		t.Logf("%s: %s", name, c)
		wantLists := 1
		switch name {
		case "delete --confirm":
			wantLists += backups - 2 // REDUNDANCY 2
		case "backup-list":
			wantLists += backups // each backup's WAL range, far apart here
		}
		if c.List != int64(wantLists) {
			t.Errorf("%s: %d List calls, want %d", name, c.List, wantLists)
		}
		if c.Listed > int64(segments+backups*4+1+(wantLists-1)*3) {
			t.Errorf("%s listed %d objects: more than one pass over the %d objects", name, c.Listed, segments+backups*4+1)
		}
		if name == "backup-list" && c.Listed > segments/2 {
			t.Errorf("backup-list listed %d objects, over half of the %d segments: it needs only each backup's", c.Listed, segments)
		}
		// walvault.json and one manifest per backup; verify adds nothing
		// (no history file here), delete's dry run one Stat per backup it
		// would delete.
		if got := c.Get; got != int64(1+backups) {
			t.Errorf("%s: %d Gets, want %d (walvault.json and each manifest once)", name, got, 1+backups)
		}
	}
	if n := costs["backup-list"].Stat; n != 0 {
		t.Errorf("backup-list made %d Stats, want none (statuses come from the listing)", n)
	}
}

// BenchmarkListingCost prints what backup-list, verify, delete and
// restore's LSN check (to 300 segments past the newest backup's start) ask
// of a repository of 10,000 segments and 20 backups (the README's
// "Repository listing cost"):
//
//	go test -run '^$' -bench ListingCost -benchtime 1x ./repository/
func BenchmarkListingCost(b *testing.B) {
	const segments, backups = 10000, 20
	for range b.N {
		b.StopTimer()
		repo := costRepo(b, segments, backups)
		b.StartTimer()
		lsnCheck := lsnRestoreCost(b, repo, 300) // before delete prunes the backups
		costs := commandCosts(b, repo)
		for _, name := range costOrder {
			c := costs[name]
			fmt.Printf("%-17s %s\n", name+":", c)
		}
		fmt.Printf("%-17s %s\n", "restore LSN check:", lsnCheck)
	}
}
