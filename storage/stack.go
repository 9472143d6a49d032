package storage

import (
	"log/slog"
	"time"
)

// StackOptions choose the decorators Stack puts around a backend.
type StackOptions struct {
	// Retry bounds the retry decorator; the zero value means
	// DefaultRetryPolicy. The retry layer is always there, and retries a
	// call under a deadline until that deadline (see RetryPolicy).
	Retry RetryPolicy
	// CallTimeout is the longest one call may take, retries included (the
	// command's --timeout; see RetryPolicy.CallTimeout); zero leaves only
	// the caller's context to bound a call.
	CallTimeout time.Duration
	// Log receives the decorators' retries and warnings; nil discards them.
	Log *slog.Logger
	// Counter, when set, counts every attempt that reaches the backend.
	Counter *Counter
	// ReadHidden adds the read-through of objects hidden by delete markers
	// (see ReadHidden). Restore and wal-fetch add it themselves for their
	// reads; other commands must see the repository as it is.
	ReadHidden bool
}

// Stack puts the decorators around b, in this one order, outermost first:
//
//	ReadHidden (optional) -> Retry -> Count (optional) -> b
//
// Read-through is outermost so that each of its calls (a Get, then a
// GetHidden) has its own retry budget, and a transient failure of the
// second is retried rather than turned into "missing". Retry sits above
// Count so the counter sees every attempt: each is a call that reaches the
// backend, one or more requests to the storage. The versioned calls (Versioned) go through the same layers: the
// result is Versioned exactly when b is.
//
// A layer added later in the same place (restore's ReadHidden over a
// backend a command opened) keeps this order: ReadHidden is outermost.
func Stack(b Backend, o StackOptions) Backend {
	if o.Counter != nil {
		b = Count(b, o.Counter)
	}
	policy := o.Retry
	if policy == (RetryPolicy{}) {
		policy = DefaultRetryPolicy
	}
	if o.CallTimeout > 0 {
		policy.CallTimeout = o.CallTimeout
	}
	b = WithRetry(b, policy, o.Log)
	if o.ReadHidden {
		b = ReadHidden(b, o.Log)
	}
	return b
}
