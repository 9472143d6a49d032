package receive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
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

// history2 is timeline 2's history: timeline 1 ended at 0/350000, in
// segment 3.
const history2 = "1\t0/350000\tno recovery target specified\n"

const switchPoint = 3*seg + 0x50000

// TestTimelineSwitch: the server ends timeline 1 mid-stream (a
// promotion upstream). wal-receive acknowledges, stores timeline 1's
// last segment as a partial up to the switchpoint, stores the new
// timeline's history, and streams timeline 2 from the start of the
// segment holding the switchpoint.
func TestTimelineSwitch(t *testing.T) {
	b := newBackend(t)
	opts := testOptions(t)
	c := primary()
	c.histories = map[wal.TimelineID]string{2: history2}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tl2End := 3*seg + 0x60000
	srv := c.server()
	srv.Msgs = concat(
		stream(1, 3*seg, switchPoint),
		pgtest.TimelineEnded(2, switchPoint),
		stream(2, 3*seg, tl2End),
	)
	cancelWhen(srv, tl2End, cancel)
	d := &dialer{servers: []*pgtest.Server{srv}}
	if err := runSessions(ctx, b, opts, d); err != nil {
		t.Fatalf("run: got %v, want nil after cancel", err)
	}
	if srv.CopyDones != 1 {
		t.Errorf("CopyDone sent %d times, want once, to acknowledge the end of timeline 1", srv.CopyDones)
	}
	want := []pgtest.Start{{Slot: "walvault", LSN: 3 * seg, Timeline: 1}, {Slot: "walvault", LSN: 3 * seg, Timeline: 2}}
	if !slices.Equal(srv.Starts, want) {
		t.Errorf("starts: got %+v, want %+v", srv.Starts, want)
	}
	if !slices.Contains(srv.Queries, "TIMELINE_HISTORY 2") {
		t.Errorf("queries %q: want TIMELINE_HISTORY 2", srv.Queries)
	}
	historyKey := repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.LZ4)
	if !exists(t, b, historyKey) {
		t.Errorf("%s not stored", historyKey)
	}
	if ends := partialEnds(t, b, 1, 3*seg); !slices.Equal(ends, []wal.LSN{switchPoint}) {
		t.Errorf("timeline 1's partials of segment 3: got %v, want one ending at the switchpoint %s", ends, switchPoint)
	}
	if ends := partialEnds(t, b, 2, 3*seg); !slices.Equal(ends, []wal.LSN{tl2End}) {
		t.Errorf("timeline 2's partials of segment 3: got %v, want one ending at %s", ends, tl2End)
	}
	if d.dials != 1 {
		t.Errorf("dials: %d, want the switch to happen on one connection", d.dials)
	}
}

// TestTimelineNotNewer: a server that names an older (or the same)
// timeline as the next one is refused, without retrying.
func TestTimelineNotNewer(t *testing.T) {
	b := newBackend(t)
	c := primary()
	srv := c.server(concat(stream(1, 3*seg, switchPoint), pgtest.TimelineEnded(1, switchPoint))...)
	d := &dialer{servers: []*pgtest.Server{srv}}
	err := runSessions(t.Context(), b, testOptions(t), d)
	if err == nil || !strings.Contains(err.Error(), "not newer") || d.dials != 1 {
		t.Fatalf("run: got %v after %d dials, want a refusal of timeline 1 after 1, without retrying", err, d.dials)
	}
}

// TestTimelineEndWithoutNext: a stream that ends without naming the next
// timeline is an error worth a retry.
func TestTimelineEndWithoutNext(t *testing.T) {
	b := newBackend(t)
	c := primary()
	srv := c.server(concat(stream(1, 3*seg, 3*seg+100), []pgproto3.BackendMessage{&pgproto3.CopyDone{}, pgtest.Complete("START_STREAMING"), pgtest.Ready()})...)
	err := oneSession(t.Context(), b, testOptions(t), srv)
	var fatal fatalError
	if err == nil || !strings.Contains(err.Error(), "without naming the next timeline") || errors.As(err, &fatal) {
		t.Fatalf("session: got %v, want a retryable error", err)
	}
}

// TestStartOnLaterTimeline: a server on timeline 2 whose slot restarts
// before the switch. wal-receive stores timeline 2's history first, then
// streams timeline 1 from the slot (the server has only timeline 1's
// files there), skipping what the repository holds only up to the end of
// timeline 1; started at that end, the server answers with timeline 2 at
// once, and wal-receive follows.
func TestStartOnLaterTimeline(t *testing.T) {
	b := newBackend(t)
	opts := testOptions(t)
	// The repository already holds timeline 1's segments 2 and 3 (the old
	// primary archived them): 3 holds the switch, so its timeline 2 copy
	// must still be streamed.
	dir := t.TempDir()
	for _, start := range []wal.LSN{2 * seg, 3 * seg} {
		path := filepath.Join(dir, segmentAt(1, start).String())
		if err := os.WriteFile(path, walBytes(1, start, start+seg), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := archive.Push(t.Context(), b, path, opts.Push); err != nil {
			t.Fatal(err)
		}
	}
	c := primary()
	c.timeline, c.xlogpos, c.restart = 2, 5*seg, (2 * seg).String()
	c.histories = map[wal.TimelineID]string{2: history2}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := c.server()
	srv.OnStart = func(s pgtest.Start) (*pg.TimelineEnd, error) {
		if s.Timeline == 1 {
			return &pg.TimelineEnd{Next: 2, SwitchPoint: switchPoint}, nil
		}
		cancel()
		return nil, nil
	}
	if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}}); err != nil {
		t.Fatalf("run: got %v, want nil after cancel", err)
	}
	// Segment 3 is where timeline 1 ends: not skipped although the
	// repository holds it and the server is well past it.
	want := []pgtest.Start{{Slot: "walvault", LSN: 3 * seg, Timeline: 1}, {Slot: "walvault", LSN: 3 * seg, Timeline: 2}}
	if !slices.Equal(srv.Starts, want) {
		t.Errorf("starts: got %+v, want %+v", srv.Starts, want)
	}
	if srv.CopyDones != 0 {
		t.Errorf("CopyDone sent %d times: there was no COPY stream to end", srv.CopyDones)
	}
	if n := strings.Count(strings.Join(srv.Queries, "|"), "TIMELINE_HISTORY 2"); n != 2 {
		t.Errorf("TIMELINE_HISTORY 2 asked %d times, want twice: before streaming, and to follow the switch", n)
	}
	if !exists(t, b, repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.LZ4)) {
		t.Error("timeline 2's history not stored")
	}
}
