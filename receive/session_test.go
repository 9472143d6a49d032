package receive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// TestFlushOrdering streams part of a segment, the rest of it and part of
// the next, and checks that every position reported to the server is
// durable in the repository when it is reported: a partial reaching it
// or the complete segment. A complete segment replaces its partials.
func TestFlushOrdering(t *testing.T) {
	b := newBackend(t)
	opts := testOptions(t)
	c := primary()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start, mid, end := 3*seg, 3*seg+300_000, 4*seg+5000
	srv := c.server()
	srv.Msgs = concat(
		stream(1, start, mid),
		[]pgproto3.BackendMessage{until(reported(srv, mid))}, // max-lag makes a partial
		stream(1, mid, end),
		[]pgproto3.BackendMessage{until(reported(srv, end))},
	)
	var reports []wal.LSN
	srv.OnStatus = func(pos wal.LSN) {
		if !durableUpTo(t, b, 1, pos) {
			t.Errorf("status update reports %s, which the repository does not hold yet", pos)
		}
		if n := len(reports); n > 0 && pos < reports[n-1] {
			t.Errorf("status update reports %s after %s: positions must not go back", pos, reports[n-1])
		}
		reports = append(reports, pos)
		if pos >= end {
			cancel()
		}
	}
	d := &dialer{servers: []*pgtest.Server{srv}}
	if err := runSessions(ctx, b, opts, d); err != nil {
		t.Fatalf("run: got %v, want nil after cancel", err)
	}
	if !slices.Contains(reports, mid) || !slices.Contains(reports, 4*seg) || !slices.Contains(reports, end) {
		t.Errorf("reports %v: want the partial's end %s, the segment's end %s and %s", reports, mid, 4*seg, end)
	}
	if want := (pgtest.Start{Slot: "walvault", LSN: start, Timeline: 1}); len(srv.Starts) != 1 || srv.Starts[0] != want {
		t.Errorf("starts: got %+v, want %+v", srv.Starts, want)
	}
	if !exists(t, b, segmentKey(1, segmentAt(1, start))) {
		t.Errorf("segment %s not stored", segmentAt(1, start))
	}
	if ends := partialEnds(t, b, 1, start); len(ends) != 0 {
		t.Errorf("segment %s is complete, but its partials %v remain", segmentAt(1, start), ends)
	}
	if ends := partialEnds(t, b, 1, end); !slices.Equal(ends, []wal.LSN{end}) {
		t.Errorf("partials of %s: got %v, want one ending at %s", segmentAt(1, end), ends, end)
	}
	id, err := repository.LoadIdentity(t.Context(), b)
	if err != nil || id.SystemID != "7300000000000000001" || id.WALSegmentSize != testSegSize {
		t.Errorf("identity: got %+v, %v; want system 7300000000000000001 with 1 MiB segments", id, err)
	}
	if !srv.Closed {
		t.Error("the connection was not closed")
	}
}

// TestPartialContent: the partial holds exactly the WAL received, and
// a newer one replaces the older.
func TestPartialContent(t *testing.T) {
	b := newBackend(t)
	opts := testOptions(t)
	opts.Push.Compression = repository.None
	c := primary()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start, first, second := 3*seg, 3*seg+1000, 3*seg+70_000
	srv := c.server()
	srv.Msgs = concat(stream(1, start, first), []pgproto3.BackendMessage{until(reported(srv, first))}, stream(1, first, second))
	cancelWhen(srv, second, cancel)
	if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}}); err != nil {
		t.Fatal(err)
	}
	if ends := partialEnds(t, b, 1, start); !slices.Equal(ends, []wal.LSN{second}) {
		t.Fatalf("partials: got %v, want only the newest, ending at %s", ends, second)
	}
	rc, _, err := b.Get(t.Context(), repository.PartialKey(segmentAt(1, start), second, repository.None))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, walBytes(1, start, second)) {
		t.Errorf("partial content: %d bytes, %v; want the %d bytes received", len(got), err, second-start)
	}
}

// TestFinalFlushOnStop: WAL received when walvault is asked to stop is
// made durable before Run returns, and reported.
func TestFinalFlushOnStop(t *testing.T) {
	b := newBackend(t)
	opts := testOptions(t)
	opts.MaxLag = time.Hour
	c := primary()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	end := 3*seg + 4096
	srv := c.server(stream(1, 3*seg, end)...)
	srv.Msgs = append(srv.Msgs, &pgtest.Pause{Until: func() bool { cancel(); return false }})
	if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}}); err != nil {
		t.Fatal(err)
	}
	if ends := partialEnds(t, b, 1, end); !slices.Equal(ends, []wal.LSN{end}) {
		t.Errorf("partials after stop: got %v, want one ending at %s", ends, end)
	}
}

// TestKeepaliveReply: a keepalive that asks for a reply gets the durable
// position at once, not the received one.
func TestKeepaliveReply(t *testing.T) {
	b := newBackend(t)
	opts := testOptions(t)
	opts.MaxLag = time.Hour
	c := primary()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := c.server(concat(stream(1, 3*seg, 3*seg+500), []pgproto3.BackendMessage{
		pgtest.Keepalive(3*seg+9000, false), pgtest.Keepalive(3*seg+9000, true),
	})...)
	srv.OnStatus = func(wal.LSN) { cancel() }
	if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}}); err != nil {
		t.Fatal(err)
	}
	if len(srv.Statuses) == 0 || srv.Statuses[0] != 3*seg {
		t.Errorf("statuses %v: want the first to report the durable start %s", srv.Statuses, 3*seg)
	}
}

