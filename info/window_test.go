package info

import (
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// TestWalkWindowUnreachableAfterGap: WAL archived after a gap that no
// backup crosses is not reachable; the window ends before the gap and
// names it. A timeline without a DONE backup leading to it has no window.
func TestWalkWindowUnreachableAfterGap(t *testing.T) {
	const segSize = 16 << 20
	x, err := repository.NewWALIndex(segSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint32{1, 2, 3, 4, 7, 8} {
		x.AddSegment(wal.Segment{Timeline: 1, Seg: n})
	}
	x.AddSegment(wal.Segment{Timeline: 3, Seg: 9})
	m := &repository.BackupManifest{ID: "20261121T020000Z", StartWAL: "000000010000000000000002", StopWAL: "000000010000000000000003",
		StartTimeline: 1, StopTimeline: 1, StopLSN: "0/3000100", StopTime: time.Date(2026, 11, 21, 2, 1, 30, 0, time.UTC)}
	spans := map[wal.TimelineID]repository.TimelineSpan{}
	for _, s := range x.Continuity(nil).Timelines {
		spans[s.Timeline] = s
	}
	none := func(wal.Segment) *time.Time { return nil }
	sm := newSegmentMath(segSize)

	w := walkWindow(1, wal.Segment{Timeline: 1, Seg: 8}, spans, x, sm, []*repository.BackupManifest{m}, none)
	if w == nil {
		t.Fatal("no window on timeline 1")
	}
	want := Gap{Timeline: 1, First: "000000010000000000000005", Last: "000000010000000000000006", Count: 2}
	if w.Continuous || len(w.Ranges) != 1 || len(w.Gaps) != 1 || w.Gaps[0] != want || w.To.WAL != "000000010000000000000004" || w.To.LSN != "0/5000000" {
		t.Errorf("window: %+v, want one range ending at segment 4, broken by %+v", w, want)
	}
	// Timeline 3 has no history: no backup leads to it.
	if w := walkWindow(3, wal.Segment{Timeline: 3, Seg: 9}, spans, x, sm, []*repository.BackupManifest{m}, none); w != nil {
		t.Errorf("timeline 3 without history: window %+v, want none", w)
	}
	// A backup whose own WAL has a hole is no start.
	hole := *m
	hole.ID, hole.StartWAL, hole.StopWAL, hole.StopLSN = "20261122T020000Z", "000000010000000000000004", "000000010000000000000007", "0/7000100"
	if w := walkWindow(1, wal.Segment{Timeline: 1, Seg: 8}, spans, x, sm, []*repository.BackupManifest{&hole}, none); w != nil {
		t.Errorf("a backup across a gap: window %+v, want none", w)
	}
}
