package pgtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/wal"
)

// Server plays a scripted server. Receive returns, in order, the answers
// Answer gave to the queries sent so far, then Msgs; once both run out it
// returns io.ErrUnexpectedEOF, as a lost connection does, unless Idle is
// set (then it waits for the context, as a quiet server does).
type Server struct {
	Msgs []pgproto3.BackendMessage
	// Answer, when set, answers a Query; the answer is received before
	// whatever remains of Msgs.
	Answer func(sql string) []pgproto3.BackendMessage
	// Idle makes Receive wait for its context once the script ran out.
	Idle bool
	// Params are the parameters the server reported at connection.
	Params map[string]string
	// OnStart, when set, answers StartReplication; by default the server
	// enters the COPY stream.
	OnStart func(Start) (*pg.TimelineEnd, error)
	// OnStatus, when set, sees each standby status update as it is sent.
	OnStatus func(pos wal.LSN)

	// What the client did.
	Queries   []string
	Starts    []Start
	Statuses  []wal.LSN
	CopyDones int
	CopyIn    []byte   // the data of every CopyData the client sent
	CopyFails []string // the reasons of every CopyFail
	Closed    bool

	answers []pgproto3.BackendMessage
}

var (
	_ pg.ReplicationWire = (*Server)(nil)
	_ pg.CopyInWire      = (*Server)(nil)
)

// Start is one StartReplication call.
type Start struct {
	Slot     string
	LSN      wal.LSN
	Timeline wal.TimelineID
}

// Pause is a script step: Receive reports pg.ErrTimeout at each deadline
// of its context until Until (nil: never) holds, then goes on with the
// script. A test lets the client act on a quiet connection with it.
type Pause struct {
	pgproto3.BackendMessage // never used: a Pause only marks a step
	Until                   func() bool
}

// Lost is a script step: Receive returns Err, as a connection that broke.
type Lost struct {
	pgproto3.BackendMessage // never used
	Err                     error
}

// Query implements pg.Wire.
func (s *Server) Query(sql string) error {
	s.Queries = append(s.Queries, sql)
	if s.Answer != nil {
		s.answers = append(s.answers, s.Answer(sql)...)
	}
	return nil
}

// Receive implements pg.Wire.
func (s *Server) Receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	for {
		if ctx.Err() != nil {
			// A deadline already passed (a slow test machine) is a
			// timeout too, as pg.Conn reports it, not a lost connection.
			return nil, timeoutErr(ctx)
		}
		if len(s.answers) > 0 {
			m := s.answers[0]
			s.answers = s.answers[1:]
			return m, nil
		}
		if len(s.Msgs) == 0 {
			if !s.Idle {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, waitDeadline(ctx)
		}
		switch m := s.Msgs[0].(type) {
		case *Pause:
			if m.Until == nil || !m.Until() {
				return nil, waitDeadline(ctx)
			}
			s.Msgs = s.Msgs[1:]
		case *Lost:
			s.Msgs = s.Msgs[1:]
			return nil, m.Err
		default:
			s.Msgs = s.Msgs[1:]
			return m, nil
		}
	}
}

// waitDeadline waits for ctx as a quiet server makes a receive wait.
func waitDeadline(ctx context.Context) error {
	<-ctx.Done()
	return timeoutErr(ctx)
}

// timeoutErr is the error of a Receive whose ctx is done: pg.ErrTimeout
// at its deadline, as pg.Conn's Receive says it.
func timeoutErr(ctx context.Context) error {
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%w: %w", pg.ErrTimeout, ctx.Err())
	}
	return ctx.Err()
}

// ParameterStatus implements pg.ReplicationWire.
func (s *Server) ParameterStatus(name string) string { return s.Params[name] }

// StartReplication implements pg.ReplicationWire.
func (s *Server) StartReplication(_ context.Context, slot string, start wal.LSN, tli wal.TimelineID) (*pg.TimelineEnd, error) {
	st := Start{Slot: slot, LSN: start, Timeline: tli}
	s.Starts = append(s.Starts, st)
	if s.OnStart != nil {
		return s.OnStart(st)
	}
	return nil, nil
}

