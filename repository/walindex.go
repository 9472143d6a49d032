package repository

import (
	"fmt"
	"sort"
	"strings"

	"github.com/walvault/walvault/wal"
)

// WALIndex is what continuity needs to know about the archived WAL, built
// while the wal/ folder streams past: per timeline, the archived segments
// as runs of consecutive segment numbers (memory grows with the number of
// gaps, not of segments), the partial segments, and the timeline's history.
type WALIndex struct {
	segSize uint32
	perLog  uint64
	tls     map[wal.TimelineID]*timelineWAL
}

type timelineWAL struct {
	runs     []segRun // sorted, disjoint, not adjacent
	partials int
	// received holds the segment numbers wal-receive has partials of
	// (partial/...): few, since wal-receive deletes them as segments
	// complete.
	received map[uint64]bool
	// history is set once the timeline's history file was read; historyErr
	// when it could not be parsed. historyPartial: only its last entry is
	// known (an encrypted file's metadata without room for more), which is
	// all continuity needs. historyUnreadable says why nothing is known:
	// the file is encrypted, its metadata records no switch, and no
	// identity decrypted it.
	hasHistory        bool
	history           []wal.HistoryEntry
	historyErr        error
	historyPartial    bool
	historyUnreadable error
}

// segRun is a run of consecutive archived segments, by segment number.
type segRun struct{ first, last uint64 }

// NewWALIndex starts an empty index for segments of segSize bytes (the
// repository's wal_segment_size).
func NewWALIndex(segSize uint32) (*WALIndex, error) {
	if err := wal.ValidateSegmentSize(segSize); err != nil {
		return nil, err
	}
	return &WALIndex{segSize: segSize, perLog: (1 << 32) / uint64(segSize), tls: map[wal.TimelineID]*timelineWAL{}}, nil
}

func (x *WALIndex) tl(tli wal.TimelineID) *timelineWAL {
	t := x.tls[tli]
	if t == nil {
		t = &timelineWAL{}
		x.tls[tli] = t
	}
	return t
}

func (x *WALIndex) segNo(s wal.Segment) uint64 { return uint64(s.Log)*x.perLog + uint64(s.Seg) }

func (x *WALIndex) segment(tli wal.TimelineID, no uint64) wal.Segment {
	return wal.Segment{Timeline: tli, Log: uint32(no / x.perLog), Seg: uint32(no % x.perLog)}
}

// AddSegment records an archived (full) segment. Segments usually arrive in
// order (List walks keys in lexical order, which is segment order); any
// order works.
func (x *WALIndex) AddSegment(s wal.Segment) {
	t := x.tl(s.Timeline)
	n := x.segNo(s)
	if k := len(t.runs); k > 0 {
		last := &t.runs[k-1]
		switch {
		case n == last.last+1:
			last.last = n
			return
		case n > last.last+1:
			t.runs = append(t.runs, segRun{n, n})
			return
		}
	} else {
		t.runs = append(t.runs, segRun{n, n})
		return
	}
	// Out of order or a duplicate: insert and merge.
	i := sort.Search(len(t.runs), func(i int) bool { return t.runs[i].last+1 >= n })
	if i < len(t.runs) && t.runs[i].first <= n+1 {
		r := &t.runs[i]
		if n < r.first {
			r.first = n
		}
		if n > r.last {
			r.last = n
		}
	} else {
		t.runs = append(t.runs, segRun{})
		copy(t.runs[i+1:], t.runs[i:])
		t.runs[i] = segRun{n, n}
	}
	// Merge neighbours that now touch.
	merged := t.runs[:1]
	for _, r := range t.runs[1:] {
		p := &merged[len(merged)-1]
		if r.first <= p.last+1 {
			if r.last > p.last {
				p.last = r.last
			}
			continue
		}
		merged = append(merged, r)
	}
	t.runs = merged
}

// AddPartial records a partial segment (".partial"): PostgreSQL archives
// the last, unfinished segment of a timeline that way at a promotion.
// Recovery never reads it, so it fills no gap; it only makes the timeline
// known.
func (x *WALIndex) AddPartial(s wal.Segment) { x.tl(s.Timeline).partials++ }

// AddReceivedPartial records that wal-receive stored a partial of segment s
// (under repository.PartialPrefix). Such a partial counts for continuity
// only as the last segment of its timeline, after every archived segment:
// wal-fetch serves it zero-padded and recovery ends at its end, so
// anywhere else it would hide a gap that stops recovery.
func (x *WALIndex) AddReceivedPartial(s wal.Segment) {
	t := x.tl(s.Timeline)
	if t.received == nil {
		t.received = map[uint64]bool{}
	}
	t.received[x.segNo(s)] = true
}

