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
