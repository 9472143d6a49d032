package repository

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/walvault/walvault/wal"
)

const seg16 = 16 << 20

// walSet describes archived WAL for a test: segment numbers (log 0) per
// timeline, partial segments, and history files as PostgreSQL writes them.
type walSet struct {
	segs      map[wal.TimelineID][]uint32
	partials  map[wal.TimelineID][]uint32
	histories map[wal.TimelineID]string
}

func (w walSet) index(t *testing.T) *WALIndex {
	t.Helper()
	x, err := NewWALIndex(seg16)
	if err != nil {
		t.Fatal(err)
	}
	for tli, ns := range w.segs {
		for _, n := range ns {
			x.AddSegment(wal.Segment{Timeline: tli, Seg: n})
		}
	}
	for tli, ns := range w.partials {
		for _, n := range ns {
			x.AddPartial(wal.Segment{Timeline: tli, Seg: n})
		}
	}
	for tli, text := range w.histories {
		entries, err := wal.ParseHistory(strings.NewReader(text))
		x.SetHistory(tli, entries, err)
	}
	return x
}

func span(first, last uint32) []uint32 {
	var out []uint32
	for n := first; n <= last; n++ {
		out = append(out, n)
	}
	return out
}

func cat(parts ...[]uint32) []uint32 {
	var out []uint32
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func start(tli wal.TimelineID, n uint32) wal.Segment { return wal.Segment{Timeline: tli, Seg: n} }

// gapString is "T:first-last" (segment numbers in hex, log 0), with a "?"
// for gaps no backup needs.
func gapString(g Gap) string {
	s := fmt.Sprintf("%d:%X-%X", g.Timeline, g.First.Seg, g.Last.Seg)
	if !g.Needed {
		s += "?"
	}
	return s
}

func TestContinuity(t *testing.T) {
	tests := []struct {
		name        string
		wal         walSet
		starts      []wal.Segment
		wantGaps    []string
		wantMissing []wal.TimelineID // missing history files
		wantBad     []wal.TimelineID // unparsable history files
	}{
		{
			name:   "no gap",
			wal:    walSet{segs: map[wal.TimelineID][]uint32{1: span(1, 9)}},
			starts: []wal.Segment{start(1, 2)},
		},
		{
			name:     "a gap in the middle",
			wal:      walSet{segs: map[wal.TimelineID][]uint32{1: cat(span(1, 4), span(6, 9))}},
			starts:   []wal.Segment{start(1, 2)},
			wantGaps: []string{"1:5-5"},
		},
		{
			name:     "two gaps, one of three segments",
			wal:      walSet{segs: map[wal.TimelineID][]uint32{1: cat(span(1, 2), span(4, 5), span(9, 10))}},
			starts:   []wal.Segment{start(1, 1)},
			wantGaps: []string{"1:3-3", "1:6-8"},
		},
		{
			name:   "a gap before the oldest backup is not reported",
			wal:    walSet{segs: map[wal.TimelineID][]uint32{1: cat(span(1, 2), span(5, 9))}},
			starts: []wal.Segment{start(1, 5)},
		},
		{
			name:     "without backups, from the oldest archived segment",
			wal:      walSet{segs: map[wal.TimelineID][]uint32{1: cat(span(3, 4), span(6, 7))}},
			wantGaps: []string{"1:5-5"},
		},
		{
			name: "a timeline switch with history is not a gap",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: span(1, 4), 2: span(5, 8)},
				partials:  map[wal.TimelineID][]uint32{1: {5}},
				histories: map[wal.TimelineID]string{2: "1\t0/5000100\tno recovery target specified\n"},
			},
			starts: []wal.Segment{start(1, 2)},
		},
		{
			name: "a switch exactly at a segment boundary",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: span(1, 4), 2: span(5, 6)},
				histories: map[wal.TimelineID]string{2: "1\t0/5000000\tat a boundary\n"},
			},
			starts: []wal.Segment{start(1, 1)},
		},
		{
			name: "the parent lacks the segment before the switch",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: span(1, 3), 2: span(5, 8)},
				partials:  map[wal.TimelineID][]uint32{1: {5}},
				histories: map[wal.TimelineID]string{2: "1\t0/5000100\n"},
			},
			starts:   []wal.Segment{start(1, 2)},
			wantGaps: []string{"1:4-4"},
		},
		{
			name: "the child lacks its first segment",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: span(1, 4), 2: span(6, 8)},
				histories: map[wal.TimelineID]string{2: "1\t0/5000100\n"},
			},
			starts:   []wal.Segment{start(1, 2)},
			wantGaps: []string{"2:5-5"},
		},
		{
			name: "the parent went on after a branch and has a gap there",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: cat(span(1, 7), span(9, 12)), 2: span(5, 8)},
				histories: map[wal.TimelineID]string{2: "1\t0/5000100\n"},
			},
			starts:   []wal.Segment{start(1, 1)},
			wantGaps: []string{"1:8-8"},
		},
		{
			name: "three timelines, the middle one without segments of its own",
			wal: walSet{
				segs: map[wal.TimelineID][]uint32{1: span(1, 4), 3: span(5, 7)},
				histories: map[wal.TimelineID]string{
					2: "1\t0/5000100\n",
					3: "1\t0/5000100\n2\t0/5000200\n",
				},
			},
			starts: []wal.Segment{start(1, 1)},
		},
		{
			name: "a missing history file",
			wal: walSet{
				segs: map[wal.TimelineID][]uint32{1: span(1, 4), 2: cat(span(5, 6), span(8, 8))},
			},
			starts:      []wal.Segment{start(1, 1)},
			wantGaps:    []string{"2:7-7?"},
			wantMissing: []wal.TimelineID{2},
		},
		{
			name: "an unreadable history file",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: span(1, 4), 2: span(5, 6)},
				histories: map[wal.TimelineID]string{2: "one\tbad line\n"},
			},
			starts:  []wal.Segment{start(1, 1)},
			wantBad: []wal.TimelineID{2},
		},
		{
			name: "a history naming a newer timeline is refused",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: span(1, 4), 2: span(5, 6)},
				histories: map[wal.TimelineID]string{2: "3\t0/5000100\n"},
			},
			starts:  []wal.Segment{start(1, 1)},
			wantBad: []wal.TimelineID{2},
		},
		{
			name: "a partial segment on the newest timeline fills nothing and breaks nothing",
			wal: walSet{
				segs:     map[wal.TimelineID][]uint32{1: span(1, 3)},
				partials: map[wal.TimelineID][]uint32{1: {4}},
			},
			starts: []wal.Segment{start(1, 1)},
		},
		{
			name: "a partial does not fill a gap",
			wal: walSet{
				segs:     map[wal.TimelineID][]uint32{1: cat(span(1, 3), span(5, 6))},
				partials: map[wal.TimelineID][]uint32{1: {4}},
			},
			starts:   []wal.Segment{start(1, 1)},
			wantGaps: []string{"1:4-4"},
		},
		{
			name: "a timeline that branched before the oldest backup is not needed",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: span(1, 12), 2: cat(span(3, 3), span(5, 6))},
				histories: map[wal.TimelineID]string{2: "1\t0/3000100\n"},
			},
			starts:   []wal.Segment{start(1, 10)},
			wantGaps: []string{"2:4-4?"},
		},
		{
			name: "a backup on the child timeline: the parent is not needed",
			wal: walSet{
				segs:      map[wal.TimelineID][]uint32{1: cat(span(1, 1), span(3, 4)), 2: span(5, 9)},
				histories: map[wal.TimelineID]string{2: "1\t0/5000100\n"},
			},
			starts:   []wal.Segment{start(2, 6)},
			wantGaps: []string{"1:2-2?"},
		},
		{
			name:   "a backup whose WAL is not archived yet is no gap",
			wal:    walSet{segs: map[wal.TimelineID][]uint32{1: span(1, 4)}},
			starts: []wal.Segment{start(1, 2), start(1, 7)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.wal.index(t).Continuity(tc.starts)
			var gaps []string
			for _, g := range c.Gaps {
				gaps = append(gaps, gapString(g))
			}
			if !reflect.DeepEqual(gaps, tc.wantGaps) {
				t.Errorf("gaps = %v, want %v", gaps, tc.wantGaps)
			}
			if !reflect.DeepEqual(c.MissingHistory, tc.wantMissing) {
				t.Errorf("missing history = %v, want %v", c.MissingHistory, tc.wantMissing)
			}
			var bad []wal.TimelineID
			for tli := range c.BadHistory {
				bad = append(bad, tli)
			}
			if !reflect.DeepEqual(bad, tc.wantBad) {
				t.Errorf("bad history = %v, want %v", bad, tc.wantBad)
			}
		})
	}
}

