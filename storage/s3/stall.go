package s3

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// DefaultStallTimeout is how long one request may go without progress (no
// byte of its body taken, no response header, no byte of the response
// body) before it is abandoned as stalled.
const DefaultStallTimeout = 30 * time.Second

// stallGuard is the HTTP client under the SDK: it abandons a request that
// makes no progress for idle, the only bound a transfer that takes as long
// as the data is big can have (a GET body read by restore, a part of a
// multipart upload): a client timeout would cut a slow but healthy one.
// Time the caller spends between reads of a response body is not counted:
// a consumer writing to a slow disk is not a stalled server.
type stallGuard struct {
	next aws.HTTPClient
	idle time.Duration
}

// stallError is why a request was abandoned. It is transient: a new
// connection may well get an answer.
type stallError struct {
	host string
	idle time.Duration
}

func (e *stallError) Error() string {
	return fmt.Sprintf("no progress from %s for %s: request abandoned as stalled", e.host, e.idle)
}

// Timeout marks the error as a timeout, as net.Error does.
func (e *stallError) Timeout() bool { return true }

func (g *stallGuard) Do(req *http.Request) (*http.Response, error) {
	stall := &stallError{host: req.URL.Host, idle: g.idle}
	ctx, cancel := context.WithCancelCause(req.Context())
	// The request's connection, for its send queue: on a slow link the
	// transport takes the last megabytes of a body into the socket's
	// buffer at once, and they drain for longer than idle while the body
	// is not read again (explore25b F1). A queue that shrank since the
	// last look is progress too.
	var conn atomic.Value // of connBox
	var queued atomic.Int64
	queued.Store(-1)
	var timer *time.Timer
	timer = time.AfterFunc(g.idle, func() {
		if c, ok := conn.Load().(connBox); ok {
			if q, known := unsentBytes(c.Conn); known && q > 0 {
				if last := queued.Swap(int64(q)); last < 0 || int64(q) < last {
					timer.Reset(g.idle)
					return
				}
			}
		}
		cancel(stall)
	})
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		conn.Store(connBox{info.Conn})
	}})
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &sendBody{ReadCloser: req.Body, timer: timer, idle: g.idle, queued: &queued, length: req.ContentLength}
	}
	resp, err := g.next.Do(req)
	timer.Stop() // until the response body is waited for
	if err != nil {
		cancel(nil)
		if context.Cause(ctx) == error(stall) {
			return nil, stall
		}
		return nil, err
	}
	resp.Body = &receiveBody{rc: resp.Body, ctx: ctx, cancel: cancel, timer: timer, idle: g.idle, stall: stall}
	return resp, nil
}

// sendBody is a request body: each read by the transport means the bytes
// before went out, so it restarts the watch.
type sendBody struct {
	io.ReadCloser
	timer  *time.Timer
	idle   time.Duration
	queued *atomic.Int64 // the send queue last seen; -1 once more was taken
	length int64         // the body's length, or -1 or 0 when unknown
	taken  int64
	whole  bool
}

// minDrainRate is the slowest link a body taken whole into the socket
// buffers is allowed to drain at before the answer is due: the kernel may
// hold megabytes of it (in a proxy's buffers too, where the send queue
// does not show them), which a 1 Mbit/s link takes half a minute to send.
const minDrainRate = 64 << 10 // bytes per second

// maxDrainGrace bounds that allowance.
const maxDrainGrace = 5 * time.Minute

func (b *sendBody) Read(p []byte) (int, error) {
	if b.whole {
		return b.ReadCloser.Read(p) // the EOF after the last byte
	}
	b.timer.Reset(b.idle)
	b.queued.Store(-1)
	n, err := b.ReadCloser.Read(p)
	b.taken += int64(n)
	if !b.whole && (err == io.EOF || (b.length > 0 && b.taken >= b.length)) {
		// All of it is with the transport: what is still buffered
		// drains without another read.
		b.whole = true
		drain := time.Duration((b.taken+minDrainRate-1)/minDrainRate) * time.Second
		b.timer.Reset(b.idle + min(drain, maxDrainGrace))
	}
	return n, err
}

// connBox holds a net.Conn in an atomic.Value (which wants one concrete
// type).
type connBox struct{ net.Conn }

// receiveBody is a response body, watched only while a read waits on the
// server.
type receiveBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
	stall  *stallError
}

func (b *receiveBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && context.Cause(b.ctx) == error(b.stall) {
		err = b.stall
	}
	return n, err
}

func (b *receiveBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
