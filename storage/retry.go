package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// RetryPolicy bounds the retry decorator. A call whose context has a
// deadline is retried until that deadline, however many attempts that
// takes: the caller's deadline is the one budget (--timeout), so an outage
// shorter than it is ridden out. A call without a deadline (the calls of
// long commands that bound the job by other means) gets MaxAttempts.
// Either way a retry never sleeps past the deadline.
type RetryPolicy struct {
	MaxAttempts int           // total attempts of a call without a deadline, at least 1
	BaseDelay   time.Duration // first backoff before jitter
	MaxDelay    time.Duration // backoff cap
	// MinAttemptTime is the least time before the deadline worth another
	// attempt (capped at a quarter of what the call had when it started,
	// so short deadlines still retry): an attempt the deadline would cut
	// at once only replaces the storage's error with "deadline exceeded".
	MinAttemptTime time.Duration
	// CallTimeout, when set, is the longest one call may take, retries
	// included (the command's --timeout): a call gets a deadline this far
	// ahead unless its context has an earlier one. It bounds the request
	// part of a call, never a transfer that takes as long as the data is
	// big: a Get's deadline covers opening the object, not reading its
	// body; a List's covers the listing until its first entry is
	// delivered; a Put of more than 1 MiB (smallBody), or of a stream that
	// cannot be rewound, is not bounded as a whole. The backend bounds
	// those by their progress (the S3 backend abandons a request that
	// moves no byte for its stall timeout).
	CallTimeout time.Duration
	// WarnAfter: a call still failing this long after it started logs one
	// warning, so an outage that retries ride out shows in the log (for
	// wal-fetch, PostgreSQL's) while it lasts; a brief blip stays at
	// debug level. 0 never warns.
	WarnAfter time.Duration
}

// DefaultRetryPolicy: backoff from 200ms up to 5s; under a deadline,
// attempts go on until it, each given at least a second.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second, MinAttemptTime: time.Second, WarnAfter: 5 * time.Second}

// Retry wraps a backend so transient failures (refused or reset
// connections, timeouts, 5xx, throttling: every error not typed or
// permanent) are retried with exponential backoff and full jitter, until
// the call's deadline (see RetryPolicy). Typed answers (not found, exists, locked) and
// permanent errors are returned at once. A Put is retried only when its
// reader can be rewound (io.Seeker); otherwise the first error is final and
// the caller reopens its source.
//
// An ErrExists from a retried conditional Put may be the echo of our own
// earlier attempt that succeeded on the server but whose answer was lost:
// callers settle it by comparing what is stored (wal-push compares sha256).
//
// Over a backend that keeps versions, WithRetry's result is also
// Versioned and retries ListHidden (under List's rule), GetHidden,
// Unhide, Versions and GetVersion: one retry budget for every call,
// versioned or not.
type Retry struct {
	Backend
	policy RetryPolicy
	log    *slog.Logger
	// warnedAt is when a call last warned that the storage keeps
	// failing (Unix nanoseconds): during an outage every call in flight
	// (a push-ahead's dozens) would say the same within a second
	// (explore25b F6), so the others say it at debug level until
	// WarnAfter has passed again.
	warnedAt atomic.Int64
}

var _ Backend = (*Retry)(nil)

// mayWarn says whether a call may warn that the storage keeps failing:
// none did in the last WarnAfter.
func (r *Retry) mayWarn() bool {
	now := time.Now().UnixNano()
	last := r.warnedAt.Load()
	return now-last >= int64(r.policy.WarnAfter) && r.warnedAt.CompareAndSwap(last, now)
}

