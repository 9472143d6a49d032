package s3

import (
	"context"
	"sync"
	"time"
)

// settledCheck asks a question about the bucket at most once per Backend
// once it is answered "yes" (check returns nil), and can ask it beside the
// Backend's first HEAD (startEarly), so that the call that needs the answer
// pays no round trip of its own. A "no" or a failure to answer is asked
// again by the next call that waits for it.
//
// Two questions: does the bucket exist (bucketMissing: a HEAD 404 has no
// body, so it may mean a missing bucket, a mistyped repository URL that
// must never read as "no such segment" and end a recovery early, as well
// as a missing key; once found, a bucket stays, since it can only be
// deleted once emptied), and has it Object Lock (askObjectLock, before a
// write with retention).
type settledCheck struct {
	mu      sync.Mutex
	found   bool          // check answered nil
	running chan struct{} // closed when the check in flight ends; nil when none is
	err     error         // the answer of the last check that ended, when not found
	early   bool          // a check was started before any 404 asked for it
}

// startEarly begins the Backend's first check beside its first HEAD; later
// checks only start when a call waits for one, so a server that throttles
// or fails is not asked again with every retried HEAD.
func (c *settledCheck) startEarly(ctx context.Context, check func(context.Context) error) {
	c.mu.Lock()
	early := c.early
	c.early = true
	c.mu.Unlock()
	if !early {
		c.start(ctx, check)
	}
}

// bucketCheckTimeout bounds a check, which outlives the call that started
// it so that a later 404 can use its answer.
const bucketCheckTimeout = 30 * time.Second

// start begins a check unless the bucket was found or a check is running.
func (c *settledCheck) start(ctx context.Context, check func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found || c.running != nil {
		return
	}
	done := make(chan struct{})
	c.running = done
	go func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bucketCheckTimeout)
		err := check(cctx)
		cancel()
		c.mu.Lock()
		c.found, c.err, c.running = err == nil, err, nil
		c.mu.Unlock()
		close(done)
	}()
}

// wait returns nil once a check answered nil, else the answer of a check
// that ended after wait was called: its "no" (such as the permanent
// "bucket does not exist"), or the error that kept it from being answered.
func (c *settledCheck) wait(ctx context.Context, check func(context.Context) error) error {
	c.start(ctx, check)
	c.mu.Lock()
	found, running := c.found, c.running
	c.mu.Unlock()
	if !found && running != nil {
		select {
		case <-running:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found {
		return nil
	}
	return c.err
}
