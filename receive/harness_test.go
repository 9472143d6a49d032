package receive

// A fake cluster for the session tests: pgtest's scripted server answers
// the commands wal-receive sends as PostgreSQL 15 would, and the WAL it
// streams is synthetic, with a real long page header at each segment
// start, so archive.Push and the repository identity accept it.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/wal"
)

const (
	testSysID   = 7300000000000000001
	testSegSize = wal.MinSegmentSize // 1 MiB keeps the tests fast
	seg         = wal.LSN(testSegSize)
)

// cluster is what the fake server says about itself.
type cluster struct {
	version   string // server_version_num ("" when the server does not report it, as real ones do not)
	versionS  string // server_version
	timeline  wal.TimelineID
	xlogpos   wal.LSN
	segSize   string // SHOW wal_segment_size
	slotType  string // "" for no slot
	restart   string // restart_lsn, "\x00" for NULL
	slotTLI   string // restart_tli
	histories map[wal.TimelineID]string
	// slotErr, when set, is the SQLSTATE READ_REPLICATION_SLOT fails with.
	slotErr string
	// identify, when set, replaces IDENTIFY_SYSTEM's row.
	identify []string
}

// primary is a PostgreSQL 15 primary on timeline 1 at 0/500000 whose
// physical slot walvault restarts at segment 3.
func primary() *cluster {
	return &cluster{version: "150010", versionS: "15.10", timeline: 1, xlogpos: 5 * seg, segSize: "1MB", slotType: "physical", restart: (3 * seg).String(), slotTLI: "1"}
}

// server makes a scripted server for c that streams msgs once streaming
// starts, and idles once they ran out.
func (c *cluster) server(msgs ...pgproto3.BackendMessage) *pgtest.Server {
	s := &pgtest.Server{Msgs: msgs, Idle: true, Params: map[string]string{"server_version_num": c.version, "server_version": c.versionS}}
	s.Answer = func(sql string) []pgproto3.BackendMessage {
		switch {
		case sql == "IDENTIFY_SYSTEM":
			row := c.identify
			if row == nil {
				row = []string{fmt.Sprint(uint64(testSysID)), fmt.Sprint(uint32(c.timeline)), c.xlogpos.String(), "\x00"}
			}
			return pgtest.Result("IDENTIFY_SYSTEM", []string{"systemid", "timeline", "xlogpos", "dbname"}, row)
		case sql == "SHOW wal_segment_size":
			return pgtest.Result("SHOW", []string{"wal_segment_size"}, []string{c.segSize})
		case strings.HasPrefix(sql, "READ_REPLICATION_SLOT "):
			if c.slotErr != "" {
				return pgtest.Failure(c.slotErr, "cannot use READ_REPLICATION_SLOT with a logical replication slot")
			}
			row := []string{c.slotType, c.restart, c.slotTLI}
			if c.slotType == "" {
				row = []string{"\x00", "\x00", "\x00"}
			}
			return pgtest.Result("READ_REPLICATION_SLOT", []string{"slot_type", "restart_lsn", "restart_tli"}, row)
		case strings.HasPrefix(sql, "CREATE_REPLICATION_SLOT "):
			c.slotType, c.restart, c.slotTLI = "physical", c.xlogpos.String(), fmt.Sprint(uint32(c.timeline))
			return pgtest.Result("CREATE_REPLICATION_SLOT", []string{"slot_name", "consistent_point", "snapshot_name", "output_plugin"},
				[]string{"walvault", c.xlogpos.String(), "\x00", "\x00"})
		case strings.HasPrefix(sql, "TIMELINE_HISTORY "):
			var tli uint32
			fmt.Sscanf(sql, "TIMELINE_HISTORY %d", &tli)
			h, ok := c.histories[wal.TimelineID(tli)]
			if !ok {
				return pgtest.Failure("58P01", "could not open file")
			}
			name := wal.FileName{Kind: wal.KindTimelineHistory, Timeline: wal.TimelineID(tli)}.String()
			return pgtest.Result("TIMELINE_HISTORY", []string{"filename", "content"}, []string{name, h})
		}
		return pgtest.Failure("42601", "syntax error")
	}
	return s
}

// walBytes is the WAL of timeline tli from start to end: a long page
// header at each segment start, bytes that depend on the position after.
func walBytes(tli wal.TimelineID, start, end wal.LSN) []byte {
	b := make([]byte, end-start)
	for i := range b {
		pos := start + wal.LSN(i)
		b[i] = byte(pos*7+pos>>9) ^ byte(tli)
	}
	for s := (start + seg - 1) / seg * seg; s < end; s += seg {
		h, _ := wal.Header{Magic: 0xD110, Info: 0x0002, Timeline: tli, PageAddr: s, SystemID: testSysID, SegmentSize: testSegSize, BlockSize: 8192}.MarshalBinary()
		for i, c := range h {
			if p := s + wal.LSN(i); p >= start && p < end {
				b[p-start] = c
			}
		}
	}
	return b
}