// WithRetry returns b wrapped in the retry decorator. When b keeps old
// versions (AsVersioned), so does the result, and its versioned calls are
// retried under the same policy.
func WithRetry(b Backend, policy RetryPolicy, log *slog.Logger) Backend {
	if policy.MaxAttempts < 1 {
		policy.MaxAttempts = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Retry{Backend: b, policy: policy, log: log}
	if v, ok := AsVersioned(b); ok {
		return &retryVersioned{Retry: r, v: v}
	}
	return r
}

// Unwrap returns the decorated backend.
func (r *Retry) Unwrap() Backend { return r.Backend }

// bound gives ctx the call's deadline (see CallTimeout).
func (r *Retry) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d := r.policy.CallTimeout; d > 0 {
		return context.WithTimeout(ctx, d) // an earlier deadline of ctx stays
	}
	return ctx, func() {}
}

// boundUntilOpen is bound for a call that returns a stream (a Get's body,
// a List's entries): the deadline holds until opened is called, and then
// only ctx bounds the stream. The returned context reports the call's
// deadline, for do to plan its retries by; cancel releases it.
func (r *Retry) boundUntilOpen(ctx context.Context) (octx context.Context, opened func() bool, cancel context.CancelFunc) {
	d := r.policy.CallTimeout
	if d <= 0 {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, func() bool { return ctx.Err() == nil }, cancel
	}
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	cctx, cancelCause := context.WithCancelCause(ctx)
	timer := time.AfterFunc(time.Until(deadline), func() { cancelCause(context.DeadlineExceeded) })
	oc := &openContext{Context: cctx, deadline: deadline}
	// opened stops the timer; false when it fired first (the stream is
	// already cut).
	opened = func() bool {
		oc.opened.Store(true)
		return timer.Stop() && cctx.Err() == nil
	}
	octx = oc
	return octx, opened, func() { timer.Stop(); cancelCause(context.Canceled) }
}

// openContext is the context of a call that returns a stream: until the
// stream is opened it reports the call's deadline and, once the deadline
// cut the call, the error a deadline gives (context.DeadlineExceeded).
type openContext struct {
	context.Context
	deadline time.Time
	opened   atomic.Bool
}

func (c *openContext) Deadline() (time.Time, bool) {
	if c.opened.Load() {
		return c.Context.Deadline()
	}
	return c.deadline, true
}

func (c *openContext) Err() error {
	if err := c.Context.Err(); err != nil {
		if cause := context.Cause(c.Context); errors.Is(cause, context.DeadlineExceeded) {
			return cause
		}
		return err
	}
	return nil
}

// do runs fn under the policy, within the call's deadline (bound).
func (r *Retry) do(ctx context.Context, op, key string, fn func(context.Context) error) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	return r.attempts(ctx, op, key, fn)
}

// attempts calls fn until it succeeds, fails for good, or ctx leaves no
// time for another attempt.
func (r *Retry) attempts(ctx context.Context, op, key string, fn func(context.Context) error) error {
	deadline, hasDeadline := ctx.Deadline()
	// floor: the least time left worth another attempt (see MinAttemptTime).
	floor := min(r.policy.MinAttemptTime, time.Until(deadline)/4)
	start := time.Now()
	warned := false
	var err error
	for attempt := 1; ; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			if err != nil {
				return fmt.Errorf("%w (gave up after %d attempts in %s: %v)", err, attempt-1, since(start), cerr)
			}
			return OpError(op, key, cerr)
		}
		err = fn(ctx)
		if err == nil || IsPermanent(err) {
			return err
		}
		if !hasDeadline && attempt >= r.policy.MaxAttempts {
			return err
		}
		delay := r.backoff(attempt)
		if hasDeadline {
			// Sleep less rather than skip the last attempt that still has
			// time to run; give up when none has.
			left := time.Until(deadline) - floor
			if left <= 0 {
				return fmt.Errorf("%w (gave up after %d attempts in %s: no time left to retry before the deadline)", err, attempt, since(start))
			}
			delay = min(delay, left)
		}
		if failing := time.Since(start); !warned && r.policy.WarnAfter > 0 && failing >= r.policy.WarnAfter && r.mayWarn() {
			warned = true
			CallLog(ctx, r.log).Warn("storage keeps failing, still retrying", "op", op, "key", key, "attempts", attempt, "for", failing.Round(time.Millisecond), "err", err)
		} else {
			CallLog(ctx, r.log).Debug("storage call failed, retrying", "op", op, "key", key, "attempt", attempt, "delay", delay, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up after %d attempts in %s: %v)", err, attempt, since(start), ctx.Err())
		case <-t.C:
		}
	}
}

