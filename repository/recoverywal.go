package repository

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// RecoveryRange is the WAL a recovery to an LSN replays: from its backup's
// start segment to the segment holding Target, along the history of the
// timeline recovery follows.
type RecoveryRange struct {
	// Start is the backup's start_wal, on its start timeline.
	Start wal.Segment
	// Target is the LSN recovery stops at.
	Target wal.LSN
	// Timeline is recovery_target_timeline as a number; 0 is "latest",
	// which PostgreSQL finds by asking for the history files of Start's
	// timeline + 1, + 2, ... until one is missing.
	Timeline wal.TimelineID
}

// RecoveryReach is the verdict on a RecoveryRange.
type RecoveryReach struct {
	// Timeline is the timeline recovery follows.
	Timeline wal.TimelineID
	// OK: every segment recovery reads up to the target's is archived.
	OK bool
	// Missing is the first segment recovery reads that is not archived,
	// TargetSegment the one holding the target, each on the timeline
	// recovery reads it from.
	Missing, TargetSegment wal.Segment
	// Beyond: no segment after Missing up to TargetSegment is archived
	// either, so the archive ends before the target (or a gap runs up to
	// it: the range cannot tell, and neither is recoverable).
	Beyond bool
}

// pathPiece is the part of a recovery read on one timeline: segment
// numbers first to last.
type pathPiece struct {
	tli         wal.TimelineID
	first, last uint64
}

// hasHistory reports whether timeline tli's history file was read (it
// exists, readable or not).
func (x *WALIndex) hasHistory(tli wal.TimelineID) bool {
	t := x.tls[tli]
	return t != nil && t.hasHistory
}

// recoveryTimeline is the timeline recovery of r follows.
func (x *WALIndex) recoveryTimeline(r RecoveryRange) wal.TimelineID {
	if r.Timeline != 0 {
		return r.Timeline
	}
	tt := r.Start.Timeline
	for x.hasHistory(tt + 1) {
		tt++
	}
	return tt
}

// recoveryPath is the timeline recovery of r follows and, oldest first,
// the segments it reads from each timeline: per the followed timeline's
// history, an ancestor up to the segment before the one holding its switch
// point, and its child from that segment on (PostgreSQL's
// XLogFileReadAnyTLI). Without a history file the followed timeline has no
// ancestors (PostgreSQL's readTimeLineHistory); one that cannot be parsed
// is an error, as it stops recovery.
func (x *WALIndex) recoveryPath(r RecoveryRange) (wal.TimelineID, []pathPiece, error) {
	tt := x.recoveryTimeline(r)
	var entries []wal.HistoryEntry
	if t := x.tls[tt]; t != nil && tt != r.Start.Timeline {
		switch {
		case t.historyErr != nil:
			return tt, nil, fmt.Errorf("the history file of timeline %d, %08X.history, is invalid (%w): recovery could not follow that timeline", tt, uint32(tt), t.historyErr)
		case t.historyUnreadable != nil:
			return tt, nil, fmt.Errorf("the history file of timeline %d cannot be read: %s", tt, UnreadableHistoryWhy(tt, t.historyUnreadable))
		case t.historyPartial:
			// Only the last switch is known; recovery reads every ancestor.
			return tt, nil, fmt.Errorf("the history file of timeline %d, %08X.history, is encrypted and its metadata records only its last switch: give the identity (decrypt-with) to follow the whole history", tt, uint32(tt))
		}
		if err := x.historyConflict(tt); err != nil {
			return tt, nil, fmt.Errorf("the history file of timeline %d, %08X.history, does not continue the repository's timelines: %w; recovery would follow it: name the timeline to follow with --target-timeline, and move that file out of the repository if it is not this cluster's", tt, uint32(tt), err)
		}
		entries = t.history
	}
	from, to := x.segNo(r.Start), uint64(r.Target)/uint64(x.segSize)
	var path []pathPiece
	begin := uint64(0)
	add := func(tli wal.TimelineID, end uint64) { // end: where the next timeline begins
		first, last := max(begin, from), min(end-1, to)
		if end > 0 && first <= last {
			path = append(path, pathPiece{tli, first, last})
		}
		begin = max(begin, end)
	}
	for _, e := range entries {
		add(e.Timeline, uint64(e.SwitchPoint)/uint64(x.segSize))
	}
	add(tt, to+1)
	return tt, path, nil
}