func TestContinuitySpans(t *testing.T) {
	w := walSet{
		segs:      map[wal.TimelineID][]uint32{1: span(1, 4), 2: span(5, 8)},
		partials:  map[wal.TimelineID][]uint32{1: {5}},
		histories: map[wal.TimelineID]string{2: "1\t0/5000100\n"},
	}
	c := w.index(t).Continuity([]wal.Segment{start(1, 2)})
	if len(c.Timelines) != 2 {
		t.Fatalf("got %d timelines, want 2", len(c.Timelines))
	}
	t1, t2 := c.Timelines[0], c.Timelines[1]
	if !t1.Checked || t1.From != start(1, 2) || t1.To != start(1, 4) || t1.Segments != 4 || t1.Partials != 1 {
		t.Errorf("timeline 1 span = %+v, want checked 2..4 of 4 segments and 1 partial", t1)
	}
	if !t2.Checked || t2.From != start(2, 5) || t2.To != start(2, 8) || t2.Parent != 1 || t2.SwitchPoint != 0x5000100 || !t2.Reachable {
		t.Errorf("timeline 2 span = %+v, want checked 5..8, parent 1 at 0/5000100", t2)
	}
}

func TestGapNames(t *testing.T) {
	x := walSet{segs: map[wal.TimelineID][]uint32{1: cat(span(1, 1), span(3, 3), span(0x20, 0x20))}}.index(t)
	c := x.Continuity([]wal.Segment{start(1, 1)})
	if len(c.Gaps) != 2 {
		t.Fatalf("gaps = %+v, want 2", c.Gaps)
	}
	small, big := c.Gaps[0], c.Gaps[1]
	if got := small.Names(seg16, MaxListedNames); !reflect.DeepEqual(got, []string{"000000010000000000000002"}) {
		t.Errorf("small gap names = %v", got)
	}
	if got := big.Names(seg16, MaxListedNames); got != nil {
		t.Errorf("big gap names = %v, want nil (first, last and count instead)", got)
	}
	want := "28 segments, 000000010000000000000004 to 00000001000000000000001F"
	if got := big.Describe(seg16); got != want {
		t.Errorf("big gap = %q, want %q", got, want)
	}
}

