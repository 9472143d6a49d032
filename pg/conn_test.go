package pg

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// pipeConn is a Conn over an in-memory pipe, and the server's end of it:
// the real pgconn and pglogrepl code runs against what the test sends.
func pipeConn(t *testing.T) (*Conn, *pgproto3.Backend) {
	t.Helper()
	client, server := net.Pipe()
	cfg, err := pgconn.ParseConfig("host=localhost sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pgconn.Construct(&pgconn.HijackedConn{Conn: client, Config: cfg, TxStatus: 'I',
		ParameterStatuses: map[string]string{"server_version_num": "150010"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return &Conn{pc: pc}, pgproto3.NewBackend(server, server)
}

// serve answers the first query with msgs, in a goroutine; the query's
// text arrives on the returned channel.
func serve(t *testing.T, be *pgproto3.Backend, msgs ...pgproto3.BackendMessage) <-chan string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		defer close(got)
		msg, err := be.Receive()
		if err != nil {
			return
		}
		if q, ok := msg.(*pgproto3.Query); ok {
			got <- q.String
		}
		for _, m := range msgs {
			be.Send(m)
		}
		_ = be.Flush()
	}()
	return got
}

// TestStatusUpdate: the standby status update pglogrepl sends reports the
// position as written, flushed and applied, and the client's clock.
func TestStatusUpdate(t *testing.T) {
	c, be := pipeConn(t)
	got := make(chan []byte, 1)
	go func() {
		msg, err := be.Receive()
		if cd, ok := msg.(*pgproto3.CopyData); ok && err == nil {
			got <- append([]byte(nil), cd.Data...)
		}
		close(got)
	}()
	now := time.Date(2000, 1, 1, 0, 0, 3, 0, time.UTC)
	if err := c.SendStandbyStatus(0x2000000, now); err != nil {
		t.Fatal(err)
	}
	b := <-got
	if len(b) != 34 || b[0] != 'r' || b[33] != 0 {
		t.Fatalf("bad message %x", b)
	}
	for _, off := range []int{1, 9, 17} {
		if got := binary.BigEndian.Uint64(b[off:]); got != 0x2000000 {
			t.Errorf("position at %d: %x", off, got)
		}
	}
	if got := binary.BigEndian.Uint64(b[25:]); got != 3_000_000 {
		t.Errorf("clock %d, want 3000000 µs", got)
	}
}

func TestStartReplication(t *testing.T) {
	t.Run("stream", func(t *testing.T) {
		c, be := pipeConn(t)
		q := serve(t, be, &pgproto3.CopyBothResponse{})
		end, err := c.StartReplication(t.Context(), "walvault", 0x3000000, 2)
		if err != nil || end != nil {
			t.Fatalf("StartReplication: got %+v, %v; want the stream", end, err)
		}
		if got := <-q; got != `START_REPLICATION SLOT "walvault" PHYSICAL 0/3000000 TIMELINE 2` {
			t.Errorf("command %q", got)
		}
		if got := c.ParameterStatus("server_version_num"); got != "150010" {
			t.Errorf("ParameterStatus: %q", got)
		}
	})
	t.Run("end of timeline", func(t *testing.T) {
		c, be := pipeConn(t)
		serve(t, be,
			&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("next_tli")}, {Name: []byte("next_tli_startpos")}}},
			&pgproto3.DataRow{Values: [][]byte{[]byte("3"), []byte("0/5000098")}},
			&pgproto3.CommandComplete{CommandTag: []byte("SELECT")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		end, err := c.StartReplication(t.Context(), "walvault", 0x5000098, 2)
		if err != nil || end == nil || *end != (TimelineEnd{Next: 3, SwitchPoint: 0x5000098}) {
			t.Fatalf("StartReplication at the end of a timeline: got %+v, %v; want next timeline 3 at 0/5000098", end, err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		c, be := pipeConn(t)
		serve(t, be, &pgproto3.ErrorResponse{Severity: "ERROR", Code: "58P01", Message: "requested WAL segment has already been removed"},
			&pgproto3.ReadyForQuery{TxStatus: 'I'})
		_, err := c.StartReplication(t.Context(), "walvault", 0x3000000, 1)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "58P01" {
			t.Fatalf("StartReplication refused: got %v, want the PgError", err)
		}
	})
}

// TestReceiveTimeout: a receive that reaches its deadline wraps ErrTimeout
// and leaves the connection usable.
func TestReceiveTimeout(t *testing.T) {
	c, be := pipeConn(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Receive(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Receive past its deadline: got %v, want ErrTimeout", err)
	}
	go func() {
		be.Send(&pgproto3.CopyData{Data: []byte("k")})
		_ = be.Flush()
	}()
	msg, err := c.Receive(t.Context())
	if cd, ok := msg.(*pgproto3.CopyData); err != nil || !ok || string(cd.Data) != "k" {
		t.Fatalf("Receive after a timeout: got %T %v", msg, err)
	}
	q := make(chan string, 1)
	go func() {
		m, _ := be.Receive()
		if _, ok := m.(*pgproto3.CopyDone); ok {
			q <- "CopyDone"
		}
		close(q)
	}()
	if err := c.SendCopyDone(); err != nil || <-q != "CopyDone" {
		t.Errorf("SendCopyDone: %v", err)
	}
}
