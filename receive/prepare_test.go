package receive

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// TestPrepareRefusals: what is wrong with the server, the slot or the
// repository is refused before streaming, with a message naming it,
// without retrying and without writing anything.
func TestPrepareRefusals(t *testing.T) {
	identity := func(sysID uint64, segSize uint32) func(*testing.T, storage.Backend) {
		return func(t *testing.T, b storage.Backend) {
			want := repository.NewIdentity(sysID, segSize, 15, repository.LZ4, "h", time.Now())
			if _, err := repository.EnsureIdentity(t.Context(), b, want, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*cluster)
		repo   func(*testing.T, storage.Backend)
		start  func(pgtest.Start) (*pg.TimelineEnd, error)
		want   []string
		is     error
	}{
		{name: "PostgreSQL 14", change: func(c *cluster) { c.version = "140011" }, want: []string{"PostgreSQL 15.10 is not supported", "15 or later"}},
		{name: "PostgreSQL 19", change: func(c *cluster) { c.version = "190000" }, want: []string{"PostgreSQL 19.0 is not supported", "PostgreSQL 15 to 18", "nothing was written"}},
		{name: "PostgreSQL 19devel by server_version", change: func(c *cluster) { c.version, c.versionS = "", "19devel" }, want: []string{"PostgreSQL 19.0 is not supported", "PostgreSQL 15 to 18"}},
		{name: "PostgreSQL 14 by server_version", change: func(c *cluster) { c.version, c.versionS = "", "14.11" }, want: []string{"PostgreSQL 14.11 is not supported", "15 or later"}},
		{name: "no slot", change: func(c *cluster) { c.slotType = "" }, want: []string{`replication slot "walvault" does not exist`, "--create-slot", "pg_create_physical_replication_slot('walvault', true)"}},
		{name: "logical slot refused by the server", change: func(c *cluster) { c.slotErr = "0A000" }, want: []string{"logical slot", "physical slot"}},
		{name: "logical slot", change: func(c *cluster) { c.slotType = "logical" }, want: []string{`"walvault" is a logical slot`, "physical"}},
		{name: "malformed IDENTIFY_SYSTEM", change: func(c *cluster) { c.identify = []string{"1", "0", "0/1", "\x00"} }, want: []string{"IDENTIFY_SYSTEM", "invalid timeline"}, is: pg.ErrMalformed},
		{name: "unknown segment size", change: func(c *cluster) { c.segSize = "3MB" }, want: []string{"3"}, is: pg.ErrMalformed},
		{name: "history missing", change: func(c *cluster) { c.timeline = 2 }, want: []string{"TIMELINE_HISTORY", "could not open file"}},
		{name: "another cluster's repository", repo: identity(testSysID+1, testSegSize),
			want: []string{"7300000000000000001", "7300000000000000002", "pg_upgrade", "new repository prefix", "nothing was written"}, is: archive.ErrWrongCluster},
		{name: "other segment size", repo: identity(testSysID, 16<<20), want: []string{"segments of 1048576 bytes", "holds segments of 16777216 bytes"}},
		{name: "START_REPLICATION refused", start: func(pgtest.Start) (*pg.TimelineEnd, error) {
			return nil, &pgconn.PgError{Severity: "ERROR", Code: "58P01", Message: "requested WAL segment 000000010000000000000003 has already been removed"}
		}, want: []string{"START_REPLICATION", "already been removed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			if tc.repo != nil {
				tc.repo(t, b)
			}
			before := keys(t, b)
			c := primary()
			if tc.change != nil {
				tc.change(c)
			}
			srv := c.server()
			srv.OnStart = tc.start
			d := &dialer{servers: []*pgtest.Server{srv}}
			err := runSessions(t.Context(), b, testOptions(t), d)
			if err == nil {
				t.Fatal("run: got nil, want a refusal")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q: want it to contain %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v: want it to wrap %v", err, tc.is)
			}
			var fatal fatalError
			if !errors.As(err, &fatal) || d.dials != 1 {
				t.Errorf("error %v after %d dials: want a fatal error after one", err, d.dials)
			}
			if after := keys(t, b); !slices.Equal(before, after) {
				t.Errorf("the repository changed: %v -> %v", before, after)
			}
		})
	}
}