func TestGapAcrossLogs(t *testing.T) {
	x, _ := NewWALIndex(seg16)
	x.AddSegment(wal.Segment{Timeline: 1, Log: 0, Seg: 0xFE})
	x.AddSegment(wal.Segment{Timeline: 1, Log: 1, Seg: 0x01})
	c := x.Continuity([]wal.Segment{{Timeline: 1, Log: 0, Seg: 0xFE}})
	if len(c.Gaps) != 1 {
		t.Fatalf("gaps = %+v, want one", c.Gaps)
	}
	if got := c.Gaps[0].Names(seg16, 10); !reflect.DeepEqual(got, []string{"0000000100000000000000FF", "000000010000000100000000"}) {
		t.Errorf("names = %v", got)
	}
}

func TestAddSegmentAnyOrder(t *testing.T) {
	x, _ := NewWALIndex(seg16)
	for _, n := range []uint32{9, 1, 5, 3, 2, 8, 4, 4, 7} {
		x.AddSegment(start(1, n))
	}
	if got, want := x.tls[1].runs, []segRun{{1, 5}, {7, 9}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("runs = %v, want %v", got, want)
	}
	x.AddSegment(start(1, 6))
	if got, want := x.tls[1].runs, []segRun{{1, 9}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("runs = %v, want %v", got, want)
	}
}

func TestCovered(t *testing.T) {
	x := walSet{segs: map[wal.TimelineID][]uint32{1: cat(span(1, 3), span(5, 6))}}.index(t)
	tests := []struct {
		from, to   uint32
		ok, beyond bool
		first      uint32
	}{
		{1, 3, true, false, 0},
		{2, 5, false, false, 4},
		{5, 8, false, true, 7},
	}
	for _, tc := range tests {
		ok, first, beyond := x.Covered(start(1, tc.from), start(1, tc.to))
		if ok != tc.ok || beyond != tc.beyond || (!ok && first.Seg != tc.first) {
			t.Errorf("Covered(%d, %d) = %v, %v, %v; want %v, %d, %v", tc.from, tc.to, ok, first, beyond, tc.ok, tc.first, tc.beyond)
		}
	}
}

