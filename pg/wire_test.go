package pg_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/wal"
)

func TestIdentifySystem(t *testing.T) {
	t.Parallel()
	reply := func(row ...string) *pgtest.Server {
		return &pgtest.Server{Msgs: []pgproto3.BackendMessage{
			&pgproto3.ParameterStatus{Name: "x", Value: "y"},
			pgtest.RowDesc("systemid", "timeline", "xlogpos", "dbname"), pgtest.DataRow(row...), pgtest.Complete("IDENTIFY_SYSTEM"),
			&pgproto3.ReadyForQuery{TxStatus: 'I'},
		}}
	}
	w := reply("7712050215942653825", "3", "16/B374D848", "\x00")
	got, err := pg.IdentifySystem(t.Context(), w)
	want := pg.SystemInfo{SystemID: "7712050215942653825", Timeline: 3, XLogPos: wal.LSN(0x16B374D848)}
	if err != nil || got != want {
		t.Fatalf("IdentifySystem: got %+v, %v; want %+v, nil", got, err, want)
	}
	if len(w.Queries) != 1 || w.Queries[0] != "IDENTIFY_SYSTEM" {
		t.Errorf("queries: got %q, want IDENTIFY_SYSTEM", w.Queries)
	}
	for _, bad := range [][]string{
		{"not-a-number", "1", "0/1", "\x00"},
		{"1", "0", "0/1", "\x00"},
		{"1", "1", "nonsense", "\x00"},
	} {
		got, err := pg.IdentifySystem(t.Context(), reply(bad...))
		if err == nil {
			t.Errorf("IdentifySystem of %q: got %+v, nil; want an error", bad, got)
		} else if !errors.Is(err, pg.ErrMalformed) {
			t.Errorf("IdentifySystem of %q: got %v, want it to wrap ErrMalformed", bad, err)
		}
	}
}

// TestExec: Exec collects every result, reads past a server error to
// ReadyForQuery (so the connection stays usable) and returns the error.
func TestExec(t *testing.T) {
	t.Parallel()
	w := &pgtest.Server{Msgs: []pgproto3.BackendMessage{
		&pgproto3.NoticeResponse{Message: "hello"},
		pgtest.RowDesc("a"), pgtest.DataRow("1"), pgtest.DataRow("\x00"), pgtest.Complete("SELECT 2"),
		pgtest.Complete("CREATE"),
		pgtest.RowDesc("b", "c"), pgtest.Complete("SELECT 0"),
		pgtest.Ready(),
		pgtest.ErrorMsg("42704", "no such thing"), pgtest.Ready(),
		pgtest.DataRow("orphan"), pgtest.Ready(),
	}}
	res, err := pg.Exec(t.Context(), w, "SOMETHING")
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if len(res) != 2 || len(res[0].Rows) != 2 || res[0].Rows[0][0] != (pg.Value{S: "1", Valid: true}) || res[0].Rows[1][0].Valid ||
		strings.Join(res[1].Fields, ",") != "b,c" || len(res[1].Rows) != 0 {
		t.Errorf("Exec: got %+v", res)
	}
	_, err = pg.Exec(t.Context(), w, "FAILING thing")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42704" || !strings.HasPrefix(err.Error(), "FAILING: ") {
		t.Errorf("Exec of a failing command: got %v, want the PgError 42704 named after the command", err)
	}
	if _, err := pg.Exec(t.Context(), w, "ORPHAN"); err == nil {
		t.Error("Exec accepted a row without a description")
	}
	w.Msgs = nil
	if _, err := pg.Exec(t.Context(), w, "LOST"); err == nil || !strings.Contains(err.Error(), "connection to PostgreSQL lost") {
		t.Errorf("Exec on a lost connection: got %v", err)
	}
	if got := strings.Join(w.Queries, "|"); got != "SOMETHING|FAILING thing|ORPHAN|LOST" {
		t.Errorf("queries: %s", got)
	}
}