// since is the time since start, rounded for a message.
func since(start time.Time) time.Duration { return time.Since(start).Round(time.Millisecond) }

// backoff is exponential with full jitter: uniform in (0, min(cap, base*2^n)].
func (r *Retry) backoff(attempt int) time.Duration {
	d := r.policy.BaseDelay << (attempt - 1)
	if d <= 0 || d > r.policy.MaxDelay {
		d = r.policy.MaxDelay
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d))) + 1
}

// Put retries only when body can be rewound to where it started.
func (r *Retry) Put(ctx context.Context, key string, body io.Reader, opts PutOptions) error {
	if opts.IfNotExists && opts.Token == "" {
		// One token for every attempt: an attempt refused over an earlier
		// one's object, whose answer was lost, is told apart.
		opts.Token = NewPutToken()
	}
	seeker, ok := body.(io.Seeker)
	if !ok {
		return r.Backend.Put(ctx, key, body, opts)
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		return r.Backend.Put(ctx, key, body, opts)
	}
	first := true
	put := func(ctx context.Context) error {
		if !first {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return Permanent(fmt.Errorf("put %s: rewind for retry: %w", key, err))
			}
		}
		first = false
		return r.Backend.Put(ctx, key, body, opts)
	}
	if opts.Size < 0 || opts.Size > smallBody {
		// A transfer: bounded by its progress, not by the call timeout
		// (see CallTimeout).
		return r.attempts(ctx, "put", key, put)
	}
	return r.do(ctx, "put", key, put)
}

// Get retries opening the object, within the call's deadline. An object
// up to smallBody is read whole within the call, so a body broken mid-read
// is retried too; a bigger body streams, its failures are the reader's,
// and reading it is bounded by the caller's context only (see
// CallTimeout).
func (r *Retry) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	return retryOpen(ctx, r, "get", key, r.Backend.Get)
}

// retryOpen runs open (Get, GetHidden, GetVersion) under the retry policy.
func retryOpen(ctx context.Context, r *Retry, op, key string, open func(context.Context, string) (io.ReadCloser, ObjectInfo, error)) (io.ReadCloser, ObjectInfo, error) {
	octx, opened, cancel := r.boundUntilOpen(ctx)
	var rc io.ReadCloser
	var info ObjectInfo
	err := r.attempts(octx, op, key, func(ctx context.Context) (err error) {
		if rc, info, err = open(ctx, key); err != nil {
			return err
		}
		rc, err = readSmall(rc, info.Size)
		return err
	})
	if err == nil && !opened() {
		// The deadline passed just as the object opened: its body is cut.
		rc.Close()
		rc, err = nil, OpError(op, key, octx.Err())
	}
	if err != nil {
		cancel()
		return nil, ObjectInfo{}, err
	}
	return &openBody{ReadCloser: rc, cancel: cancel}, info, nil
}

// smallBody is the largest object a Get reads whole within its call, so
// that a body broken mid-read is retried like any other failure: the
// repository's own records (walvault.json, manifests, marks, history and
// backup-label files) are this small, and their readers would otherwise
// fail on one reset connection.
const smallBody = 1 << 20

// readSmall reads a body of size bytes into memory when it is small (a
// size of 0 may mean "unknown": what comes past smallBody then streams
// from rc).
func readSmall(rc io.ReadCloser, size int64) (io.ReadCloser, error) {
	if size < 0 || size > smallBody {
		return rc, nil
	}
	data, err := io.ReadAll(io.LimitReader(rc, smallBody+1))
	if err != nil {
		rc.Close()
		return nil, err
	}
	if len(data) > smallBody {
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(data), rc), rc}, nil
	}
	rc.Close()
	return io.NopCloser(bytes.NewReader(data)), nil
}

