package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/wal"
)

// TestTimelineOverrun: a timeline archived past the point where a later
// one branched off it (a restored copy promoted into the repository while
// the original goes on) is a warning naming both and the way to restore
// the original; a clean switch is none.
func TestTimelineOverrun(t *testing.T) {
	f := newFixture(t) // timeline 1: segments 1 to 6
	for n := uint32(5); n <= 6; n++ {
		f.putSegment(t, wal.Segment{Timeline: 2, Seg: n}, segmentBody(n))
	}
	sw := wal.LSN(5*testSegSize + 0x100)
	repotest.Put(t, f.b, "wal/00000002.history", []byte("1\t"+sw.String()+"\tno recovery target specified\n"))
	r, err := Run(context.Background(), f.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range r.Warnings {
		if w.Kind == KindTimelineOverrun {
			got = append(got, w.Detail)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0], "timeline 1 went on past the point where timeline 2 branched off it ("+sw.String()+"): 1 segment archived after the branch, the last 000000010000000000000006") || !strings.Contains(got[0], "--target-timeline 1") {
		t.Errorf("overrun warnings %q, want one naming timelines 1 and 2, segment 6 and --target-timeline 1", got)
	}
	if !r.OK {
		t.Errorf("verify not OK: %+v; an overrun is a warning", r.Problems)
	}

	// A branch at a segment's first byte (a copy restored to the archive's
	// end): the parent's segment from there on is past it.
	edge := newFixture(t)
	edge.putSegment(t, wal.Segment{Timeline: 2, Seg: 6}, segmentBody(6))
	repotest.Put(t, edge.b, "wal/00000002.history", []byte("1\t"+wal.LSN(6*testSegSize).String()+"\tno recovery target specified\n"))
	r, err = Run(context.Background(), edge.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range r.Warnings {
		found = found || w.Kind == KindTimelineOverrun && strings.Contains(w.Detail, "1 segment archived after the branch, the last 000000010000000000000006")
	}
	if !found {
		t.Errorf("a branch at segment 6's first byte, with timeline 1's segment 6 archived: warnings %+v, want a timeline_overrun naming segment 6", r.Warnings)
	}

	clean := newFixture(t)
	for n := uint32(6); n <= 7; n++ {
		clean.putSegment(t, wal.Segment{Timeline: 2, Seg: n}, segmentBody(n))
	}
	repotest.Put(t, clean.b, "wal/00000002.history", []byte("1\t"+wal.LSN(6*testSegSize+0x100).String()+"\tno recovery target specified\n"))
	r, err = Run(context.Background(), clean.b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range r.Warnings {
		if w.Kind == KindTimelineOverrun {
			t.Errorf("a switch in timeline 1's last segment: %s", w.Detail)
		}
	}
}
