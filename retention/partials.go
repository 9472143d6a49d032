package retention

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// PartialFile is one of wal-receive's partial objects (under
// repository.PartialPrefix) that the plan deletes.
type PartialFile struct {
	Key     string
	Segment wal.Segment
	End     wal.LSN // where the partial's data ends
	Start   wal.LSN // of its segment; 0 when the segment size is unknown
	Size    int64   // stored bytes
	ModTime time.Time
	// Superseded: the complete segment (same timeline and number) is
	// archived, so wal-fetch never serves this partial again. Otherwise the
	// partial goes because its segment lies wholly before the WAL cutoff.
	Superseded bool
}

// PartialPlan is the decision for the objects under partial/.
//
// A partial goes when the complete segment of the same timeline and number
// is archived (it is superseded: whatever the policy, whether it is the
// newest of its segment or not, and even when no WAL is deleted), or when
// its segment lies wholly before the WAL cutoff, by the same rule as an
// archived segment (planWAL: whatever its timeline, and not while a
// backup-push that may be running needs it). Everything else stays; in
// particular the newest partial of a segment that is not archived and lies
// from the cutoff on, which may hold the last WAL the cluster wrote.
type PartialPlan struct {
	// Delete lists what goes, oldest (lowest position) first.
	Delete []PartialFile
	Bytes  int64 // stored bytes of Delete
	// Superseded counts the partials of Delete whose segment is archived.
	Superseded int
	// Kept counts the partials that stay, and Open the segments they
	// belong to (segments not archived complete).
	Kept      int
	KeptBytes int64
	Open      int
	// Other lists keys under partial/ that are not walvault's: never touched.
	Other []string
}

// planPartials decides the partials once w, the WAL decision, is made: it
// reuses w's cutoff so that a partial goes exactly when an archived segment
// in its place would.
func planPartials(inv Inventory, w WALPlan) PartialPlan {
	var pp PartialPlan
	if len(inv.Partials) == 0 {
		return pp
	}
	// Complete segments, from the same listing of wal/ that planWAL used.
	archived := map[wal.Segment]bool{}
	for _, oi := range inv.WAL {
		if name, _, ok := repository.ParseWALKey(oi.Key); ok && name.Kind == wal.KindSegment {
			archived[name.Segment] = true
		}
	}
	open := map[wal.Segment]bool{}
	for _, oi := range inv.Partials {
		p, ok := repository.ParsePartialKey(oi.Key)
		if !ok {
			pp.Other = append(pp.Other, oi.Key)
			continue
		}
		start, ok := segmentStart(p.Segment, inv.SegmentSize)
		if !ok {
			pp.Other = append(pp.Other, oi.Key)
			continue
		}
		f := PartialFile{Key: oi.Key, Segment: p.Segment, Start: start, End: p.End, Size: oi.Size, ModTime: oi.ModTime}
		switch {
		case archived[p.Segment]:
			f.Superseded = true
			pp.Superseded++
		case w.Cutoff != 0 && deletable(WALFile{Start: f.Start, ModTime: f.ModTime}, w.Cutoff, inv.SegmentSize, w.HeldSince):
			// Wholly before the cutoff (zero when planWAL keeps all WAL).
		default:
			pp.Kept++
			pp.KeptBytes += oi.Size
			open[p.Segment] = true
			continue
		}
		pp.Delete = append(pp.Delete, f)
		pp.Bytes += f.Size
	}
	pp.Open = len(open)
	sort.SliceStable(pp.Delete, func(i, j int) bool {
		a, b := pp.Delete[i], pp.Delete[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		if a.Segment.Timeline != b.Segment.Timeline {
			return a.Segment.Timeline < b.Segment.Timeline
		}
		return a.Key < b.Key // segment name, then end LSN
	})
	return pp
}

// Reason says in one line why the plan's partials go, or why none does.
func (pp PartialPlan) Reason(w WALPlan) string {
	before := len(pp.Delete) - pp.Superseded
	switch {
	case len(pp.Delete) == 0 && pp.Kept == 0:
		return "there are none"
	case len(pp.Delete) == 0:
		return "every one belongs to a segment that is not archived complete and that WAL retention keeps"
	case before == 0:
		return fmt.Sprintf("%d superseded (segment archived complete)", pp.Superseded)
	case pp.Superseded == 0:
		return fmt.Sprintf("%d wholly before %s (the WAL cutoff)", before, w.Cutoff)
	}
	return fmt.Sprintf("%d superseded (segment archived complete), %d wholly before %s (the WAL cutoff)", pp.Superseded, before, w.Cutoff)
}

// PartialResult is what Apply did to the partials.
type PartialResult struct {
	Tally
	Superseded int // of Deleted, superseded by their archived segment
	// Held counts partials before the cutoff that a backup kept by its lock
	// (or a new keep mark) still needs, as WALResult.Held.
	Held int
}

// applyPartials deletes the plan's partials, oldest first, deleteWindow at
// a time (deleteInWindows). cutoff is
// Apply's, lowered for backups step 1 had to keep: a partial that is not
// superseded goes only below it, as WAL does. A superseded partial always
// goes: its archived segment is what any restore reads.
func applyPartials(ctx context.Context, b storage.Backend, plan Plan, cutoff wal.LSN, opts Options) (PartialResult, error) {
	var res PartialResult
	var goes []PartialFile
	now := time.Now() // the real clock, like the listing's times
	for _, f := range plan.Partials.Delete {
		if !f.Superseded && uint64(f.Start)+uint64(plan.WAL.SegmentSize) > uint64(cutoff) {
			res.Held++
			continue
		}
		// Written less than lock-days ago: locked, as WAL (deleteWAL).
		if until, locked := plan.WAL.LockedByPolicy(WALFile{ModTime: f.ModTime}, now); locked {
			opts.task.Add(1)
			res.Locked = append(res.Locked, Locked{Key: f.Key, RetainUntil: until})
			continue
		}
		goes = append(goes, f)
	}
	// wal-receive may store a partial every second of a quiet hour: they go
	// in windows too.
	err := deleteInWindows(ctx, b, goes, func(f PartialFile) string { return f.Key }, opts, "delete partial", func(i int, gone bool, locked []Locked) {
		f := goes[i]
		res.add(f.Segment.String(), f.Size, gone, locked)
		if gone && f.Superseded {
			res.Superseded++
		}
	})
	if err != nil {
		return res, err
	}
	if len(plan.Partials.Delete) > 0 {
		opts.log().Info("partials deleted", "objects", res.Deleted, "superseded", res.Superseded, "bytes", res.Bytes,
			"first", res.First, "last", res.Last, "locked", len(res.Locked), "held", res.Held)
	}
	return res, nil
}
