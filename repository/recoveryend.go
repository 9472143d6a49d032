package repository

import (
	"context"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// RecoveryEnd is where a recovery with no LSN to stop at (to the end of
// the archive, or to a time, transaction or restore point) runs out of
// archived WAL.
type RecoveryEnd struct {
	// Timeline is the timeline recovery follows.
	Timeline wal.TimelineID
	// End is the first segment recovery asks for and does not find.
	End wal.Segment
	// Gap: Later, a segment recovery would read after End, is archived,
	// so End is a hole, not the archive's end: PostgreSQL stops at End
	// (with no target it then opens, leaving the rest out).
	Gap   bool
	Later wal.Segment
	// Overruns are the timelines recovery leaves for a child that have
	// WAL archived past the child's branch point (Newest: the first found
	// of it; Beyond is not counted): the child may be a restored copy's
	// while the parent is the live server.
	Overruns []Overrun
	// FallsBack, when set, says that End is the first segment of a
	// timeline recovery switches to, and that its parent's copy of it is
	// archived: PostgreSQL, having read nothing of the child yet, takes
	// the parent's copy instead (XLogFileReadAnyTLI tries each timeline
	// of the history), and replays the parent's WAL past the branch point
	// as the child's.
	FallsBack *Overrun
}

// LoadRecoveryEnd finds where recovery from start, following timeline (0:
// latest), runs out of archived WAL. It lists the WAL from start on in
// windows that grow fourfold while they are whole, so what it lists grows
// with the WAL recovery replays, not with the archive, and once a window
// holds the end, asks the storage for the first key after the window on
// the followed timeline: one request proves that nothing lies beyond. ok
// is false without a WAL index (no usable identity).
func (inv *Inventory) LoadRecoveryEnd(ctx context.Context, b storage.Backend, start wal.Segment, timeline wal.TimelineID) (end RecoveryEnd, ok bool, err error) {
	x := inv.WAL
	if x == nil {
		return RecoveryEnd{}, false, nil
	}
	from := x.segNo(start)
	lastSegment := x.perLog<<32 - 1
	for window := uint64(minListedBlock); ; window *= 4 {
		last := min(from+window-1, lastSegment)
		r := RecoveryRange{Start: start, Target: wal.LSN(last * uint64(x.segSize)), Timeline: timeline}
		if err := inv.LoadRecoveryWAL(ctx, b, r); err != nil {
			return RecoveryEnd{}, false, err
		}
		reach, err := x.RecoveryReach(r)
		if err != nil {
			return RecoveryEnd{}, false, err
		}
		if reach.OK {
			if last == lastSegment {
				return RecoveryEnd{Timeline: reach.Timeline, End: x.segment(reach.Timeline, last)}, true, nil
			}
			continue
		}
		end := RecoveryEnd{Timeline: reach.Timeline, End: reach.Missing}
		if !reach.Beyond {
			end.Gap, end.Later = true, x.archivedAfter(r, reach.Missing)
		} else {
			later, found, err := firstSegmentAfter(ctx, b, x, reach.TargetSegment)
			if err != nil {
				return RecoveryEnd{}, false, err
			}
			end.Gap, end.Later = found, later
		}
		if end.Overruns, err = pathOverruns(ctx, b, x, r); err != nil {
			return RecoveryEnd{}, false, err
		}
		if end.FallsBack, err = fallsBack(ctx, b, x, r, reach.Missing); err != nil {
			return RecoveryEnd{}, false, err
		}
		return end, true, nil
	}
}

// pathOverruns asks, for each timeline switch on recovery's path, whether
// the parent holds a segment after the one where the child begins: one
// request per switch, none without one.
func pathOverruns(ctx context.Context, b storage.Backend, x *WALIndex, r RecoveryRange) ([]Overrun, error) {
	_, path, err := x.recoveryPath(r)
	if err != nil {
		return nil, nil // RecoveryReach said so already
	}
	var out []Overrun
	for i := 1; i < len(path); i++ {
		parent, child := path[i-1].tli, path[i].tli
		if parent == child {
			continue
		}
		t := x.tls[child]
		if t == nil || len(t.history) == 0 {
			continue
		}
		sw := t.history[len(t.history)-1].SwitchPoint
		beyond := x.firstBeyond(sw)
		later, found := x.segment(parent, beyond), false
		if t := x.tls[parent]; t != nil && len(missing(t.runs, beyond, beyond)) == 0 {
			found = true // listed already
		} else if beyond > 0 {
			if later, found, err = firstSegmentAfter(ctx, b, x, x.segment(parent, beyond-1)); err != nil {
				return nil, err
			}
		}
		if found {
			out = append(out, Overrun{Parent: parent, Child: child, SwitchPoint: sw, Newest: later})
		}
	}
	return out, nil
}

// fallsBack says whether missing, the first segment recovery of r does
// not find, is the first it would read of a timeline it switches to while
// the parent's copy of that segment is archived (see
// RecoveryEnd.FallsBack): one request at most.
func fallsBack(ctx context.Context, b storage.Backend, x *WALIndex, r RecoveryRange, missingSeg wal.Segment) (*Overrun, error) {
	_, path, err := x.recoveryPath(r)
	if err != nil {
		return nil, nil // RecoveryReach said so already
	}
	n := x.segNo(missingSeg)
	for i := 1; i < len(path) && n > 0; i++ {
		child := path[i].tli
		if child != missingSeg.Timeline || path[i].first != n || path[i-1].tli == child {
			continue
		}
		t := x.tls[child]
		if t == nil || len(t.history) == 0 {
			return nil, nil
		}
		// The child's parent is its history's last entry: a timeline
		// whose WAL lies within one segment is no piece of the path.
		// PostgreSQL tries each ancestor's copy, nearest first.
		last := t.history[len(t.history)-1]
		for j := len(t.history) - 1; j >= 0 && t.history[j].Timeline >= r.Start.Timeline; j-- {
			copyOf := x.segment(t.history[j].Timeline, n)
			if !x.HasSegment(copyOf) {
				// Past the ancestor's range, so not listed: ask.
				next, found, err := firstSegmentAfter(ctx, b, x, x.segment(t.history[j].Timeline, n-1))
				if err != nil {
					return nil, err
				}
				if !found || next != copyOf {
					continue
				}
			}
			return &Overrun{Parent: last.Timeline, Child: child, SwitchPoint: last.SwitchPoint, Newest: copyOf}, nil
		}
		return nil, nil
	}
	return nil, nil
}

// FallsBack is RecoveryEnd.FallsBack for a recovery of r whose first
// missing segment is missingSeg (RecoveryReach), for an LSN target: one
// before the switch point is reached in the parent's copy, as PostgreSQL
// reads it.
func (inv *Inventory) FallsBack(ctx context.Context, b storage.Backend, r RecoveryRange, missingSeg wal.Segment) (*Overrun, error) {
	if inv.WAL == nil {
		return nil, nil
	}
	return fallsBack(ctx, b, inv.WAL, r, missingSeg)
}

// archivedAfter is the first archived segment recovery of r reads after
// missing (RecoveryReach found one: it is not Beyond).
func (x *WALIndex) archivedAfter(r RecoveryRange, missingSeg wal.Segment) wal.Segment {
	_, path, _ := x.recoveryPath(r)
	after := x.segNo(missingSeg)
	for _, p := range path {
		t := x.tls[p.tli]
		if t == nil {
			continue
		}
		for _, run := range t.runs {
			first := max(run.first, p.first, after+1)
			if first <= min(run.last, p.last) {
				return x.segment(p.tli, first)
			}
		}
	}
	return missingSeg
}

// ArchivedAfter asks the storage for the first segment archived on seg's
// timeline after seg (one request); false without a WAL index.
func (inv *Inventory) ArchivedAfter(ctx context.Context, b storage.Backend, seg wal.Segment) (wal.Segment, bool, error) {
	if inv.WAL == nil {
		return wal.Segment{}, false, nil
	}
	return firstSegmentAfter(ctx, b, inv.WAL, seg)
}

// firstSegmentAfter asks for the first segment archived on seg's timeline
// after seg.
func firstSegmentAfter(ctx context.Context, b storage.Backend, x *WALIndex, seg wal.Segment) (wal.Segment, bool, error) {
	var found wal.Segment
	// Every key of seg (NAME, NAME.lz4, NAME.00000028.backup, ...) sorts
	// before NAME + "/", and that before the next segment's name.
	after := TimelinePrefix(seg.Timeline) + seg.String() + "/"
	_, ok, err := firstKey(ctx, b, TimelinePrefix(seg.Timeline), after, 0, func(key string) bool {
		f, _, ok := parseWALObject(key, x.segSize)
		if ok && f.Kind == wal.KindSegment && f.Segment.Timeline == seg.Timeline {
			found = f.Segment
			return true
		}
		return false
	})
	return found, ok, err
}