func keys(t *testing.T, b storage.Backend) []string {
	t.Helper()
	var out []string
	if err := b.List(t.Context(), "", func(oi storage.ObjectInfo) error { out = append(out, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSlotStart: where streaming starts, from the slot's restart_lsn and
// the server's position.
func TestSlotStart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		change     func(*cluster)
		createSlot bool
		want       wal.LSN
		wantQuery  string
	}{
		{name: "restart_lsn mid-segment: its segment's start", change: func(c *cluster) { c.restart = (3*seg + 1234).String() }, want: 3 * seg},
		{name: "no restart_lsn: the server's position", change: func(c *cluster) { c.restart = "\x00" }, want: 5 * seg},
		{name: "restart_lsn past the server's position", change: func(c *cluster) { c.restart = (9 * seg).String() }, want: 5 * seg},
		{name: "slot on another timeline: a warning, the slot's position", change: func(c *cluster) { c.slotTLI = "7" }, want: 3 * seg},
		{name: "created", change: func(c *cluster) { c.slotType = ""; c.xlogpos = 6*seg + 10 }, createSlot: true, want: 6 * seg,
			wantQuery: `CREATE_REPLICATION_SLOT "walvault" PHYSICAL RESERVE_WAL`},
		{name: "not created when it exists", createSlot: true, want: 3 * seg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			opts := testOptions(t)
			opts.CreateSlot = tc.createSlot
			c := primary()
			if tc.change != nil {
				tc.change(c)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			srv := c.server()
			srv.OnStart = func(pgtest.Start) (*pg.TimelineEnd, error) { cancel(); return nil, nil }
			if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}}); err != nil {
				t.Fatalf("run: %v", err)
			}
			if len(srv.Starts) != 1 || srv.Starts[0].LSN != tc.want {
				t.Errorf("starts: got %+v, want one at %s", srv.Starts, tc.want)
			}
			created := slices.ContainsFunc(srv.Queries, func(q string) bool { return strings.HasPrefix(q, "CREATE_REPLICATION_SLOT") })
			if tc.wantQuery != "" && !slices.Contains(srv.Queries, tc.wantQuery) {
				t.Errorf("queries %q: want %s", srv.Queries, tc.wantQuery)
			}
			if tc.wantQuery == "" && created {
				t.Errorf("queries %q: want no slot created", srv.Queries)
			}
		})
	}
}

// TestConflictingPartial: a partial already stored for the same range
// with other bytes is never overwritten, and stops wal-receive.
func TestConflictingPartial(t *testing.T) {
	b := newBackend(t)
	opts := testOptions(t)
	c := primary()
	end := 3*seg + 5000
	// A first receiver stored the range with other bytes.
	other := walBytes(1, 3*seg, end)
	other[100] ^= 0xFF
	first := c.server(pgtest.XLogData(3*seg, other))
	ctx, cancel := context.WithCancel(t.Context())
	cancelWhen(first, end, cancel)
	if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{first}}); err != nil {
		t.Fatal(err)
	}
	cancel()
	key := repository.PartialKey(segmentAt(1, 3*seg), end, repository.LZ4)
	srv := c.server(stream(1, 3*seg, end)...)
	d := &dialer{servers: []*pgtest.Server{srv}}
	err := runSessions(t.Context(), b, opts, d)
	if !errors.Is(err, archive.ErrConflict) || !strings.Contains(err.Error(), key) || d.dials != 1 {
		t.Fatalf("run: got %v after %d dials, want a conflict on %s without retrying", err, d.dials, key)
	}
	if len(srv.Statuses) != 0 {
		t.Errorf("statuses %v: nothing of the conflicting range may be reported durable", srv.Statuses)
	}
}