// HasSegment reports whether the full segment s is archived.
func (x *WALIndex) HasSegment(s wal.Segment) bool {
	t := x.tls[s.Timeline]
	if t == nil {
		return false
	}
	n := x.segNo(s)
	i := sort.Search(len(t.runs), func(i int) bool { return t.runs[i].last >= n })
	return i < len(t.runs) && t.runs[i].first <= n
}

// endPartial is the segment number of the timeline's last segment when
// only a wal-receive partial holds it: the highest segment with a partial,
// if it lies after every archived segment.
func (t *timelineWAL) endPartial() (uint64, bool) {
	var last uint64
	ok := false
	for n := range t.received {
		if !ok || n > last {
			last, ok = n, true
		}
	}
	if !ok || len(t.runs) > 0 && last <= t.runs[len(t.runs)-1].last {
		return 0, false
	}
	return last, true
}

// SetHistory records timeline tli's history file (wal/TTTTTTTT.history),
// or the error that made it unreadable.
func (x *WALIndex) SetHistory(tli wal.TimelineID, entries []wal.HistoryEntry, err error) {
	x.setHistoryFile(tli, historyFile{entries: entries, err: err})
}

// setHistoryFile records what was read of timeline tli's history file.
func (x *WALIndex) setHistoryFile(tli wal.TimelineID, f historyFile) {
	t := x.tl(tli)
	t.hasHistory, t.history, t.historyErr = true, f.entries, f.err
	t.historyPartial, t.historyUnreadable = f.partial, f.unreadable
	if f.err == nil && f.unreadable == nil {
		if cerr := wal.CheckHistory(tli, f.entries); cerr != nil {
			t.history, t.historyErr, t.historyPartial = nil, cerr, false
		}
	}
}

// knownHistory is timeline tli's history when its history file was read
// whole and parsed.
func (x *WALIndex) knownHistory(tli wal.TimelineID) ([]wal.HistoryEntry, bool) {
	t := x.tls[tli]
	if t == nil || !t.hasHistory || t.historyErr != nil || t.historyPartial || t.historyUnreadable != nil {
		return nil, false
	}
	return t.history, true
}

// historyConflict says how timeline tli's history file contradicts the one
// of the timeline it branched from, when both were read: PostgreSQL writes
// a new timeline's history as its parent's lines plus one. Another
// cluster's history file (pushed with the old archive settings after
// pg_upgrade, say) or a second server promoted onto the same lineage
// disagree with the repository's own; recovery to latest would follow
// them.
func (x *WALIndex) historyConflict(tli wal.TimelineID) error {
	h, ok := x.knownHistory(tli)
	if !ok || len(h) == 0 {
		return nil
	}
	parent := h[len(h)-1].Timeline
	ph, ok := x.knownHistory(parent)
	if !ok {
		return nil
	}
	inherited := h[:len(h)-1]
	for i := 0; i < max(len(inherited), len(ph)); i++ {
		switch {
		case i >= len(inherited):
			return fmt.Errorf("it leaves out the switch from timeline %d at %s that %08X.history, the history of the timeline it branched from, records (a history file of another cluster, or of a server promoted onto another lineage?)", ph[i].Timeline, ph[i].SwitchPoint, uint32(parent))
		case i >= len(ph):
			return fmt.Errorf("it records a switch from timeline %d at %s that %08X.history, the history of the timeline it branched from, does not (a history file of another cluster, or of a server promoted onto another lineage?)", inherited[i].Timeline, inherited[i].SwitchPoint, uint32(parent))
		case inherited[i].Timeline != ph[i].Timeline || inherited[i].SwitchPoint != ph[i].SwitchPoint:
			return fmt.Errorf("it says timeline %d ended at %s, but %08X.history, the history of the timeline it branched from, says timeline %d ended at %s (a history file of another cluster, or of a server promoted onto another lineage?)", inherited[i].Timeline, inherited[i].SwitchPoint, uint32(parent), ph[i].Timeline, ph[i].SwitchPoint)
		}
	}
	return nil
}

// Gap is a run of segments missing on one timeline.
type Gap struct {
	Timeline    wal.TimelineID
	First, Last wal.Segment
	Count       uint64
	// Needed is false for a gap on a timeline no backup leads to: a hole in
	// the archive, but nothing a restore of a backup would read.
	Needed bool
	// Partial: wal-receive holds a partial of some segment of the gap. It
	// fills nothing: recovery would stop at its end.
	Partial bool
}

