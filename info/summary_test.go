package info

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/wal"
)

// TestSummaryHiddenSegmentIsNoGap: a segment hidden behind a delete marker
// (a DELETE without a version id) is still read by restore: info counts it
// and says it is hidden, with repair, instead of calling the recovery
// window BROKEN by a gap (explore25a F5).
func TestSummaryHiddenSegmentIsNoGap(t *testing.T) {
	ctx := context.Background()
	id := repository.NewIdentity(7712040661191622168, wal.DefaultSegmentSize, 15, repository.None, "db-1", time.Now())
	b := repotest.New(t, id)
	var keys []string
	for n := uint32(1); n <= 4; n++ {
		f := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: n}}
		key := repository.WALKey(f, repository.None)
		repotest.PutWAL(t, b, key, repository.None, make([]byte, 16), nil)
		keys = append(keys, key)
	}
	if err := b.Hide(keys[1]); err != nil { // a DELETE without a version id
		t.Fatal(err)
	}
	s, err := Summarize(ctx, b, Options{})
	if err != nil {
		t.Fatalf("Summarize: %v", err)
	}
	if s.HiddenObjects != 1 || len(s.Timelines) != 1 || s.Timelines[0].Segments != 4 {
		t.Errorf("hidden objects %d, timelines %+v: want 1 hidden, and timeline 1 with 4 segments", s.HiddenObjects, s.Timelines)
	}
	var text strings.Builder
	if err := WriteSummaryText(&text, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String(), "BROKEN") || !strings.Contains(text.String(), "walvault repair") {
		t.Errorf("info with a hidden segment:\n%s\nwant no BROKEN window and the repair advice", text.String())
	}
}
