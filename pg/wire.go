package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Wire is the part of a connection the protocol code uses, at the level
// of protocol messages; tests replace it with pgtest's scripted server.
type Wire interface {
	// Query sends one simple-protocol Query message.
	Query(sql string) error
	// Receive returns the next message from the server. A message may
	// point into the connection's read buffer: it is valid until the next
	// Receive. When ctx's deadline passes first, the error wraps
	// ErrTimeout and the connection stays usable.
	Receive(ctx context.Context) (pgproto3.BackendMessage, error)
}

// ErrTimeout marks a Receive that gave up at its context's deadline.
var ErrTimeout = errors.New("no message from PostgreSQL before the deadline")

// Conn is a message-level connection to PostgreSQL over pgx's pgconn; it
// implements Wire and ReplicationWire.
type Conn struct{ pc *pgconn.PgConn }

var _ ReplicationWire = (*Conn)(nil)

// Query implements Wire.
func (c *Conn) Query(sql string) error {
	c.pc.Frontend().Send(&pgproto3.Query{String: sql})
	if err := c.pc.Frontend().Flush(); err != nil {
		return fmt.Errorf("send %s: %w", FirstWord(sql), err)
	}
	return nil
}

// Receive implements Wire.
func (c *Conn) Receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	msg, err := c.pc.ReceiveMessage(ctx)
	if err != nil && pgconn.Timeout(err) {
		return nil, fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return msg, err
}

// ParameterStatus is a run-time parameter the server reported, such as
// server_version_num ("" when it did not).
func (c *Conn) ParameterStatus(name string) string { return c.pc.ParameterStatus(name) }

// Close says goodbye and closes the socket, even when the caller's context
// is already cancelled. Closing mid-COPY makes the server abort the
// command on its side.
func (c *Conn) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = c.pc.Close(ctx)
}

// CancelRequest asks the server, on a connection of its own, to cancel
// what this connection runs (PostgreSQL's CancelRequest, as pg_cancel_backend
// does): a walsender ends its BASE_BACKUP at once, even while it waits for
// WAL archiving, where it would not notice a closed socket until it next
// writes to it.
func (c *Conn) CancelRequest(ctx context.Context) error {
	if err := c.pc.CancelRequest(ctx); err != nil {
		return fmt.Errorf("cancel request to PostgreSQL: %w", err)
	}
	return nil
}

// NoticeFunc receives the server's notices and warnings.
type NoticeFunc func(*pgconn.Notice)

// Value is one field of a DataRow, copied out of the read buffer.
type Value struct {
	S     string
	Valid bool // false for SQL NULL
}

// ResultSet is one row-returning result.
type ResultSet struct {
	Fields []string
	Rows   [][]Value
}

// ServerError is an ErrorResponse as a *pgconn.PgError (errors.As finds
// it), with what was being done and the server's detail and hint.
func ServerError(what string, msg *pgproto3.ErrorResponse) error {
	pgErr := pgconn.ErrorResponseToPgError(msg)
	return fmt.Errorf("%s: %w%s", what, pgErr, serverHint(pgErr))
}

// serverHint is the detail and hint the server gave with an error.
func serverHint(e *pgconn.PgError) string {
	var s string
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

// receive reads the next message; a failure names what was going on and
// is ctx's error when ctx ended, else a lost connection.
func receive(ctx context.Context, w Wire, what string) (pgproto3.BackendMessage, error) {
	msg, err := w.Receive(ctx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s: %w", what, ctxErr)
		}
		return nil, fmt.Errorf("%s: connection to PostgreSQL lost: %w", what, err)
	}
	return msg, nil
}

// ReceiveMessage reads the next message that matters: notices go to
// notice and parameter status reports are skipped; an ErrorResponse
// becomes an error (ServerError).
func ReceiveMessage(ctx context.Context, w Wire, what string, notice NoticeFunc) (pgproto3.BackendMessage, error) {
	for {
		msg, err := receive(ctx, w, what)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse:
			if notice != nil {
				notice((*pgconn.Notice)(pgconn.ErrorResponseToPgError((*pgproto3.ErrorResponse)(m))))
			}
		case *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return nil, ServerError(what, m)
		default:
			return msg, nil
		}
	}
}