// SendStandbyStatus implements pg.ReplicationWire.
func (s *Server) SendStandbyStatus(pos wal.LSN, _ time.Time) error {
	s.Statuses = append(s.Statuses, pos)
	if s.OnStatus != nil {
		s.OnStatus(pos)
	}
	return nil
}

// SendCopyDone implements pg.ReplicationWire.
func (s *Server) SendCopyDone() error {
	s.CopyDones++
	return nil
}

// SendCopyData implements pg.CopyInWire.
func (s *Server) SendCopyData(data []byte) error {
	s.CopyIn = append(s.CopyIn, data...)
	return nil
}

// SendCopyFail implements pg.CopyInWire.
func (s *Server) SendCopyFail(reason string) error {
	s.CopyFails = append(s.CopyFails, reason)
	return nil
}

// Close implements pg.ReplicationWire.
func (s *Server) Close() { s.Closed = true }

// RowDesc is a RowDescription of the named fields.
func RowDesc(names ...string) *pgproto3.RowDescription {
	d := &pgproto3.RowDescription{}
	for _, n := range names {
		d.Fields = append(d.Fields, pgproto3.FieldDescription{Name: []byte(n)})
	}
	return d
}

// DataRow makes a row; "\x00" stands for NULL.
func DataRow(vals ...string) *pgproto3.DataRow {
	r := &pgproto3.DataRow{}
	for _, v := range vals {
		if v == "\x00" {
			r.Values = append(r.Values, nil)
		} else {
			r.Values = append(r.Values, []byte(v))
		}
	}
	return r
}

// Complete is a CommandComplete with tag.
func Complete(tag string) *pgproto3.CommandComplete {
	return &pgproto3.CommandComplete{CommandTag: []byte(tag)}
}

// Ready is ReadyForQuery outside a transaction.
func Ready() *pgproto3.ReadyForQuery { return &pgproto3.ReadyForQuery{TxStatus: 'I'} }

// Result is a whole answer to a command: one result set of fields and
// rows (each row as DataRow takes it), then ReadyForQuery.
func Result(tag string, fields []string, rows ...[]string) []pgproto3.BackendMessage {
	msgs := []pgproto3.BackendMessage{RowDesc(fields...)}
	for _, r := range rows {
		msgs = append(msgs, DataRow(r...))
	}
	return append(msgs, Complete(tag), Ready())
}

// Failure is a whole answer that is an error: ErrorResponse, then
// ReadyForQuery.
func Failure(code, msg string) []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{ErrorMsg(code, msg), Ready()}
}

// CopyData is a CopyData of type kind.
func CopyData(kind byte, payload string) *pgproto3.CopyData {
	return &pgproto3.CopyData{Data: append([]byte{kind}, payload...)}
}

// ErrorMsg is an ErrorResponse.
func ErrorMsg(code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg}
}

// XLogData is a replication stream's XLogData ('w') message: data at
// start, the server's WAL ending at start+len(data).
func XLogData(start wal.LSN, data []byte) *pgproto3.CopyData {
	b := make([]byte, 1+24, 1+24+len(data))
	b[0] = 'w'
	binary.BigEndian.PutUint64(b[1:], uint64(start))
	binary.BigEndian.PutUint64(b[9:], uint64(start)+uint64(len(data)))
	return &pgproto3.CopyData{Data: append(b, data...)}
}

// Keepalive is a primary keepalive ('k') message.
func Keepalive(walEnd wal.LSN, replyRequested bool) *pgproto3.CopyData {
	b := make([]byte, 1+17)
	b[0] = 'k'
	binary.BigEndian.PutUint64(b[1:], uint64(walEnd))
	if replyRequested {
		b[17] = 1
	}
	return &pgproto3.CopyData{Data: b}
}

// TimelineEnded is what a server sends when the streamed timeline ends:
// CopyDone; and once the client acknowledged it, the next timeline and
// where it starts, then ReadyForQuery.
func TimelineEnded(next wal.TimelineID, switchPoint wal.LSN) []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{
		&pgproto3.CopyDone{},
		RowDesc("next_tli", "next_tli_startpos"), DataRow(fmt.Sprint(uint32(next)), switchPoint.String()),
		Complete("SELECT"), Complete("START_STREAMING"), Ready(),
	}
}