// openBody is a body opened under boundUntilOpen: closing it releases the
// call's context.
type openBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *openBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func (r *Retry) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	var info ObjectInfo
	err := r.do(ctx, "stat", key, func(ctx context.Context) (err error) {
		info, err = r.Backend.Stat(ctx, key)
		return err
	})
	return info, err
}

// List is retried only while fn has not been called: once entries were
// delivered, a retry would deliver them twice, breaking the List contract.
// The call's deadline holds until the first entry is delivered: a long
// listing's later pages are bounded by the caller's context and the
// backend's own stall timeout.
func (r *Retry) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return retryListing(ctx, r, "list", prefix, r.Backend.List, fn)
}

// ListAfter retries as List does.
func (r *Retry) ListAfter(ctx context.Context, prefix, after string, fn func(ObjectInfo) error) error {
	return retryListing(ctx, r, "list", prefix, func(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
		return ListAfter(ctx, r.Backend, prefix, after, fn)
	}, fn)
}

// retryListing runs a listing under the retry policy, but only until it
// has delivered an entry (see List).
func retryListing[T any](ctx context.Context, r *Retry, op, prefix string, list func(context.Context, string, func(T) error) error, fn func(T) error) error {
	octx, opened, cancel := r.boundUntilOpen(ctx)
	defer cancel()
	delivered := false
	var fnErr error
	return r.attempts(octx, op, prefix, func(ctx context.Context) error {
		err := list(ctx, prefix, func(e T) error {
			if !delivered && !opened() {
				return OpError(op, prefix, octx.Err()) // cut at the deadline
			}
			delivered = true
			if err := fn(e); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		if err != nil && (delivered || (fnErr != nil && errors.Is(err, fnErr))) {
			return Permanent(err)
		}
		return err
	})
}

func (r *Retry) Delete(ctx context.Context, key string) error {
	return r.do(ctx, "delete", key, func(ctx context.Context) error { return r.Backend.Delete(ctx, key) })
}

// retryVersioned is the retry decorator over a backend that keeps old
// versions: its versioned calls get the same retry budget as the others.
type retryVersioned struct {
	*Retry
	v Versioned
}

var _ Versioned = (*retryVersioned)(nil)

// ListHidden follows List's rule: no retry once an entry was delivered.
func (r *retryVersioned) ListHidden(ctx context.Context, prefix string, fn func(HiddenObject) error) error {
	return retryListing(ctx, r.Retry, "list hidden", prefix, r.v.ListHidden, fn)
}

func (r *retryVersioned) GetHidden(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	return retryOpen(ctx, r.Retry, "get hidden", key, r.v.GetHidden)
}

// Unhide: an ErrNotFound after a retry may be the echo of an earlier
// attempt that succeeded but whose answer was lost; the key is visible
// either way, which callers (repair) check by reading it.
func (r *retryVersioned) Unhide(ctx context.Context, key string) error {
	return r.do(ctx, "unhide", key, func(ctx context.Context) error { return r.v.Unhide(ctx, key) })
}

func (r *retryVersioned) Versions(ctx context.Context, key string) ([]ObjectVersion, error) {
	var vs []ObjectVersion
	err := r.do(ctx, "versions", key, func(ctx context.Context) (err error) {
		vs, err = r.v.Versions(ctx, key)
		return err
	})
	return vs, err
}

func (r *retryVersioned) GetVersion(ctx context.Context, key, versionID string) (io.ReadCloser, ObjectInfo, error) {
	return retryOpen(ctx, r.Retry, "get version", key, func(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
		return r.v.GetVersion(ctx, key, versionID)
	})
}