// TestOutOfOrderWAL: WAL that does not follow what was received ends the
// session with an error naming both positions.
func TestOutOfOrderWAL(t *testing.T) {
	b := newBackend(t)
	c := primary()
	srv := c.server(pgtest.XLogData(3*seg, walBytes(1, 3*seg, 3*seg+10)), pgtest.XLogData(3*seg+20, []byte("x")))
	err := oneSession(t.Context(), b, testOptions(t), srv)
	var fatal fatalError
	if err == nil || !strings.Contains(err.Error(), "sent WAL at 0/300014, expected 0/30000A") || errors.As(err, &fatal) {
		t.Fatalf("session: got %v, want the gap named, and retried", err)
	}
}

// TestReconnectResumes: after a lost connection, the next session starts
// at the first segment the repository lacks, and what the lost session
// received was stored as a partial on its way out.
func TestReconnectResumes(t *testing.T) {
	b := newBackend(t)
	opts := testOptions(t)
	opts.MaxLag = time.Hour // only segment completion and the final flush store anything
	c := primary()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	lostAt := 4*seg + 777
	first := c.server(concat(stream(1, 3*seg, lostAt), []pgproto3.BackendMessage{&pgtest.Lost{Err: io.ErrUnexpectedEOF}})...)
	second := c.server()
	second.OnStart = func(pgtest.Start) (*pg.TimelineEnd, error) { cancel(); return nil, nil }
	d := &dialer{servers: []*pgtest.Server{first, second}}
	if err := runSessions(ctx, b, opts, d); err != nil {
		t.Fatalf("run: got %v, want nil after cancel", err)
	}
	if d.dials != 2 {
		t.Errorf("dials: got %d, want 2", d.dials)
	}
	if !first.Closed {
		t.Error("the lost connection was not closed")
	}
	if want := (pgtest.Start{Slot: "walvault", LSN: 4 * seg, Timeline: 1}); len(second.Starts) != 1 || second.Starts[0] != want {
		t.Errorf("second session starts: got %+v, want %+v (segment 3 is stored)", second.Starts, want)
	}
	if ends := partialEnds(t, b, 1, lostAt); !slices.Equal(ends, []wal.LSN{lostAt}) {
		t.Errorf("partials of segment 4: got %v, want the lost session's WAL up to %s", ends, lostAt)
	}
	// The slot still restarts at segment 3: a third session skips what
	// is stored up to the server's position, and no further.
	c.xlogpos = 4*seg + 10
	third := c.server()
	third.OnStart = func(pgtest.Start) (*pg.TimelineEnd, error) { return nil, errors.New("stop here") }
	d = &dialer{servers: []*pgtest.Server{third}}
	if err := runSessions(t.Context(), b, opts, d); err == nil {
		t.Fatal("run: want the error of a session that never streamed")
	}
	if len(third.Starts) != 1 || third.Starts[0].LSN != 4*seg {
		t.Errorf("third session starts %+v, want 0/400000", third.Starts)
	}
}

// TestRunRetries: which failures Run retries. Before streaming ever
// worked any failure is returned (a wrong setting shows at once); after,
// only fatal ones are, and the rest are retried.
func TestRunRetries(t *testing.T) {
	refused := pg.ConnectError(&pgconn.PgError{Severity: "FATAL", Code: "42501", Message: "must be superuser or replication role to start walsender"}, "walvault", "", true)
	for _, tc := range []struct {
		name      string
		errs      []error
		streamed  bool // the first session streams before it is lost
		wantDials int
		wantErr   string
	}{
		{"unreachable at the start", []error{errUnreachable}, false, 1, "connection refused"},
		{"refused at the start", []error{fatalError{refused}}, false, 1, "REPLICATION"},
		{"unreachable after streaming: retried", []error{nil, errUnreachable, errUnreachable, fatalError{refused}}, true, 4, "REPLICATION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			c := primary()
			d := &dialer{errs: tc.errs}
			if tc.streamed {
				d.servers = []*pgtest.Server{c.server(concat(stream(1, 3*seg, 3*seg+100), []pgproto3.BackendMessage{&pgtest.Lost{Err: io.EOF}})...)}
			}
			err := runSessions(t.Context(), b, testOptions(t), d)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run: got %v, want an error containing %q", err, tc.wantErr)
			}
			if d.dials != tc.wantDials {
				t.Errorf("dials: got %d, want %d", d.dials, tc.wantDials)
			}
		})
	}
}

// TestRunCancelledWhileWaiting: a stop during the wait before
// reconnecting is clean, and does not wait for the backoff.
func TestRunCancelledWhileWaiting(t *testing.T) {
	b := newBackend(t)
	c := primary()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := c.server(concat(stream(1, 3*seg, 3*seg+100), []pgproto3.BackendMessage{&pgtest.Lost{Err: io.EOF}})...)
	d := &dialer{servers: []*pgtest.Server{srv}}
	opts := testOptions(t)
	waiting := make(chan struct{})
	opts.Log = slog.New(onMessage{"replication stream ended; reconnecting", waiting})
	done := make(chan error, 1)
	go func() { done <- run(ctx, b, opts, d.dial, time.Hour) }()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("run returned %v before waiting to reconnect", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel during its backoff")
	}
	if d.dials != 1 {
		t.Errorf("dials: got %d, want no reconnection after the stop", d.dials)
	}
}

// onMessage is a log handler that closes its channel at the first record
// with its message.
type onMessage struct {
	msg  string
	seen chan struct{}
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h onMessage) WithGroup(string) slog.Handler            { return h }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case <-h.seen:
		default:
			close(h.seen)
		}
	}
	return nil
}
