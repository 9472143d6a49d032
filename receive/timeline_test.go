package receive

import (
	"testing"

	"github.com/walvault/walvault/wal"
)

func TestHistoryTimeline(t *testing.T) {
	// Timeline 1 ended at 0/5000098, timeline 2 at 0/9000000; 3 is current.
	history := []wal.HistoryEntry{{Timeline: 1, SwitchPoint: 0x5000098}, {Timeline: 2, SwitchPoint: 0x9000000}}
	for _, c := range []struct {
		pos     wal.LSN
		tli     wal.TimelineID
		endsAt  wal.LSN
		comment string
	}{
		{0x1000000, 1, 0x5000098, "well before the first switch"},
		{0x5000000, 1, 0x5000098, "the switch segment's start is still timeline 1"},
		{0x5000098, 2, 0x9000000, "the switchpoint itself belongs to the child"},
		{0x8FFFFFF, 2, 0x9000000, "last byte of timeline 2"},
		{0x9000000, 3, 0, "current timeline: no end"},
	} {
		tli, end := historyTimeline(history, 3, c.pos)
		if tli != c.tli || end != c.endsAt {
			t.Errorf("%s: historyTimeline(%s) = %d, %s; want %d, %s", c.comment, c.pos, tli, end, c.tli, c.endsAt)
		}
	}
	if tli, end := historyTimeline(nil, 1, 0x5000000); tli != 1 || end != 0 {
		t.Errorf("no history: got %d, %s", tli, end)
	}
}
