package check

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// TestContinuityBranchedOff: a timeline that branched off the server's
// before the segment the server writes (a restored copy promoted with
// archiving on) fails the continuity check: a restore to latest would
// follow it and leave this server's later WAL out. Before the branch
// point it is no failure.
func TestContinuityBranchedOff(t *testing.T) {
	setup := func(serverAt string, switchPoint ...string) *checker {
		sw := "0/10000100"
		if len(switchPoint) > 0 {
			sw = switchPoint[0]
		}
		c, b := newChecker(t)
		c.opts.MinBackups = 0
		put := func(tli wal.TimelineID, n uint32) {
			s := wal.Segment{Timeline: tli, Seg: n}
			repotest.Put(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: s}, repository.LZ4), []byte("x"))
		}
		for n := uint32(7); n <= 0x12; n++ { // newChecker put 1 to 6
			put(1, n)
		}
		put(2, 0x10)
		repotest.Put(t, b, "wal/00000002.history", []byte("1\t"+sw+"\tno recovery target specified\n"))
		c.srv.currentWAL = serverAt
		c.checkIdentity(context.Background())
		c.checkBackups(context.Background())
		return c
	}
	r := one(t, setup("000000010000000000000013").checkContinuity(context.Background()))
	if r.OK || !strings.Contains(r.Detail, "timeline 2 branched off this server's timeline 1 at 0/10000100") || !strings.Contains(r.Detail, "--target-timeline 1") {
		t.Errorf("server past the branch point: %+v; want FAILED naming timeline 2, the branch point and --target-timeline 1", r)
	}
	if r := one(t, setup("000000010000000000000010").checkContinuity(context.Background())); !r.OK {
		t.Errorf("server in the branch point's segment: %+v; want OK", r)
	}
	// A copy restored to the archive's end branches at a segment's first
	// byte: the server writing that segment is past it.
	if r := one(t, setup("000000010000000000000010", "0/10000000").checkContinuity(context.Background())); r.OK {
		t.Errorf("server in the first segment past a branch at a segment boundary: %+v; want FAILED", r)
	}
	if r := one(t, setup("").checkContinuity(context.Background())); !r.OK {
		t.Errorf("a standby (position unknown): %+v; want OK", r)
	}
	// Another cluster (pg_upgrade gave it a new system identifier) past
	// the repository's branch point: the identity check fails; the
	// repository's timelines are not this server's.
	c := setup("000000010000000000000013")
	c.srv.sysID = "7000000000000000099"
	if r := one(t, c.checkContinuity(context.Background())); !r.OK {
		t.Errorf("another cluster's server: %+v; want the branch not blamed on it", r)
	}
}

// TestContinuityHiddenSegment: a segment a restore needs that is hidden
// behind a delete marker (its data survives) fails the line, pointing at
// walvault repair, not at taking a new backup (explore22a F3).
func TestContinuityHiddenSegment(t *testing.T) {
	c, _ := newChecker(t)
	inner := mem.New()
	repotest.Init(t, inner, repository.NewIdentity(7312345678901234567, wal.DefaultSegmentSize, 15, repository.LZ4, "test", time.Now()))
	for n := uint32(1); n <= 6; n++ {
		putSegment(t, inner, n)
	}
	c.b, c.opts.MinBackups = inner, 0
	hidden := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 4}}, repository.LZ4)
	if err := inner.Hide(hidden); err != nil { // a delete marker: the data stays
		t.Fatal(err)
	}
	c.checkIdentity(context.Background())
	c.checkBackups(context.Background())
	r := one(t, c.checkContinuity(context.Background()))
	if r.OK || !strings.Contains(r.Detail, "hidden behind a delete marker") || !strings.Contains(r.Detail, "walvault repair") || strings.Contains(r.Detail, "take a new backup") {
		t.Errorf("continuity over a hidden segment: %+v; want FAILED pointing at walvault repair", r)
	}
}

// TestBackupsOfAnotherTimeline: a restored copy promoted as timeline 2
// archived here and even took a backup, while this server goes on on
// timeline 1 (session 22's note). The copy's backup proves nothing about
// this server: backup age goes by this server's own, too old here, and
// count says the copy's is not counted. On timeline 2, or where the
// server's timeline is unknown (a standby), it counts.
func TestBackupsOfAnotherTimeline(t *testing.T) {
	ctx := context.Background()
	c, b := newChecker(t)
	for n := uint32(7); n <= 0x12; n++ { // newChecker put 1 to 6
		putSegment(t, b, n)
	}
	repotest.Put(t, b, "wal/00000002.history", []byte("1\t0/10000100\tno recovery target specified\n"))
	repotest.Put(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 2, Segment: wal.Segment{Timeline: 2, Seg: 0x10}}, repository.LZ4), []byte("x"))
	now := time.Now().UTC().Truncate(time.Second)
	backup := func(tli uint32, seg uint32, start time.Time) repository.BackupManifest {
		s := wal.Segment{Timeline: wal.TimelineID(tli), Seg: seg}
		lsn := func(off uint32) string { return wal.LSN(uint64(seg)<<24 | uint64(off)).String() }
		return repotest.WriteBackup(t, b, repotest.Backup{
			Manifest: repository.BackupManifest{
				FormatVersion: repository.FormatVersion, ID: repository.NewBackupID(start), SystemID: testSysID, PGVersion: 150010,
				WALSegmentSize: wal.DefaultSegmentSize, StartTimeline: tli, StopTimeline: tli,
				StartLSN: lsn(0x200), StopLSN: lsn(0x300), StartWAL: s.String(), StopWAL: s.String(),
				StartTime: start, StopTime: start.Add(time.Minute),
			},
			Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("tar")}},
		})
	}
	own := backup(1, 2, now.Add(-30*time.Hour))
	copys := backup(2, 0x10, now.Add(-time.Hour))

	check := func(serverAt string) []Result {
		c.srv.currentWAL = serverAt
		c.identityLoaded = false
		c.checkIdentity(ctx)
		rs := c.checkBackups(ctx)
		if len(rs) != 2 {
			t.Fatalf("got %+v, want backup age and count", rs)
		}
		return rs
	}
	rs := check("000000010000000000000013")
	if age := rs[0]; age.OK || !strings.Contains(age.Detail, own.ID) {
		t.Errorf("server on timeline 1: backup age %+v, want FAILED by %s, this server's newest (30 hours old)", age, own.ID)
	}
	if count := rs[1]; !count.OK || !strings.Contains(count.Detail, "1 DONE backup, 1 DONE backup on timelines this server did not come from (not counted)") {
		t.Errorf("server on timeline 1: backup count %+v, want the copy's backup not counted", count)
	}
	if age := check("000000020000000000000011")[0]; !age.OK || !strings.Contains(age.Detail, copys.ID) {
		t.Errorf("server on timeline 2: backup age %+v, want OK by %s", age, copys.ID)
	}
	if age := check("")[0]; !age.OK || !strings.Contains(age.Detail, copys.ID) {
		t.Errorf("a standby: backup age %+v, want OK by %s (its timeline is not known)", age, copys.ID)
	}
}
