package pg

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// CopyInWire is a Wire that can also feed a COPY FROM STDIN-style stream
// (a CopyInResponse) to the server, as UPLOAD_MANIFEST wants. pgtest fakes
// it.
type CopyInWire interface {
	Wire
	// SendCopyData sends one CopyData message with data.
	SendCopyData(data []byte) error
	// SendCopyDone ends the stream.
	SendCopyDone() error
	// SendCopyFail aborts the stream; the server answers with an error.
	SendCopyFail(reason string) error
}

var _ CopyInWire = (*Conn)(nil)

// SendCopyData implements CopyInWire.
func (c *Conn) SendCopyData(data []byte) error {
	c.pc.Frontend().Send(&pgproto3.CopyData{Data: data})
	if err := c.pc.Frontend().Flush(); err != nil {
		return fmt.Errorf("send CopyData: %w", err)
	}
	return nil
}

// SendCopyFail implements CopyInWire.
func (c *Conn) SendCopyFail(reason string) error {
	c.pc.Frontend().Send(&pgproto3.CopyFail{Message: reason})
	if err := c.pc.Frontend().Flush(); err != nil {
		return fmt.Errorf("send CopyFail: %w", err)
	}
	return nil
}

// copyInChunk is how many bytes go into one CopyData message.
const copyInChunk = 64 << 10

// CopyIn sends cmd, which must answer with a CopyInResponse, streams r to
// the server and waits for it to be ready again. check, when not nil, is
// called once r is read to its end, before the stream is ended: its error
// aborts the stream (CopyFail), so the server never acts on data the
// caller found wrong. After an error other than the server's the
// connection must be closed.
func CopyIn(ctx context.Context, w CopyInWire, cmd string, r io.Reader, check func() error) error {
	what := FirstWord(cmd)
	if err := w.Query(cmd); err != nil {
		return err
	}
	msg, err := ReceiveMessage(ctx, w, what, nil)
	if err != nil {
		// The server refused the command: read up to ReadyForQuery so the
		// connection stays usable.
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return err
		}
		if werr := WaitReady(ctx, w, what, nil); werr != nil {
			return errors.Join(err, werr)
		}
		return err
	}
	if _, ok := msg.(*pgproto3.CopyInResponse); !ok {
		return Unexpected(what, msg, "the start of a COPY from walvault")
	}
	buf := make([]byte, copyInChunk)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := w.SendCopyData(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return abortCopyIn(ctx, w, what, rerr)
		}
	}
	if check != nil {
		if err := check(); err != nil {
			return abortCopyIn(ctx, w, what, err)
		}
	}
	if err := w.SendCopyDone(); err != nil {
		return err
	}
	return WaitReady(ctx, w, what, nil)
}

// abortCopyIn ends a COPY with CopyFail and returns cause once the server
// has answered (with the error CopyFail makes) and is ready again.
func abortCopyIn(ctx context.Context, w CopyInWire, what string, cause error) error {
	if err := w.SendCopyFail(cause.Error()); err != nil {
		return errors.Join(cause, err)
	}
	if err := WaitReady(ctx, w, what, nil); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return errors.Join(cause, err)
		}
		// The server's error is the answer to CopyFail: read on to ready.
		if err := WaitReady(ctx, w, what, nil); err != nil {
			return errors.Join(cause, err)
		}
	}
	return cause
}
