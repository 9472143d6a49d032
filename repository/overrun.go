package repository

import (
	"sort"

	"github.com/walvault/walvault/wal"
)

// Overrun is a timeline that went on being archived past the point where
// a later timeline branched off it: after a failover, an old primary that
// archived a few more segments; or, the other way round, a restored copy
// promoted into the same repository while the original goes on. Recovery
// to "latest" follows the child and never reads the parent's WAL past the
// branch point, so one of the two is a dead end, and only people know
// which.
type Overrun struct {
	Parent, Child wal.TimelineID
	SwitchPoint   wal.LSN
	// Beyond counts the parent's segments archived after the one holding
	// the switch point; Newest is the last of them.
	Beyond uint64
	Newest wal.Segment
}

// Overruns lists, by child timeline, every parent archived past a child's
// branch point (load with Histories).
func (x *WALIndex) Overruns() []Overrun {
	var out []Overrun
	for child, t := range x.tls {
		if t.historyErr != nil || len(t.history) == 0 {
			continue
		}
		p := t.history[len(t.history)-1]
		parent := x.tls[p.Timeline]
		if parent == nil {
			continue
		}
		beyond := x.firstBeyond(p.SwitchPoint)
		o := Overrun{Parent: p.Timeline, Child: child, SwitchPoint: p.SwitchPoint}
		for _, r := range parent.runs {
			if r.last >= beyond {
				o.Beyond += r.last - max(r.first, beyond) + 1
				o.Newest = x.segment(p.Timeline, r.last)
			}
		}
		if o.Beyond > 0 {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Child < out[j].Child })
	return out
}

// firstBeyond is the first segment that lies wholly past a switch point:
// the one holding it when it is a segment's first byte (a branch at a
// segment boundary, as a copy restored to the archive's end makes), else
// the next. The segment holding a switch point inside it may hold the
// parent's WAL from before the switch only, even when archived whole.
func (x *WALIndex) firstBeyond(switchPoint wal.LSN) uint64 {
	return (uint64(switchPoint) + uint64(x.segSize) - 1) / uint64(x.segSize)
}

// BranchedBefore lists the timelines that branched off tli before the
// segment at (a server on tli writing at at has gone past their branch
// point): recovery to "latest" would follow them, not that server.
func (x *WALIndex) BranchedBefore(tli wal.TimelineID, at wal.Segment) []Overrun {
	var out []Overrun
	for child, t := range x.tls {
		if t.historyErr != nil || len(t.history) == 0 {
			continue
		}
		p := t.history[len(t.history)-1]
		if p.Timeline != tli || x.segNo(at) < x.firstBeyond(p.SwitchPoint) {
			continue
		}
		out = append(out, Overrun{Parent: tli, Child: child, SwitchPoint: p.SwitchPoint})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Child < out[j].Child })
	return out
}