// RecoveryReach says whether the index holds every segment recovery of r
// reads up to the one holding the target, following the timeline history
// the index holds (load it with Histories, or with LoadRecoveryWAL). An
// error says recovery could not follow the timeline at all.
func (x *WALIndex) RecoveryReach(r RecoveryRange) (RecoveryReach, error) {
	tt, path, err := x.recoveryPath(r)
	v := RecoveryReach{Timeline: tt, OK: true}
	if err != nil || len(path) == 0 {
		return v, err
	}
	last := path[len(path)-1]
	v.TargetSegment = x.segment(last.tli, last.last)
	runsOf := func(tli wal.TimelineID) []segRun {
		if t := x.tls[tli]; t != nil {
			return t.runs
		}
		return nil
	}
	for i, p := range path {
		gaps := missing(runsOf(p.tli), p.first, p.last)
		if len(gaps) == 0 {
			continue
		}
		v.OK, v.Missing = false, x.segment(p.tli, gaps[0].first)
		v.Beyond = gaps[0].last == p.last
		for _, q := range path[i+1:] {
			if g := missing(runsOf(q.tli), q.first, q.last); len(g) != 1 || g[0] != (segRun{q.first, q.last}) {
				v.Beyond = false
			}
		}
		return v, nil
	}
	return v, nil
}

// LoadRecoveryWAL adds to the inventory what RecoveryReach needs to judge
// r: the timeline history files recovery would ask for (read as
// PostgreSQL asks: "latest" probes the next timeline's until one is
// missing) and, when the inventory was loaded with BackupsOnly, the keys
// under wal/ of the segments recovery reads. Those are listed by key
// prefixes that the range spans, a few at a time: what is listed grows
// with the range, not with the archive. An inventory of all of wal/ lists
// nothing more. Without a WAL index (no usable identity) it does nothing.
func (inv *Inventory) LoadRecoveryWAL(ctx context.Context, b storage.Backend, r RecoveryRange) error {
	x := inv.WAL
	if x == nil {
		return nil
	}
	// Recovery usually stays on the backup's timeline: list the range
	// there while the history files are read, a round trip less before a
	// restore's first byte. A switch adds the rest after.
	var early []string
	if r.Timeline == 0 || r.Timeline == r.Start.Timeline {
		to := uint64(r.Target) / uint64(x.segSize)
		if from := x.segNo(r.Start); from <= to {
			early = inv.unlisted(x.rangePrefixes(r.Start.Timeline, from, to))
		}
	}
	var found [][]storage.ObjectInfo
	listed := make(chan error, 1)
	go func() {
		var err error
		found, err = listEach(ctx, b, early)
		listed <- err
	}()
	histories, herr := inv.readRecoveryHistories(ctx, b, r)
	if err := <-listed; err != nil {
		return err
	}
	if herr != nil {
		return herr
	}
	l := &lister{inv: inv}
	if err := l.addHistories(histories); err != nil {
		return err
	}
	if err := l.addListed(early, found); err != nil {
		return err
	}
	_, path, err := x.recoveryPath(r)
	if err != nil {
		return nil // RecoveryReach says so
	}
	var prefixes []string
	for _, p := range path {
		prefixes = append(prefixes, inv.unlisted(x.rangePrefixes(p.tli, p.first, p.last))...)
	}
	return l.listPrefixes(ctx, b, prefixes)
}

// unlisted drops the prefixes whose keys were all listed; none when all
// of wal/ was.
func (inv *Inventory) unlisted(prefixes []string) []string {
	var out []string
	for _, prefix := range prefixes {
		if !inv.walPrefixListed(prefix) {
			out = append(out, prefix)
		}
	}
	return out
}

// walPrefixListed reports whether every key under prefix was listed.
func (inv *Inventory) walPrefixListed(prefix string) bool {
	if !inv.walScoped {
		return true
	}
	for _, p := range inv.walListed {
		if strings.HasPrefix(prefix, p) {
			return true
		}
	}
	return false
}

// historyRead is a timeline history file read from the repository.
type historyRead struct {
	tli  wal.TimelineID
	size int64
	file historyFile
}