// Names lists the missing segments' names when there are at most limit of
// them, and nil otherwise (then First, Last and Count describe the gap).
func (g Gap) Names(segSize uint32, limit int) []string {
	if g.Count > uint64(limit) {
		return nil
	}
	names := make([]string, 0, g.Count)
	s := g.First
	for i := uint64(0); i < g.Count; i++ {
		names = append(names, s.String())
		next, err := s.Next(segSize)
		if err != nil {
			break
		}
		s = next
	}
	return names
}

// Describe says which segments are missing: every name for a small gap,
// the first and last name and the count for a big one.
func (g Gap) Describe(segSize uint32) string {
	if names := g.Names(segSize, MaxListedNames); names != nil {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%d segments, %s to %s", g.Count, g.First, g.Last)
}

// MaxListedNames is the largest gap whose every segment name is printed.
const MaxListedNames = 10

// TimelineSpan says what was checked on one timeline.
type TimelineSpan struct {
	Timeline wal.TimelineID
	// Parent and SwitchPoint come from the timeline's history file (zero
	// for timeline 1 or without a readable history).
	Parent      wal.TimelineID
	SwitchPoint wal.LSN
	// Oldest and Newest are the timeline's oldest and newest archived full
	// segments; Segments counts them. HasSegments is false when it has
	// none (only a history file or partial segments).
	HasSegments    bool
	Oldest, Newest wal.Segment
	Segments       uint64
	Partials       int
	// EndsInPartial: the timeline's last segment (To, when Checked) is held
	// only by a partial of wal-receive, which continuity counts there.
	EndsInPartial bool
	// Checked is false when no range needed checking; From and To bound
	// the range checked (inclusive).
	Checked  bool
	From, To wal.Segment
	// Reachable: a backup's start leads to this timeline (on it, or on an
	// ancestor before the branch point).
	Reachable bool
}

// Continuity is the verdict on the archived WAL.
type Continuity struct {
	Timelines []TimelineSpan
	Gaps      []Gap
	// MissingHistory lists timelines after 1 with archived segments but no
	// history file: recovery cannot follow them.
	MissingHistory []wal.TimelineID
	// BadHistory maps timelines to the error in their history file.
	BadHistory map[wal.TimelineID]error
	// UnreadableHistory maps timelines to why their history file could not
	// be read: it is encrypted, was archived by a walvault that did not
	// yet record the switch in its metadata, and no identity decrypted it.
	// Such a timeline's branch point is unknown, so the WAL leading to it
	// was not checked across the switch (Unchecked says so); it is not a
	// fault of the repository.
	UnreadableHistory map[wal.TimelineID]error
}

// Continuity checks, per timeline, that every segment from a start to the
// newest archived segment is there, following timeline history so that a
// branch point is not taken for a gap: recovery reads the parent timeline
// up to the segment before the one holding the switch point, and the child
// timeline from that segment on (PostgreSQL's XLogFileReadAnyTLI).
//
// starts are the start segments of the backups continuity must serve
// (start_wal on the backup's start timeline). A timeline is checked from
// the oldest start on it, or from the switch segment when its parent is
// checked from a point before the branch, to its newest archived segment
// (and a parent at least up to its children's branch points). With no
// starts, every timeline is checked from its oldest archived segment.
// Timelines no start leads to are checked from their oldest archived
// segment too, but their gaps are marked not Needed.
func (x *WALIndex) Continuity(starts []wal.Segment) Continuity {
	tlis := make([]wal.TimelineID, 0, len(x.tls))
	for tli := range x.tls {
		tlis = append(tlis, tli)
	}
	sort.Slice(tlis, func(i, j int) bool { return tlis[i] < tlis[j] })

	type bound struct {
		set bool
		n   uint64
	}
	from := map[wal.TimelineID]bound{}
	lower := func(m map[wal.TimelineID]bound, tli wal.TimelineID, n uint64) {
		if b := m[tli]; !b.set || n < b.n {
			m[tli] = bound{true, n}
		}
	}
	for _, s := range starts {
		lower(from, s.Timeline, x.segNo(s))
	}
	// Parents come before children: a history only names older timelines.
	branch := map[wal.TimelineID]uint64{} // child -> switch segment, for reachable children
	for _, tli := range tlis {
		t := x.tls[tli]
		if len(starts) == 0 {
			if first, ok := t.first(); ok {
				lower(from, tli, first)
			}
		}
		if t.historyUnreadable != nil && startBefore(starts, tli) {
			// Where it branches is unknown: a restore from a backup on an
			// older timeline may well follow it, so its gaps count as
			// needed rather than be waved through.
			if first, ok := t.first(); ok {
				lower(from, tli, first)
			}
		}
		if len(t.history) == 0 {
			continue
		}
		p := t.history[len(t.history)-1]
		sw, err := wal.SegmentFromLSN(tli, p.SwitchPoint, x.segSize)
		if err != nil {
			continue
		}
		if pf := from[p.Timeline]; pf.set && pf.n <= x.segNo(sw) {
			lower(from, tli, x.segNo(sw))
			branch[tli] = x.segNo(sw)
		}
	}
	to := map[wal.TimelineID]bound{}
	for _, tli := range tlis {
		t := x.tls[tli]
		if n, ok := t.endPartial(); ok {
			to[tli] = bound{true, n}
		} else if len(t.runs) > 0 {
			to[tli] = bound{true, t.runs[len(t.runs)-1].last}
		}
	}
	for child, sw := range branch {
		parent := x.tls[child].history[len(x.tls[child].history)-1].Timeline
		if sw == 0 {
			continue
		}
		if b := to[parent]; !b.set || sw-1 > b.n {
			to[parent] = bound{true, sw - 1}
		}
	}

	var c Continuity
	for _, tli := range tlis {
		t := x.tls[tli]
		span := TimelineSpan{Timeline: tli, Partials: t.partials}
		if len(t.history) > 0 {
			p := t.history[len(t.history)-1]
			span.Parent, span.SwitchPoint = p.Timeline, p.SwitchPoint
		}
		herr := t.historyErr
		if herr == nil {
			herr = x.historyConflict(tli)
		}
		if herr != nil {
			if c.BadHistory == nil {
				c.BadHistory = map[wal.TimelineID]error{}
			}
			c.BadHistory[tli] = herr
		} else if t.historyUnreadable != nil {
			if c.UnreadableHistory == nil {
				c.UnreadableHistory = map[wal.TimelineID]error{}
			}
			c.UnreadableHistory[tli] = t.historyUnreadable
		} else if tli > 1 && !t.hasHistory && (len(t.runs) > 0 || t.partials > 0 || len(t.received) > 0) {
			c.MissingHistory = append(c.MissingHistory, tli)
		}
		for _, r := range t.runs {
			span.Segments += r.last - r.first + 1
		}
		if len(t.runs) > 0 {
			span.HasSegments = true
			span.Oldest = x.segment(tli, t.runs[0].first)
			span.Newest = x.segment(tli, t.runs[len(t.runs)-1].last)
		}
		f, e := from[tli], to[tli]
		span.Reachable = f.set
		if first, ok := t.first(); !f.set && ok {
			f = bound{true, first} // not needed; still look for holes
		}
		if f.set && e.set && f.n <= e.n {
			span.Checked = true
			span.From, span.To = x.segment(tli, f.n), x.segment(tli, e.n)
			runs := t.runs
			if n, ok := t.endPartial(); ok && n == e.n {
				// The partial is the last segment of the checked range
				// (a child's branch point may need more of a parent).
				runs = append(runs[:len(runs):len(runs)], segRun{n, n})
				span.EndsInPartial = true
			}
			for _, g := range missing(runs, f.n, e.n) {
				c.Gaps = append(c.Gaps, Gap{
					Timeline: tli,
					First:    x.segment(tli, g.first),
					Last:     x.segment(tli, g.last),
					Count:    g.last - g.first + 1,
					Needed:   span.Reachable,
					Partial:  t.receivedIn(g),
				})
			}
		}
		c.Timelines = append(c.Timelines, span)
	}
	return c
}

// startBefore reports whether a start lies on a timeline older than tli.
func startBefore(starts []wal.Segment, tli wal.TimelineID) bool {
	for _, s := range starts {
		if s.Timeline < tli {
			return true
		}
	}
	return false
}

// first is the timeline's oldest segment with data: archived, or else the
// partial that is its last segment.
func (t *timelineWAL) first() (uint64, bool) {
	if len(t.runs) > 0 {
		return t.runs[0].first, true
	}
	return t.endPartial()
}

// receivedIn reports whether wal-receive holds a partial of a segment in g.
func (t *timelineWAL) receivedIn(g segRun) bool {
	for n := range t.received {
		if n >= g.first && n <= g.last {
			return true
		}
	}
	return false
}

// missing returns the runs of segment numbers in [from, to] that runs lacks.
func missing(runs []segRun, from, to uint64) []segRun {
	var out []segRun
	next := from
	for _, r := range runs {
		if r.last < next {
			continue
		}
		if r.first > to {
			break
		}
		if r.first > next {
			out = append(out, segRun{next, r.first - 1})
		}
		if r.last >= to {
			return out
		}
		next = r.last + 1
	}
	if next <= to {
		out = append(out, segRun{next, to})
	}
	return out
}

// Covered reports whether every segment from start to stop (inclusive, on
// start's timeline; stop only gives the position) is archived, and if not
// the first one missing. ok is false as well when the range runs past the
// newest archived segment: then beyond says so (the WAL is not archived
// yet, rather than lost).
func (x *WALIndex) Covered(start, stop wal.Segment) (ok bool, firstMissing wal.Segment, beyond bool) {
	t := x.tls[start.Timeline]
	a, b := x.segNo(start), x.segNo(stop)
	if t == nil || len(t.runs) == 0 {
		return false, start, true
	}
	gaps := missing(t.runs, a, b)
	if len(gaps) == 0 {
		return true, wal.Segment{}, false
	}
	return false, x.segment(start.Timeline, gaps[0].first), gaps[0].first > t.runs[len(t.runs)-1].last
}

// CoveredAcross is Covered for a backup whose stop segment may lie on
// another timeline than its start (taken on a standby that was promoted,
// or whose upstream was, meanwhile): each segment before stop's position
// may be archived on start's timeline or on any timeline after it up to
// stop's, the stop segment must be on stop's. PostgreSQL reads each
// segment from the newest timeline of the history that had begun by it,
// so the segment where a timeline branched off is read from the child
// (the parent's copy of it is a .partial, never archived in full), and a
// backup whose start lies before a switch needs the child's segments from
// there on.
func (x *WALIndex) CoveredAcross(start, stop wal.Segment) (ok bool, firstMissing wal.Segment, beyond bool) {
	a, b := x.segNo(start), x.segNo(stop)
	switch {
	case start.Timeline == stop.Timeline:
		return x.Covered(start, stop)
	case b <= a:
		// Started and stopped in the segment where the stop timeline
		// branched off: that segment is the stop timeline's (the start
		// timeline's copy of it is a partial).
		return x.Covered(stop, stop)
	}
	runsOf := func(tli wal.TimelineID) []segRun {
		if t := x.tls[tli]; t != nil {
			return t.runs
		}
		return nil
	}
	// What start's timeline lacks, narrowed by each later timeline.
	gaps := missing(runsOf(start.Timeline), a, b-1)
	var newest uint64
	for tli := start.Timeline; tli <= stop.Timeline && len(gaps) > 0; tli++ {
		runs := runsOf(tli)
		if len(runs) > 0 {
			newest = max(newest, runs[len(runs)-1].last)
		}
		if tli == start.Timeline {
			continue
		}
		var still []segRun
		for _, g := range gaps {
			still = append(still, missing(runs, g.first, g.last)...)
		}
		gaps = still
	}
	if len(gaps) > 0 {
		return false, x.segment(start.Timeline, gaps[0].first), gaps[0].first > newest
	}
	return x.Covered(stop, stop)
}

// Along keeps of c what a recovery following timeline tli reads, given
// tli's history (its ancestors and where each branched): tli and its
// ancestors, each ancestor only up to the segment before the one where
// its child begins (recovery reads that one from the child). A drill or
// restore along one timeline has no business with another's gaps or
// newest segment: a restored copy promoted and archiving here, or the
// old primary going on after a point-in-time restore.
func (c Continuity) Along(tli wal.TimelineID, history []wal.HistoryEntry, segSize uint32) Continuity {
	perLog := uint64(1) << 32 / uint64(segSize)
	number := func(s wal.Segment) uint64 { return uint64(s.Log)*perLog + uint64(s.Seg) }
	// limit: the first segment number recovery no longer reads on an
	// ancestor (none for tli itself).
	limit := map[wal.TimelineID]uint64{}
	for _, h := range history {
		limit[h.Timeline] = uint64(h.SwitchPoint) / uint64(segSize)
	}
	onPath := func(t wal.TimelineID) bool {
		_, ancestor := limit[t]
		return t == tli || ancestor
	}
	below := func(s wal.Segment) bool {
		l, ok := limit[s.Timeline]
		return !ok || number(s) < l
	}
	// last is the last segment read on an ancestor; only asked where
	// some segment is below the limit, so the limit is not 0.
	segment := func(t wal.TimelineID, n uint64) wal.Segment {
		return wal.Segment{Timeline: t, Log: uint32(n / perLog), Seg: uint32(n % perLog)}
	}
	last := func(t wal.TimelineID) wal.Segment { return segment(t, limit[t]-1) }
	var out Continuity
	for _, span := range c.Timelines {
		if !onPath(span.Timeline) {
			continue
		}
		if span.HasSegments && !below(span.Newest) {
			if below(span.Oldest) {
				// The newest archived below the limit: before any hole
				// the limit falls in.
				n := number(last(span.Timeline))
				for _, g := range c.Gaps {
					if g.Timeline == span.Timeline && number(g.First) <= n && n <= number(g.Last) {
						n = number(g.First) - 1
					}
				}
				span.Newest = segment(span.Timeline, n)
			} else {
				span.HasSegments = false
			}
		}
		out.Timelines = append(out.Timelines, span)
	}
	for _, g := range c.Gaps {
		if !onPath(g.Timeline) || !below(g.First) {
			continue
		}
		if !below(g.Last) {
			g.Last = last(g.Timeline)
			g.Count = number(g.Last) - number(g.First) + 1
		}
		out.Gaps = append(out.Gaps, g)
	}
	for _, t := range c.MissingHistory {
		if onPath(t) {
			out.MissingHistory = append(out.MissingHistory, t)
		}
	}
	pick := func(m map[wal.TimelineID]error) map[wal.TimelineID]error {
		var kept map[wal.TimelineID]error
		for t, err := range m {
			if onPath(t) {
				if kept == nil {
					kept = map[wal.TimelineID]error{}
				}
				kept[t] = err
			}
		}
		return kept
	}
	out.BadHistory, out.UnreadableHistory = pick(c.BadHistory), pick(c.UnreadableHistory)
	return out
}

// Summary says in one line what is missing, for a check line: the needed
// gaps (with their names), missing and bad history files; "" when there is
// nothing to say.
func (c Continuity) Summary(segSize uint32) string {
	var parts []string
	for _, g := range c.Gaps {
		if g.Needed {
			parts = append(parts, fmt.Sprintf("timeline %d lacks %s", g.Timeline, g.Describe(segSize)))
		}
	}
	for _, tli := range c.MissingHistory {
		parts = append(parts, fmt.Sprintf("no history file %08X.history", uint32(tli)))
	}
	bad := make([]wal.TimelineID, 0, len(c.BadHistory))
	for tli := range c.BadHistory {
		bad = append(bad, tli)
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i] < bad[j] })
	for _, tli := range bad {
		parts = append(parts, fmt.Sprintf("%08X.history is invalid (%v)", uint32(tli), c.BadHistory[tli]))
	}
	return strings.Join(parts, "; ")
}