// stream is XLogData messages carrying timeline tli's WAL from start to
// end, in messages of at most 128 kB as a walsender sends them.
func stream(tli wal.TimelineID, start, end wal.LSN) []pgproto3.BackendMessage {
	var msgs []pgproto3.BackendMessage
	for pos := start; pos < end; {
		next := min(pos+128<<10, end)
		msgs = append(msgs, pgtest.XLogData(pos, walBytes(tli, pos, next)))
		pos = next
	}
	return msgs
}

func concat(parts ...[]pgproto3.BackendMessage) []pgproto3.BackendMessage {
	var out []pgproto3.BackendMessage
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// testOptions are wal-receive's options for a test: a short max-lag, a
// spool directory of the test's own.
func testOptions(t *testing.T) Options {
	return Options{Slot: "walvault", MaxLag: 20 * time.Millisecond, SpoolDir: t.TempDir(), Timeout: 10 * time.Second}.withDefaults()
}

func newBackend(t *testing.T) storage.Backend {
	t.Helper()
	b, _ := filetest.New(t)
	return b
}

// dialer hands out servers in order, one per session; past the last it
// fails with a fatal error, which ends Run.
type dialer struct {
	servers []*pgtest.Server
	errs    []error // when set, dial i fails with errs[i]
	dials   int
}

var (
	errUnreachable = errors.New("dial tcp 127.0.0.1:5432: connection refused")
	errNoServer    = errors.New("the test has no server for this session")
)

func (d *dialer) dial(context.Context) (pg.ReplicationWire, error) {
	i := d.dials
	d.dials++
	if i < len(d.errs) && d.errs[i] != nil {
		return nil, d.errs[i]
	}
	if i >= len(d.servers) {
		return nil, fatalError{errNoServer}
	}
	return d.servers[i], nil
}

// runSessions runs wal-receive against the servers until it returns; a
// test ends it by cancelling ctx (see until).
func runSessions(ctx context.Context, b storage.Backend, opts Options, d *dialer) error {
	return run(ctx, b, opts, d.dial, time.Millisecond)
}

// until is a Pause that ends when cond holds.
func until(cond func() bool) *pgtest.Pause { return &pgtest.Pause{Until: cond} }

// reported reports whether srv has sent a status update at or past pos.
func reported(srv *pgtest.Server, pos wal.LSN) func() bool {
	return func() bool { return len(srv.Statuses) > 0 && srv.Statuses[len(srv.Statuses)-1] >= pos }
}

// cancelWhen cancels ctx once srv reported pos.
func cancelWhen(srv *pgtest.Server, pos wal.LSN, cancel context.CancelFunc) {
	srv.OnStatus = func(p wal.LSN) {
		if p >= pos {
			cancel()
		}
	}
}

// durableUpTo reports whether the repository holds timeline tli's WAL
// just before pos: the complete segment or a partial of it reaching pos.
func durableUpTo(t *testing.T, b storage.Backend, tli wal.TimelineID, pos wal.LSN) bool {
	t.Helper()
	s, err := wal.SegmentFromLSN(tli, pos-1, testSegSize)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := repository.ListPartials(context.Background(), b, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.End >= pos {
			return true
		}
	}
	_, err = b.Stat(context.Background(), segmentKey(tli, s))
	return err == nil
}

func segmentKey(tli wal.TimelineID, s wal.Segment) string {
	return repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: s}, repository.LZ4)
}

func segmentAt(tli wal.TimelineID, pos wal.LSN) wal.Segment {
	s, _ := wal.SegmentFromLSN(tli, pos, testSegSize)
	return s
}

// partialEnds lists the ends of the partials of the segment holding pos.
func partialEnds(t *testing.T, b storage.Backend, tli wal.TimelineID, pos wal.LSN) []wal.LSN {
	t.Helper()
	parts, err := repository.ListPartials(context.Background(), b, segmentAt(tli, pos))
	if err != nil {
		t.Fatal(err)
	}
	var ends []wal.LSN
	for _, p := range parts {
		ends = append(ends, p.End)
	}
	return ends
}

func exists(t *testing.T, b storage.Backend, key string) bool {
	t.Helper()
	_, err := b.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// oneSession runs a single session against srv and returns how it ended.
func oneSession(ctx context.Context, b storage.Backend, opts Options, srv *pgtest.Server) error {
	r := &receiver{b: b, opts: opts, log: opts.Log, dial: (&dialer{servers: []*pgtest.Server{srv}}).dial}
	return r.session(ctx)
}