func TestParseWALObject(t *testing.T) {
	tests := []struct {
		key  string
		ok   bool
		kind wal.Kind
		c    Compression
	}{
		{"wal/00000001/000000010000000000000001.lz4", true, wal.KindSegment, LZ4},
		{"wal/00000001/000000010000000000000001", true, wal.KindSegment, None},
		{"wal/00000001/000000010000000000000001.partial.lz4", true, wal.KindPartial, LZ4},
		{"wal/00000001/000000010000000000000001.00000028.backup", true, wal.KindBackupHistory, None},
		{"wal/00000002.history", true, wal.KindTimelineHistory, None},
		{"wal/00000002/000000010000000000000001.lz4", false, 0, ""}, // wrong folder
		{"wal/00000001/000000010000000000000001.gz", false, 0, ""},  // unknown suffix
		{"wal/00000001/00000001000000000000FFFF.lz4", false, 0, ""}, // out of range for 16 MiB
		{"wal/00000001/000000010000000000000001.00000028.backup.lz4", false, 0, ""},
		{"wal/00000002/00000002.history", false, 0, ""},
		{"wal/00000002.history.lz4", false, 0, ""},
		{"wal/readme.txt", false, 0, ""},
	}
	for _, tc := range tests {
		f, c, ok := parseWALObject(tc.key, seg16)
		if ok != tc.ok || (ok && (f.Kind != tc.kind || c != tc.c)) {
			t.Errorf("parseWALObject(%q) = %+v %q, %v; want kind %v, %q, %v", tc.key, f, c, ok, tc.kind, tc.c, tc.ok)
		}
	}
}

func TestContinuityReceivedPartials(t *testing.T) {
	tests := []struct {
		name     string
		wal      walSet
		received map[wal.TimelineID][]uint32
		starts   []wal.Segment
		wantGaps []string
		// wantTo is "T:last" for each timeline whose checked range ends in
		// a partial.
		wantTo []string
	}{
		{
			name:     "the open segment ends the timeline",
			wal:      walSet{segs: map[wal.TimelineID][]uint32{1: span(2, 6)}},
			received: map[wal.TimelineID][]uint32{1: {7}},
			starts:   []wal.Segment{start(1, 2)}, wantTo: []string{"1:7"},
		},
		{
			name:     "a superseded one changes nothing",
			wal:      walSet{segs: map[wal.TimelineID][]uint32{1: span(2, 6)}},
			received: map[wal.TimelineID][]uint32{1: {6}},
			starts:   []wal.Segment{start(1, 2)},
		},
		{
			name:     "in the middle it fills nothing",
			wal:      walSet{segs: map[wal.TimelineID][]uint32{1: cat(span(2, 4), span(6, 8))}},
			received: map[wal.TimelineID][]uint32{1: {5}},
			starts:   []wal.Segment{start(1, 2)}, wantGaps: []string{"1:5-5 partial"},
		},
		{
			name:     "past a hole the hole shows",
			wal:      walSet{segs: map[wal.TimelineID][]uint32{1: span(2, 4)}},
			received: map[wal.TimelineID][]uint32{1: {6}},
			starts:   []wal.Segment{start(1, 2)}, wantGaps: []string{"1:5-5"}, wantTo: []string{"1:6"},
		},
		{
			name: "the old timeline's last segment at the switch",
			wal: walSet{segs: map[wal.TimelineID][]uint32{1: span(2, 6), 2: span(7, 9)},
				histories: map[wal.TimelineID]string{2: "1\t0/7000100\tpromoted\n"}},
			received: map[wal.TimelineID][]uint32{1: {7}},
			starts:   []wal.Segment{start(1, 2)}, wantTo: []string{"1:7"},
		},
		{
			name: "a branch needs more of the parent than its partial",
			wal: walSet{segs: map[wal.TimelineID][]uint32{1: span(2, 6), 2: span(10, 11)},
				histories: map[wal.TimelineID]string{2: "1\t0/A000100\tpromoted\n"}},
			received: map[wal.TimelineID][]uint32{1: {7}},
			starts:   []wal.Segment{start(1, 2)}, wantGaps: []string{"1:7-9 partial"},
		},
		{
			name:     "a new timeline with only a partial",
			wal:      walSet{segs: map[wal.TimelineID][]uint32{1: span(2, 6)}, histories: map[wal.TimelineID]string{2: "1\t0/6000100\tpromoted\n"}},
			received: map[wal.TimelineID][]uint32{2: {6}},
			starts:   []wal.Segment{start(1, 2)}, wantTo: []string{"2:6"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := tc.wal.index(t)
			for tli, ns := range tc.received {
				for _, n := range ns {
					if x.HasSegment(wal.Segment{Timeline: tli, Seg: n}) {
						continue // checkPartials gives the index only partials not superseded
					}
					x.AddReceivedPartial(wal.Segment{Timeline: tli, Seg: n})
				}
			}
			c := x.Continuity(tc.starts)
			var gaps, to []string
			for _, g := range c.Gaps {
				s := gapString(g)
				if g.Partial {
					s += " partial"
				}
				gaps = append(gaps, s)
			}
			for _, sp := range c.Timelines {
				if sp.EndsInPartial {
					to = append(to, strconv.Itoa(int(sp.Timeline))+":"+strconv.FormatUint(uint64(sp.To.Seg), 16))
				}
			}
			if strings.Join(gaps, ",") != strings.Join(tc.wantGaps, ",") || strings.Join(to, ",") != strings.Join(tc.wantTo, ",") {
				t.Fatalf("gaps %v, ends in partial %v; want %v and %v", gaps, to, tc.wantGaps, tc.wantTo)
			}
			if len(c.MissingHistory) != 0 {
				t.Fatalf("missing history %v", c.MissingHistory)
			}
		})
	}
}