// Unchecked says in one line which timeline switches could not be checked
// (UnreadableHistory), for a check line beside Summary; "" when none. It
// is no verdict: the repository may well be fine.
func (c Continuity) Unchecked() string {
	tlis := make([]wal.TimelineID, 0, len(c.UnreadableHistory))
	for tli := range c.UnreadableHistory {
		tlis = append(tlis, tli)
	}
	sort.Slice(tlis, func(i, j int) bool { return tlis[i] < tlis[j] })
	var parts []string
	for _, tli := range tlis {
		parts = append(parts, fmt.Sprintf("the switch to timeline %d was not checked: %s", tli, UnreadableHistoryWhy(tli, c.UnreadableHistory[tli])))
	}
	return strings.Join(parts, "; ")
}

// UnreadableHistoryWhy says why timeline tli's history file could not be
// read (Continuity.UnreadableHistory); why says what would read it.
func UnreadableHistoryWhy(tli wal.TimelineID, why error) string {
	return fmt.Sprintf("%s is encrypted and records no branch point in its metadata (archived by an older walvault): %v", historyKey(tli), why)
}

// KnownHistory is what is known of timeline tli's history: its history
// file's entries, or only the last of them where an encrypted file's
// metadata had room for no more (ok false: unread, or unreadable).
func (x *WALIndex) KnownHistory(tli wal.TimelineID) (entries []wal.HistoryEntry, ok bool) {
	t := x.tls[tli]
	if t == nil || !t.hasHistory || t.historyErr != nil || t.historyUnreadable != nil {
		return nil, false
	}
	return t.history, true
}