// readRecoveryHistories reads the history files recovery of r asks for
// that the WAL index lacks: with "latest", the next timeline's until one
// is missing; with another timeline than the backup's, that one's.
func (inv *Inventory) readRecoveryHistories(ctx context.Context, b storage.Backend, r RecoveryRange) ([]historyRead, error) {
	var out []historyRead
	read := func(tli wal.TimelineID) (found bool, err error) {
		switch {
		case inv.WAL.hasHistory(tli):
			return true, nil
		case inv.historyAbsent[tli]:
			return false, nil
		}
		key := historyKey(tli)
		hidden := false // behind a delete marker, as LoadOptions.Hidden found it
		for _, h := range inv.Hidden {
			hidden = hidden || h.Key == key
		}
		f, size, err := readHistory(ctx, b, key, hidden, inv.ids)
		if errors.Is(err, storage.ErrNotFound) {
			if inv.historyAbsent == nil {
				inv.historyAbsent = map[wal.TimelineID]bool{}
			}
			inv.historyAbsent[tli] = true
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s from %s: %w", key, b.Location(), err)
		}
		out = append(out, historyRead{tli, size, f})
		return true, nil
	}
	switch tt := r.Timeline; {
	case tt == 0:
		// The backup's own timeline's history too: each later one must
		// continue it (WALIndex.historyConflict).
		if r.Start.Timeline > 1 {
			if _, err := read(r.Start.Timeline); err != nil {
				return out, err
			}
		}
		for tli := r.Start.Timeline + 1; ; tli++ {
			found, err := read(tli)
			if err != nil || !found {
				return out, err
			}
		}
	case tt != r.Start.Timeline:
		_, err := read(tt)
		return out, err
	}
	return out, nil
}

// FollowedTimeline reads the history files a recovery from start to
// target (0: latest) asks for, as LoadRecoveryWAL does (which then reads
// none of them again), and returns the timeline it follows with what is
// known of that timeline's history (known false: its history file could
// not be read whole or parsed). Without a WAL index (no usable identity)
// known is false.
func (inv *Inventory) FollowedTimeline(ctx context.Context, b storage.Backend, start wal.Segment, target wal.TimelineID) (tli wal.TimelineID, history []wal.HistoryEntry, known bool, err error) {
	if inv.WAL == nil {
		return 0, nil, false, nil
	}
	r := RecoveryRange{Start: start, Timeline: target}
	histories, err := inv.readRecoveryHistories(ctx, b, r)
	if err != nil {
		return 0, nil, false, err
	}
	if err := (&lister{inv: inv}).addHistories(histories); err != nil {
		return 0, nil, false, err
	}
	tli = inv.WAL.recoveryTimeline(r)
	if tli == start.Timeline || tli == 1 {
		// Timeline 1 has no history: none is an ancestor of it.
		return tli, nil, true, nil
	}
	history, known = inv.WAL.KnownHistory(tli)
	return tli, history, known, nil
}

func historyKey(tli wal.TimelineID) string {
	return WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: tli}, None)
}

// addHistory adds a history file read to the inventory and its WAL index.
// addHistories adds what readRecoveryHistories read.
func (l *lister) addHistories(hs []historyRead) error {
	for _, h := range hs {
		if err := l.addHistory(h); err != nil {
			return err
		}
	}
	return nil
}

func (l *lister) addHistory(h historyRead) error {
	key := historyKey(h.tli)
	if !l.inv.walPrefixListed(key) {
		if err := l.visit(storage.ObjectInfo{Key: key, Size: h.size}); err != nil {
			return err
		}
		l.inv.walListed = append(l.inv.walListed, key)
	}
	l.inv.WAL.setHistoryFile(h.tli, h.file)
	return nil
}

// minListedBlock is the fewest segments one prefix of rangePrefixes may
// cover: a List page holds 1,000 keys, so a block that small (with its
// occasional backup history files) costs one request however little of
// it the range needs.
const minListedBlock = 256

// rangePrefixes are key prefixes that hold every segment of timeline tli
// numbered first to last. Each is a segment name cut short, which holds an
// aligned block of segments; all are of the largest block size not above
// the range's length (or minListedBlock), so there are at most 17 of them
// and what they list beyond the range is at most two blocks. Sorted, none
// inside another.
func (x *WALIndex) rangePrefixes(tli wal.TimelineID, first, last uint64) []string {
	// The names that share all but the last cut hex digits of a segment's
	// are a block of this many segments: within the segment number (the
	// last 8 digits) at most a log's worth, beyond it whole logs.
	block := func(cut int) uint64 {
		if cut <= 8 {
			return min(uint64(1)<<(4*cut), x.perLog)
		}
		return x.perLog << (4 * (cut - 8))
	}
	limit := max(last-first+1, minListedBlock)
	cut := 0
	for cut < 16 && block(cut+1) <= limit {
		cut++
	}
	size := block(cut)
	var out []string
	for n := first - first%size; n <= last; n += size {
		name := x.segment(tli, n).String()
		out = append(out, TimelinePrefix(tli)+name[:len(name)-cut])
	}
	return out
}