func TestReadReplicationSlot(t *testing.T) {
	t.Parallel()
	fields := []string{"slot_type", "restart_lsn", "restart_tli"}
	for _, tc := range []struct {
		name    string
		answer  []pgproto3.BackendMessage
		want    pg.ReplicationSlot
		wantErr string
	}{
		{"physical", pgtest.Result("READ_REPLICATION_SLOT", fields, []string{"physical", "0/3000000", "2"}), pg.ReplicationSlot{Type: "physical", RestartLSN: 0x3000000, RestartTimeline: "2"}, ""},
		{"no restart_lsn", pgtest.Result("READ_REPLICATION_SLOT", fields, []string{"physical", "\x00", "\x00"}), pg.ReplicationSlot{Type: "physical"}, ""},
		{"missing", pgtest.Result("READ_REPLICATION_SLOT", fields, []string{"\x00", "\x00", "\x00"}), pg.ReplicationSlot{}, ""},
		{"logical", pgtest.Failure("0A000", "cannot use READ_REPLICATION_SLOT with a logical replication slot"), pg.ReplicationSlot{}, "0A000"},
		{"bad lsn", pgtest.Result("READ_REPLICATION_SLOT", fields, []string{"physical", "nonsense", "1"}), pg.ReplicationSlot{}, "invalid LSN"},
		{"no row", pgtest.Result("READ_REPLICATION_SLOT", fields), pg.ReplicationSlot{}, "unexpected answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &pgtest.Server{Msgs: tc.answer}
			got, err := pg.ReadReplicationSlot(t.Context(), w, `my"slot`)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			if w.Queries[0] != `READ_REPLICATION_SLOT "my""slot"` {
				t.Errorf("query %s: want the slot name quoted", w.Queries[0])
			}
		})
	}
}

func TestTimelineHistory(t *testing.T) {
	t.Parallel()
	fields := []string{"filename", "content"}
	content := "1\t0/5000098\tno recovery target specified\n"
	w := &pgtest.Server{Msgs: pgtest.Result("TIMELINE_HISTORY", fields, []string{"00000002.history", content})}
	name, got, err := pg.TimelineHistory(t.Context(), w, 2)
	if err != nil || name != "00000002.history" || string(got) != content || w.Queries[0] != "TIMELINE_HISTORY 2" {
		t.Fatalf("TimelineHistory: got %q %q %v (queries %q)", name, got, err, w.Queries)
	}
	w = &pgtest.Server{Msgs: pgtest.Result("TIMELINE_HISTORY", fields, []string{"00000003.history", content})}
	if _, _, err := pg.TimelineHistory(t.Context(), w, 2); !errors.Is(err, pg.ErrMalformed) {
		t.Errorf("TimelineHistory answered with another timeline's file: got %v, want ErrMalformed", err)
	}
}

func TestSegmentSize(t *testing.T) {
	t.Parallel()
	w := &pgtest.Server{Msgs: pgtest.Result("SHOW", []string{"wal_segment_size"}, []string{"16MB"})}
	if got, err := pg.SegmentSize(t.Context(), w); err != nil || got != 16<<20 || w.Queries[0] != "SHOW wal_segment_size" {
		t.Errorf("SegmentSize: got %d, %v", got, err)
	}
	w = &pgtest.Server{Msgs: pgtest.Result("SHOW", []string{"wal_segment_size"}, []string{"3MB"})}
	if _, err := pg.SegmentSize(t.Context(), w); !errors.Is(err, pg.ErrMalformed) {
		t.Errorf("SegmentSize of 3MB: got %v, want ErrMalformed", err)
	}
}

func TestParseSegmentSize(t *testing.T) {
	for in, want := range map[string]uint32{"16MB": 16 << 20, "1GB": 1 << 30, "1MB": 1 << 20, "64MB": 64 << 20} {
		if got, err := pg.ParseSegmentSize(in); err != nil || got != want {
			t.Errorf("%s: %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "16", "3MB", "2GB", "xMB"} {
		if _, err := pg.ParseSegmentSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestParseTimelineEnd(t *testing.T) {
	e, err := pg.ParseTimelineEnd([][]byte{[]byte("3"), []byte("0/5000098")})
	if err != nil {
		t.Fatal(err)
	}
	if e.Next != 3 || e.SwitchPoint != wal.LSN(0x5000098) {
		t.Errorf("got %+v, want next 3 at 0/5000098", e)
	}
	for _, bad := range [][][]byte{
		{[]byte("3")},
		{[]byte("0"), []byte("0/1")},
		{[]byte("x"), []byte("0/1")},
		{[]byte("2"), []byte("nope")},
	} {
		if _, err := pg.ParseTimelineEnd(bad); err == nil {
			t.Errorf("ParseTimelineEnd(%q) accepted", bad)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	if got := pg.QuoteIdent(`a"b`); got != `"a""b"` {
		t.Errorf("got %s", got)
	}
}
