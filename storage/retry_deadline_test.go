package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// These tests time real retries. Their margins are wide so a loaded
// machine cannot fail them: they check that a call outlived the attempt
// count and ended near its deadline, never exact times.

// outagePolicy would give up after 3 attempts without a deadline; under
// one, attempts go on until it.
var outagePolicy = storage.RetryPolicy{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MinAttemptTime: time.Second}

// failFirst makes the first n calls of op fail with err: an outage that
// ends after n attempts.
func failFirst(f *storagetest.Fault, op storagetest.Op, n int64, err error) {
	var seen atomic.Int64
	f.Before(op, storagetest.AnyKey, func(context.Context, string) error {
		if seen.Add(1) <= n {
			return err
		}
		return nil
	})
}

// TestRetryRidesOutOutageShorterThanDeadline: under a deadline, a call
// keeps retrying a transient error well past MaxAttempts, and succeeds
// once the outage is over.
func TestRetryRidesOutOutageShorterThanDeadline(t *testing.T) {
	const outage = 12 // attempts that fail: four times MaxAttempts
	for _, op := range []storagetest.Op{storagetest.OpPut, storagetest.OpGet, storagetest.OpStat, storagetest.OpList, storagetest.OpDelete} {
		t.Run(string(op), func(t *testing.T) {
			inner := mem.New()
			if err := inner.Put(context.Background(), "k", strings.NewReader("hello"), storage.PutOptions{Size: 5}); err != nil {
				t.Fatal(err)
			}
			f := storagetest.NewFault(inner)
			failFirst(f, op, outage, errTransient)
			b := storage.WithRetry(f, outagePolicy, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var err error
			switch op {
			case storagetest.OpPut: // a rewindable body, read again on every attempt
				err = b.Put(ctx, "k", strings.NewReader("again"), storage.PutOptions{Size: 5})
			case storagetest.OpGet:
				var rc io.ReadCloser
				if rc, _, err = b.Get(ctx, "k"); err == nil {
					rc.Close()
				}
			case storagetest.OpStat:
				_, err = b.Stat(ctx, "k")
			case storagetest.OpList:
				err = b.List(ctx, "", func(storage.ObjectInfo) error { return nil })
			case storagetest.OpDelete:
				err = b.Delete(ctx, "k")
			}
			if err != nil {
				t.Fatalf("%s through an outage of %d failed attempts, under a 60s deadline: got %v, want success", op, outage, err)
			}
			if got := f.Calls(op); got != outage+1 {
				t.Fatalf("%s attempts: got %d, want %d (the outage, then success)", op, got, outage+1)
			}
			if op == storagetest.OpPut {
				rc, _, err := inner.Get(context.Background(), "k")
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				if got, _ := io.ReadAll(rc); string(got) != "again" {
					t.Fatalf("stored %q after %d retries, want %q", got, outage, "again")
				}
			}
		})
	}
}

// TestRetryWithoutDeadlineKeepsAttemptCount: without a deadline (long
// commands), MaxAttempts still bounds a call.
func TestRetryWithoutDeadlineKeepsAttemptCount(t *testing.T) {
	f := storagetest.NewFault(mem.New())
	f.Fail(storagetest.OpStat, storagetest.AnyKey, errTransient)
	_, err := storage.WithRetry(f, outagePolicy, nil).Stat(context.Background(), "k")
	if !errors.Is(err, errTransient) {
		t.Fatalf("Stat: got %v, want the transient error", err)
	}
	if got := f.Calls(storagetest.OpStat); got != outagePolicy.MaxAttempts {
		t.Fatalf("attempts without a deadline: got %d, want MaxAttempts (%d)", got, outagePolicy.MaxAttempts)
	}
}

// TestRetryOutageLongerThanDeadline: a call that never succeeds retries
// until its deadline, not for MaxAttempts, and then returns the storage's
// last error (not a bare "deadline exceeded", never "not found").
func TestRetryOutageLongerThanDeadline(t *testing.T) {
	const deadline = 1500 * time.Millisecond
	for _, tc := range []struct {
		name  string
		fault func(f *storagetest.Fault)
	}{
		{"refused", func(f *storagetest.Fault) {
			f.Fail(storagetest.OpGet, storagetest.AnyKey, errors.New("dial tcp 127.0.0.1:9000: connect: connection refused"))
		}},
		{"503 after a while", func(f *storagetest.Fault) {
			f.Delay(storagetest.OpGet, storagetest.AnyKey, 20*time.Millisecond)
			f.Fail(storagetest.OpGet, storagetest.AnyKey, errors.New("api error SlowDown: Please reduce your request rate (503)"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := storagetest.NewFault(mem.New())
			tc.fault(f)
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			_, _, err := storage.WithRetry(f, outagePolicy, nil).Get(ctx, "k")
			elapsed := time.Since(start)
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Get through an endless outage: got %v, want the storage's error, not ErrNotFound", err)
			}
			if !strings.Contains(err.Error(), "get k:") {
				t.Errorf("Get: got %q, want the last attempt's error (naming the operation and key)", err)
			}
			if elapsed > deadline+2*time.Second {
				t.Errorf("Get ended after %v, want by the %v deadline (plus a margin)", elapsed, deadline)
			}
			// It gives up at the latest when a quarter of the time is left
			// (MinAttemptTime capped at a quarter of the budget).
			if elapsed < deadline/2 {
				t.Errorf("Get ended after %v, want retries until near the %v deadline", elapsed, deadline)
			}
			if got := f.Calls(storagetest.OpGet); got <= 5 {
				t.Errorf("attempts: got %d, want more than 5 (the deadline, not MaxAttempts %d, bounds a call)", got, outagePolicy.MaxAttempts)
			}
		})
	}
}

// TestRetryStallEndsAtDeadline: an attempt that never returns (a server
// that accepts and never answers) ends with the call's deadline.
func TestRetryStallEndsAtDeadline(t *testing.T) {
	f := storagetest.NewFault(mem.New())
	f.Stall(storagetest.OpStat, storagetest.AnyKey)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := storage.WithRetry(f, outagePolicy, nil).Stat(ctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stat of a stalled backend: got %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("Stat of a stalled backend ended after %v, want about the 300ms deadline", elapsed)
	}
}

// TestRetryLastAttemptHasTime: no attempt starts with less than
// MinAttemptTime before the deadline; the time is left to the last one.
func TestRetryLastAttemptHasTime(t *testing.T) {
	const deadline = 4 * time.Second
	policy := storage.RetryPolicy{MaxAttempts: 3, BaseDelay: 50 * time.Millisecond, MaxDelay: 300 * time.Millisecond, MinAttemptTime: time.Second}
	f := storagetest.NewFault(mem.New())
	var mu sync.Mutex
	var leftAtStart []time.Duration
	f.Before(storagetest.OpStat, storagetest.AnyKey, func(ctx context.Context, _ string) error {
		dl, _ := ctx.Deadline()
		mu.Lock()
		leftAtStart = append(leftAtStart, time.Until(dl))
		mu.Unlock()
		return errTransient
	})
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := storage.WithRetry(f, policy, nil).Stat(ctx, "k"); !errors.Is(err, errTransient) {
		t.Fatalf("Stat: got %v, want the transient error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leftAtStart) <= 5 {
		t.Fatalf("attempts: got %d, want more than 5", len(leftAtStart))
	}
	// A second is kept for the last attempt; half of it is margin for a
	// timer that fires late on a loaded machine.
	for i, left := range leftAtStart {
		if left < policy.MinAttemptTime/2 {
			t.Errorf("attempt %d started %v before the deadline, want at least MinAttemptTime (%v)", i+1, left, policy.MinAttemptTime)
		}
	}
}

// TestRetryTypedAnswersUnderDeadline: typed answers and permanent errors
// are not retried, however much time the deadline leaves.
func TestRetryTypedAnswersUnderDeadline(t *testing.T) {
	for _, answer := range []error{storage.ErrNotFound, storage.ErrExists, storage.ErrLocked, storage.ErrUnsupported, storage.Permanent(errTransient)} {
		t.Run(answer.Error(), func(t *testing.T) {
			f := storagetest.NewFault(mem.New())
			f.Fail(storagetest.OpDelete, storagetest.AnyKey, answer)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := storage.WithRetry(f, outagePolicy, nil).Delete(ctx, "k")
			if !errors.Is(err, answer) {
				t.Fatalf("Delete: got %v, want %v", err, answer)
			}
			if got := f.Calls(storagetest.OpDelete); got != 1 {
				t.Fatalf("attempts: got %d, want 1", got)
			}
		})
	}
}

// listThenFail lists its backend, then fails: a listing whose connection
// broke after it delivered entries.
type listThenFail struct {
	storage.Backend
	calls int
}

func (l *listThenFail) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	l.calls++
	if err := l.Backend.List(ctx, prefix, fn); err != nil {
		return err
	}
	return errTransient
}

// TestRetryListUnderDeadlineNotRepeatedAfterDelivery: List's rule holds
// under a deadline too: once an entry was delivered, a failure is final.
func TestRetryListUnderDeadlineNotRepeatedAfterDelivery(t *testing.T) {
	inner := mem.New()
	for i := range 3 {
		if err := inner.Put(context.Background(), fmt.Sprintf("k%d", i), strings.NewReader("x"), storage.PutOptions{Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	l := &listThenFail{Backend: inner}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	delivered := 0
	err := storage.WithRetry(l, outagePolicy, nil).List(ctx, "", func(storage.ObjectInfo) error { delivered++; return nil })
	if !errors.Is(err, errTransient) {
		t.Fatalf("List: got %v, want the listing's error", err)
	}
	if delivered != 3 || l.calls != 1 {
		t.Fatalf("entries delivered: got %d over %d listings, want 3 over 1", delivered, l.calls)
	}
}
