package repository_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// TestLoadRecoveryEnd: a recovery to the end of the archive is told where
// it stops and whether archived WAL lies beyond (a gap), following the
// timeline history, also when what lies beyond is far past the WAL
// listed so far.
func TestLoadRecoveryEnd(t *testing.T) {
	ctx := context.Background()
	b, _ := recoveryFixture(t)
	a, c := wal.Segment{Timeline: 1, Log: 1, Seg: 2}, wal.Segment{Timeline: 1, Log: 1, Seg: 0x11}
	// Timeline 1 was archived past 1/18, where timeline 2 branched off.
	overrun := []repository.Overrun{{Parent: 1, Child: 2, SwitchPoint: 0x1_18000100, Newest: seg(t, "000000010000000100000019")}}
	for _, tc := range []struct {
		name     string
		start    wal.Segment
		timeline wal.TimelineID
		want     repository.RecoveryEnd
	}{
		{"a gap on timeline 1 before the switch", a, 0,
			repository.RecoveryEnd{Timeline: 2, End: seg(t, "000000010000000100000010"), Gap: true, Later: seg(t, "000000010000000100000011"), Overruns: overrun}},
		{"timeline 2's end, with a far segment beyond", c, 0,
			repository.RecoveryEnd{Timeline: 2, End: seg(t, "000000020000000100000031"), Gap: true, Later: seg(t, "000000020000002000000000"), Overruns: overrun}},
		{"timeline 1 alone, a partial at its end and a far segment", c, 1,
			repository.RecoveryEnd{Timeline: 1, End: seg(t, "00000001000000010000001B"), Gap: true, Later: seg(t, "000000010000000900000001")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{BackupsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := inv.LoadRecoveryEnd(ctx, b, tc.start, tc.timeline)
			if err != nil || !ok {
				t.Fatalf("LoadRecoveryEnd: %v (ok %v)", err, ok)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestLoadRecoveryEndLong: the WAL after the start is listed in growing
// windows; the archive's end is found without a gap, and a segment far
// past it (an archive that resumed after lost WAL) makes one.
func TestLoadRecoveryEndLong(t *testing.T) {
	ctx := context.Background()
	b := repotest.New(t, repository.NewIdentity(7, 16<<20, 15, repository.LZ4, "h", created))
	put := func(n uint32) {
		s := wal.Segment{Timeline: 1, Log: n / 256, Seg: n % 256}
		repotest.Put(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}, repository.LZ4), []byte("x"))
	}
	for n := uint32(1); n < 600; n++ {
		put(n)
	}
	start := wal.Segment{Timeline: 1, Log: 0, Seg: 5}
	end := func(b storage.Backend) (repository.RecoveryEnd, storage.Counts) {
		t.Helper()
		var c storage.Counter
		counted := storage.Count(b, &c)
		inv, err := repository.LoadInventory(ctx, counted, repository.LoadOptions{BackupsOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := inv.LoadRecoveryEnd(ctx, counted, start, 0)
		if err != nil || !ok {
			t.Fatalf("LoadRecoveryEnd: %v (ok %v)", err, ok)
		}
		return got, c.Counts()
	}
	got, counts := end(b)
	if want := (repository.RecoveryEnd{Timeline: 1, End: seg(t, "000000010000000200000058")}); !reflect.DeepEqual(got, want) {
		t.Errorf("599 segments: got %+v, want %+v", got, want)
	}
	if counts.Listed > 2000 {
		t.Errorf("listed %d keys for 600 segments: want a bounded overlap", counts.Listed)
	}
	put(5000)
	got, _ = end(b)
	if want := (repository.RecoveryEnd{Timeline: 1, End: seg(t, "000000010000000200000058"), Gap: true, Later: seg(t, "000000010000001300000088")}); !reflect.DeepEqual(got, want) {
		t.Errorf("and segment 5000: got %+v, want %+v", got, want)
	}
}

func seg(t *testing.T, name string) wal.Segment {
	t.Helper()
	s, err := wal.ParseSegmentName(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
