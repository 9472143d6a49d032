package info

import (
	"sort"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// Window is the span a restore can reach on one timeline: from the end of
// the oldest DONE backup that leads there to the end of the newest WAL
// archived without a break after it. A gap breaks it into Ranges; each
// Range starts where a DONE backup ends.
type Window struct {
	From       Point   `json:"from"`
	To         Point   `json:"to"`
	Continuous bool    `json:"continuous"`
	Ranges     []Range `json:"ranges"`
	// Gaps are the missing segments that break the window, in order.
	Gaps []Gap `json:"gaps"`
}

// Point is one end of a range: a position in the WAL.
type Point struct {
	LSN      string `json:"lsn"`
	Timeline uint32 `json:"timeline"`
	// WAL is the segment holding the point.
	WAL string `json:"wal"`
	// Time is the backup's stop time for a range's start, the time the
	// segment was archived for its end (nil when unknown).
	Time *time.Time `json:"time,omitempty"`
	// BackupID is the backup a range starts from.
	BackupID string `json:"backup_id,omitempty"`
}

// Range is a continuous stretch a restore can reach.
type Range struct {
	From Point `json:"from"`
	To   Point `json:"to"`
}

// Gap is a run of missing segments on one timeline.
type Gap struct {
	Timeline uint32 `json:"timeline"`
	First    string `json:"first"`
	Last     string `json:"last"`
	Count    uint64 `json:"count"`
}

// segmentMath numbers segments of one size along the WAL.
type segmentMath struct {
	size   uint32
	perLog uint64
}

func newSegmentMath(size uint32) segmentMath {
	return segmentMath{size: size, perLog: (1 << 32) / uint64(size)}
}

func (s segmentMath) no(seg wal.Segment) uint64 { return uint64(seg.Log)*s.perLog + uint64(seg.Seg) }

func (s segmentMath) seg(tli wal.TimelineID, no uint64) wal.Segment {
	return wal.Segment{Timeline: tli, Log: uint32(no / s.perLog), Seg: uint32(no % s.perLog)}
}

// endLSN is where segment no ends.
func (s segmentMath) endLSN(no uint64) wal.LSN { return wal.LSN((no + 1) * uint64(s.size)) }

// member is one timeline on the way to another: recovery reads it for
// segment numbers in [lower, upper).
type member struct {
	tli          wal.TimelineID
	lower, upper uint64
}

// path is the timelines recovery reads to reach tli, from tli back to the
// oldest ancestor with a known history: the parent up to the segment
// before the one holding the switch point, the child from that segment on.
func path(tli wal.TimelineID, spans map[wal.TimelineID]repository.TimelineSpan, sm segmentMath) []member {
	var out []member
	cur, upper := tli, ^uint64(0)
	for len(out) < len(spans)+1 {
		span := spans[cur]
		m := member{tli: cur, upper: upper}
		if span.Parent == 0 || span.Parent >= cur {
			out = append(out, m)
			break
		}
		sw, err := wal.SegmentFromLSN(cur, span.SwitchPoint, sm.size)
		if err != nil {
			out = append(out, m)
			break
		}
		m.lower = sm.no(sw)
		out = append(out, m)
		cur, upper = span.Parent, m.lower
	}
	return out
}

// timelineAt is the member of p that recovery reads segment no on.
func timelineAt(p []member, no uint64) (wal.TimelineID, bool) {
	for _, m := range p {
		if no >= m.lower && no < m.upper {
			return m.tli, true
		}
	}
	return 0, false
}

// onPath reports whether a backup's WAL lies on p: its start and stop
// segments on the timelines recovery reads there.
func onPath(p []member, sm segmentMath, m *repository.BackupManifest) (start, stop uint64, ok bool) {
	s, err1 := wal.ParseSegmentName(m.StartWAL)
	e, err2 := wal.ParseSegmentName(m.StopWAL)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	start, stop = sm.no(s), sm.no(e)
	ts, ok1 := timelineAt(p, start)
	te, ok2 := timelineAt(p, stop)
	return start, stop, ok1 && ok2 && ts == s.Timeline && te == e.Timeline
}

// walkWindow computes the window on timeline tli, whose newest archived
// segment is newest, from the DONE backups (oldest first). archived says
// when a segment was archived (nil when unknown). nil when no DONE backup
// leads to tli.
func walkWindow(tli wal.TimelineID, newest wal.Segment, spans map[wal.TimelineID]repository.TimelineSpan, x *repository.WALIndex, sm segmentMath,
	done []*repository.BackupManifest, archived func(wal.Segment) *time.Time) *Window {
	p := path(tli, spans, sm)
	type cand struct {
		m           *repository.BackupManifest
		start, stop uint64
	}
	var cands []cand
	for _, m := range done {
		if start, stop, ok := onPath(p, sm, m); ok {
			cands = append(cands, cand{m, start, stop})
		}
	}
	if len(cands) == 0 {
		return nil
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].stop < cands[j].stop })
	end := sm.no(newest)
	begin := cands[0].start
	for _, c := range cands {
		begin = min(begin, c.start)
	}
	if begin > end {
		return nil
	}
	// The gaps from the oldest backup's start to the newest segment, as
	// recovery would meet them.
	var gaps []Gap
	var gapNos [][2]uint64
	for n := begin; n <= end; n++ {
		t, _ := timelineAt(p, n)
		if x.HasSegment(sm.seg(t, n)) {
			continue
		}
		first := n
		for n+1 <= end {
			t2, _ := timelineAt(p, n+1)
			if t2 != t || x.HasSegment(sm.seg(t2, n+1)) {
				break
			}
			n++
		}
		gaps = append(gaps, Gap{Timeline: uint32(t), First: sm.seg(t, first).String(), Last: sm.seg(t, n).String(), Count: n - first + 1})
		gapNos = append(gapNos, [2]uint64{first, n})
	}

	w := &Window{Gaps: []Gap{}}
	from := func(c cand) Point {
		st := c.m.StopTime.UTC()
		return Point{LSN: c.m.StopLSN, Timeline: c.m.StopTimeline, WAL: c.m.StopWAL, Time: &st, BackupID: c.m.ID}
	}
	to := func(no uint64) Point {
		t, _ := timelineAt(p, no)
		s := sm.seg(t, no)
		return Point{LSN: sm.endLSN(no).String(), Timeline: uint32(t), WAL: s.String(), Time: archived(s)}
	}
	for i := 0; i < len(cands); {
		c := cands[i]
		broken, next := false, -1
		for k, gn := range gapNos {
			if gn[1] >= c.start && gn[0] <= c.stop {
				broken = true // not DONE along this path after all
				break
			}
			if gn[0] > c.stop {
				next = k
				break
			}
		}
		if broken {
			i++
			continue
		}
		if next < 0 {
			w.Ranges = append(w.Ranges, Range{From: from(c), To: to(end)})
			break
		}
		w.Ranges = append(w.Ranges, Range{From: from(c), To: to(gapNos[next][0] - 1)})
		w.Gaps = append(w.Gaps, gaps[next])
		// The next range starts at the first backup that starts after the
		// gap; without one, the WAL after it is archived but unreachable.
		for i < len(cands) && cands[i].start <= gapNos[next][1] {
			i++
		}
	}
	if len(w.Ranges) == 0 {
		return nil
	}
	last := w.Ranges[len(w.Ranges)-1]
	w.From, w.To = w.Ranges[0].From, last.To
	w.Continuous = len(w.Gaps) == 0
	return w
}
