package s3

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	timer := time.AfterFunc(g.idle, func() { cancel(stall) })
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &sendBody{ReadCloser: req.Body, timer: timer, idle: g.idle}
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
	timer *time.Timer
	idle  time.Duration
}

func (b *sendBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	return b.ReadCloser.Read(p)
}

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