// TestHistoryConflict: a history file must continue the history of the
// timeline it branched from (PostgreSQL writes the parent's lines plus
// one). One that contradicts it (another cluster's, pushed with the old
// archive settings after pg_upgrade) is a bad history for continuity,
// and recovery to latest refuses to follow it; one that agrees is not.
func TestHistoryConflict(t *testing.T) {
	own2 := "1\t0/9538C28\tno recovery target specified\n"
	for _, tc := range []struct {
		name, h3 string
		want     string // "": no conflict
	}{
		{"continues", own2 + "2\t0/20000000\tno recovery target specified\n", ""},
		{"another switch point", "1\t0/1E000000\tno recovery target specified\n2\t0/20000000\tno recovery target specified\n",
			"it says timeline 1 ended at 0/1E000000, but 00000002.history, the history of the timeline it branched from, says timeline 1 ended at 0/9538C28"},
		{"a switch left out", "2\t0/20000000\tno recovery target specified\n",
			"it leaves out the switch from timeline 1 at 0/9538C28"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := walSet{
				segs:      map[wal.TimelineID][]uint32{1: span(1, 9), 2: span(9, 0x20)},
				histories: map[wal.TimelineID]string{2: own2, 3: tc.h3},
			}.index(t)
			c := x.Continuity([]wal.Segment{start(1, 2)})
			got := c.BadHistory[3]
			_, reachErr := x.RecoveryReach(RecoveryRange{Start: start(1, 2), Target: wal.LSN(0x1F000000)})
			if tc.want == "" {
				if got != nil || reachErr != nil {
					t.Fatalf("bad history %v, recovery %v; want neither", got, reachErr)
				}
				return
			}
			if got == nil || !strings.Contains(got.Error(), tc.want) {
				t.Errorf("bad history of timeline 3: %v; want %q", got, tc.want)
			}
			if reachErr == nil || !strings.Contains(reachErr.Error(), "--target-timeline") {
				t.Errorf("recovery to latest: %v; want a refusal naming --target-timeline", reachErr)
			}
			if c.BadHistory[2] != nil {
				t.Errorf("timeline 2's own history reported bad: %v", c.BadHistory[2])
			}
		})
	}
}