// ReadResult reads one RowDescription, its DataRows and the
// CommandComplete that ends them.
func ReadResult(ctx context.Context, w Wire, what string, notice NoticeFunc) (ResultSet, error) {
	msg, err := ReceiveMessage(ctx, w, what, notice)
	if err != nil {
		return ResultSet{}, err
	}
	desc, ok := msg.(*pgproto3.RowDescription)
	if !ok {
		return ResultSet{}, Unexpected(what, msg, "a result set")
	}
	rs := ResultSet{Fields: fieldNames(desc)}
	for {
		msg, err := ReceiveMessage(ctx, w, what, notice)
		if err != nil {
			return ResultSet{}, err
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			row, err := rowValues(what, m, len(rs.Fields))
			if err != nil {
				return ResultSet{}, err
			}
			rs.Rows = append(rs.Rows, row)
		case *pgproto3.CommandComplete:
			return rs, nil
		default:
			return ResultSet{}, Unexpected(what, msg, "a row or the end of the result")
		}
	}
}

func fieldNames(desc *pgproto3.RowDescription) []string {
	names := make([]string, 0, len(desc.Fields))
	for _, f := range desc.Fields {
		names = append(names, string(f.Name))
	}
	return names
}

// rowValues copies a DataRow out of the read buffer.
func rowValues(what string, m *pgproto3.DataRow, fields int) ([]Value, error) {
	if len(m.Values) != fields {
		return nil, fmt.Errorf("%s: a row has %d fields, its description %d", what, len(m.Values), fields)
	}
	row := make([]Value, len(m.Values))
	for i, v := range m.Values {
		row[i] = Value{S: string(v), Valid: v != nil}
	}
	return row, nil
}

// WaitReady reads until ReadyForQuery, accepting only CommandComplete on
// the way.
func WaitReady(ctx context.Context, w Wire, what string, notice NoticeFunc) error {
	for {
		msg, err := ReceiveMessage(ctx, w, what, notice)
		if err != nil {
			return err
		}
		switch msg.(type) {
		case *pgproto3.ReadyForQuery:
			return nil
		case *pgproto3.CommandComplete, *pgproto3.EmptyQueryResponse:
		default:
			return Unexpected(what, msg, "the end of the command")
		}
	}
}

// SimpleQuery runs one statement that returns one result set and waits for
// the server to be ready again. After an error the connection must be
// closed.
func SimpleQuery(ctx context.Context, w Wire, sql string, notice NoticeFunc) (ResultSet, error) {
	what := FirstWord(sql)
	if strings.HasPrefix(strings.ToUpper(sql), "SHOW ") {
		what = sql
	}
	if err := w.Query(sql); err != nil {
		return ResultSet{}, err
	}
	rs, err := ReadResult(ctx, w, what, notice)
	if err != nil {
		return ResultSet{}, err
	}
	return rs, WaitReady(ctx, w, what, notice)
}

// Exec runs one command and returns its row-returning results, which may
// be none. Unlike SimpleQuery it reads up to ReadyForQuery even after a
// server error, which it returns (errors.As finds the *pgconn.PgError),
// so the connection stays usable.
func Exec(ctx context.Context, w Wire, sql string) ([]ResultSet, error) {
	what := FirstWord(sql)
	if err := w.Query(sql); err != nil {
		return nil, err
	}
	var out []ResultSet
	var cur *ResultSet
	var serverErr error
	for {
		msg, err := receive(ctx, w, what)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			out = append(out, ResultSet{Fields: fieldNames(m)})
			cur = &out[len(out)-1]
		case *pgproto3.DataRow:
			if cur == nil {
				return nil, Unexpected(what, msg, "a result set")
			}
			row, err := rowValues(what, m, len(cur.Fields))
			if err != nil {
				return nil, err
			}
			cur.Rows = append(cur.Rows, row)
		case *pgproto3.CommandComplete:
			cur = nil
		case *pgproto3.ErrorResponse:
			if serverErr == nil {
				serverErr = ServerError(what, m)
			}
		case *pgproto3.ReadyForQuery:
			if serverErr != nil {
				return nil, serverErr
			}
			return out, nil
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus, *pgproto3.EmptyQueryResponse:
		default:
			return nil, Unexpected(what, msg, "a result or the end of the command")
		}
	}
}

// Unexpected is the error for a message the protocol does not allow here.
func Unexpected(what string, msg pgproto3.BackendMessage, want string) error {
	return fmt.Errorf("%s: PostgreSQL sent %T where walvault expected %s (an unsupported server version or a broken connection)", what, msg, want)
}

// FirstWord is a command's name, for messages.
func FirstWord(sql string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	return w
}
