package s3

import (
	"context"
	"sync"
	"time"
)

// bucketCheck settles, at most once per Backend, whether the bucket
// exists: a HEAD 404 has no body, so it may mean a missing bucket (a
// mistyped repository URL, which must never read as "no such segment" and
// end a recovery early) as well as a missing key. The first Stat starts
// the check beside its HEAD, so a key that is absent costs one round
// trip, not two (startEarly); once HeadBucket has found the bucket the answer stands
// for the Backend's life (a bucket can only be deleted once emptied).
// A check that failed is asked again by the next 404.
type bucketCheck struct {
	mu      sync.Mutex
	found   bool          // HeadBucket found the bucket (or may not be asked, see bucketMissing)
	running chan struct{} // closed when the check in flight ends; nil when none is
	err     error         // the answer of the last check that ended, when not found
	early   bool          // a check was started before any 404 asked for it
}

// startEarly begins the Backend's first check beside its first HEAD; later
// checks only start when a 404 needs one, so a server that throttles or
// fails is not sent a HeadBucket with every retried HEAD.
func (c *bucketCheck) startEarly(ctx context.Context, check func(context.Context) error) {
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
func (c *bucketCheck) start(ctx context.Context, check func(context.Context) error) {
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

// wait returns nil when the bucket exists, else the answer of a check that
// ended after wait was called: the permanent "bucket does not exist"
// error, or the error that kept it from being answered.
func (c *bucketCheck) wait(ctx context.Context, check func(context.Context) error) error {
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
