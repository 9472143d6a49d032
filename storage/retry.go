package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"
)

// RetryPolicy bounds the retry decorator. The caller's context deadline
// bounds it too: a retry never sleeps past the deadline.
type RetryPolicy struct {
	MaxAttempts int           // total attempts, at least 1
	BaseDelay   time.Duration // first backoff before jitter
	MaxDelay    time.Duration // backoff cap
}

// DefaultRetryPolicy suits archive_command: a few quick attempts, well
// inside the default command timeout.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second}

// Retry wraps a backend so transient failures are retried with exponential
// backoff and full jitter. Typed answers (not found, exists, locked) and
// permanent errors are returned at once. A Put is retried only when its
// reader can be rewound (io.Seeker); otherwise the first error is final and
// the caller reopens its source.
//
// An ErrExists from a retried conditional Put may be the echo of our own
// earlier attempt that succeeded on the server but whose answer was lost:
// callers settle it by comparing what is stored (wal-push compares sha256).
//
// Over a backend that keeps versions, WithRetry's result is also
// Versioned and retries ListHidden (under List's rule), GetHidden
// and Unhide: one retry budget for every call, versioned or not.
type Retry struct {
	Backend
	policy RetryPolicy
	log    *slog.Logger
}

var _ Backend = (*Retry)(nil)

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

func (r *Retry) do(ctx context.Context, op, key string, fn func() error) error {
	var err error
	for attempt := 1; ; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			if err != nil {
				return fmt.Errorf("%w (gave up: %v)", err, cerr)
			}
			return OpError(op, key, cerr)
		}
		err = fn()
		if err == nil || IsPermanent(err) || attempt >= r.policy.MaxAttempts {
			return err
		}
		delay := r.backoff(attempt)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return fmt.Errorf("%w (no time left to retry before the deadline)", err)
		}
		r.log.Debug("storage call failed, retrying", "op", op, "key", key, "attempt", attempt, "delay", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-t.C:
		}
	}
}

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
	seeker, ok := body.(io.Seeker)
	if !ok {
		return r.Backend.Put(ctx, key, body, opts)
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		return r.Backend.Put(ctx, key, body, opts)
	}
	first := true
	return r.do(ctx, "put", key, func() error {
		if !first {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return Permanent(fmt.Errorf("put %s: rewind for retry: %w", key, err))
			}
		}
		first = false
		return r.Backend.Put(ctx, key, body, opts)
	})
}

// Get retries opening the object; a failure mid-stream is the reader's.
func (r *Retry) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	return retryOpen(ctx, r, "get", key, r.Backend.Get)
}

// retryOpen runs open (Get, GetHidden) under the retry policy.
func retryOpen(ctx context.Context, r *Retry, op, key string, open func(context.Context, string) (io.ReadCloser, ObjectInfo, error)) (io.ReadCloser, ObjectInfo, error) {
	var rc io.ReadCloser
	var info ObjectInfo
	err := r.do(ctx, op, key, func() (err error) {
		rc, info, err = open(ctx, key)
		return err
	})
	return rc, info, err
}

func (r *Retry) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	var info ObjectInfo
	err := r.do(ctx, "stat", key, func() (err error) {
		info, err = r.Backend.Stat(ctx, key)
		return err
	})
	return info, err
}

// List is retried only while fn has not been called: once entries were
// delivered, a retry would deliver them twice, breaking the List contract.
func (r *Retry) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return retryListing(ctx, r, "list", prefix, r.Backend.List, fn)
}

// retryListing runs a listing under the retry policy, but only until it
// has delivered an entry (see List).
func retryListing[T any](ctx context.Context, r *Retry, op, prefix string, list func(context.Context, string, func(T) error) error, fn func(T) error) error {
	delivered := false
	var fnErr error
	return r.do(ctx, op, prefix, func() error {
		err := list(ctx, prefix, func(e T) error {
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
	return r.do(ctx, "delete", key, func() error { return r.Backend.Delete(ctx, key) })
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
	return r.do(ctx, "unhide", key, func() error { return r.v.Unhide(ctx, key) })
}