// TestCoveredAcrossFollowsLaterTimelines: a backup taken on a standby that
// starts on timeline 2 and stops on 3 finds each segment before its stop
// on either: the segment where 3 branched off is 3's (2 left only a
// .partial of it), and the ones after the switch too.
func TestCoveredAcrossFollowsLaterTimelines(t *testing.T) {
	seg := func(tli wal.TimelineID, n uint32) wal.Segment { return wal.Segment{Timeline: tli, Seg: n} }
	index := func(segs ...wal.Segment) *WALIndex {
		x, err := NewWALIndex(16 << 20)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			x.AddSegment(s)
		}
		return x
	}
	for _, tc := range []struct {
		name        string
		x           *WALIndex
		start, stop wal.Segment
		ok          bool
		missing     wal.Segment
		beyond      bool
	}{
		{"started in the switch segment", index(seg(2, 0x12), seg(3, 0x13), seg(3, 0x14), seg(3, 0x15), seg(3, 0x16)), seg(2, 0x13), seg(3, 0x15), true, wal.Segment{}, false},
		{"started before the switch", index(seg(2, 0x10), seg(2, 0x11), seg(2, 0x12), seg(3, 0x13), seg(3, 0x14)), seg(2, 0x10), seg(3, 0x14), true, wal.Segment{}, false},
		{"through an intermediate timeline", index(seg(1, 0x10), seg(2, 0x11), seg(3, 0x12)), seg(1, 0x10), seg(3, 0x12), true, wal.Segment{}, false},
		{"a segment on none", index(seg(2, 0x10), seg(3, 0x12), seg(3, 0x13)), seg(2, 0x10), seg(3, 0x13), false, seg(2, 0x11), false},
		{"not archived yet", index(seg(2, 0x10), seg(2, 0x11)), seg(2, 0x10), seg(3, 0x13), false, seg(2, 0x12), true},
		{"started and stopped in the switch segment", index(seg(2, 0x12), seg(3, 0x13)), seg(2, 0x13), seg(3, 0x13), true, wal.Segment{}, false},
		{"the stop segment only on the start timeline", index(seg(2, 0x10), seg(2, 0x11)), seg(2, 0x10), seg(3, 0x11), false, seg(3, 0x11), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, missing, beyond := tc.x.CoveredAcross(tc.start, tc.stop)
			if ok != tc.ok || missing != tc.missing || beyond != tc.beyond {
				t.Fatalf("CoveredAcross(%s, %s) = %v, %s, beyond %v; want %v, %s, beyond %v", tc.start, tc.stop, ok, missing, beyond, tc.ok, tc.missing, tc.beyond)
			}
		})
	}
}

func TestContinuityAlong(t *testing.T) {
	// Timeline 2 branched off timeline 1 in segment 5; both went on, each
	// with a hole after the branch, and timeline 1 with one straddling it.
	w := walSet{
		segs:      map[wal.TimelineID][]uint32{1: cat(span(1, 2), span(6, 6), span(8, 10)), 2: cat(span(5, 8), span(10, 12))},
		histories: map[wal.TimelineID]string{2: "1\t0/5000100\n"},
	}
	c := w.index(t).Continuity([]wal.Segment{start(1, 1)})
	gaps := func(c Continuity) []string {
		var out []string
		for _, g := range c.Gaps {
			out = append(out, fmt.Sprintf("%s/%d", gapString(g), g.Count))
		}
		return out
	}
	if got, want := gaps(c), []string{"1:3-5/3", "1:7-7/1", "2:9-9/1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("all gaps = %v, want %v", got, want)
	}

	one := c.Along(1, nil, seg16)
	if got, want := gaps(one), []string{"1:3-5/3", "1:7-7/1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("along timeline 1: gaps = %v, want %v (not timeline 2's)", got, want)
	}
	if len(one.Timelines) != 1 || one.Timelines[0].Newest != start(1, 10) {
		t.Errorf("along timeline 1: spans = %+v, want timeline 1 alone, newest 0A", one.Timelines)
	}

	two := c.Along(2, []wal.HistoryEntry{{Timeline: 1, SwitchPoint: 0x5000100}}, seg16)
	if got, want := gaps(two), []string{"1:3-4/2", "2:9-9/1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("along timeline 2: gaps = %v, want %v (timeline 1 read only before segment 5)", got, want)
	}
	if len(two.Timelines) != 2 || two.Timelines[0].Newest != start(1, 2) || two.Timelines[1].Newest != start(2, 12) {
		t.Errorf("along timeline 2: spans = %+v, want timeline 1 up to 02 (03 and 04 missing) and timeline 2 up to 0C", two.Timelines)
	}
	if s := two.Summary(seg16); strings.Contains(s, "lacks 000000010000000000000007") {
		t.Errorf("along timeline 2, the summary names timeline 1's hole after the branch: %s", s)
	}
}
