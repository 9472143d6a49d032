package storage_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// callTimeoutPolicy bounds each call by 300ms, retries included.
var callTimeoutPolicy = storage.RetryPolicy{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MinAttemptTime: time.Second, CallTimeout: 300 * time.Millisecond}

// TestCallTimeoutBoundsEveryCall: under a context without a deadline (a
// long command's), every call against a stalled storage ends at the call
// timeout with context.DeadlineExceeded, instead of hanging.
func TestCallTimeoutBoundsEveryCall(t *testing.T) {
	for _, op := range []storagetest.Op{storagetest.OpPut, storagetest.OpGet, storagetest.OpStat, storagetest.OpList, storagetest.OpDelete} {
		t.Run(string(op), func(t *testing.T) {
			f := storagetest.NewFault(mem.New())
			f.Stall(op, storagetest.AnyKey)
			b := storage.Stack(f, storage.StackOptions{Retry: callTimeoutPolicy, CallTimeout: callTimeoutPolicy.CallTimeout})
			ctx := context.Background()
			start := time.Now()
			var err error
			switch op {
			case storagetest.OpPut:
				err = b.Put(ctx, "k", strings.NewReader("hello"), storage.PutOptions{Size: 5})
			case storagetest.OpGet:
				_, _, err = b.Get(ctx, "k")
			case storagetest.OpStat:
				_, err = b.Stat(ctx, "k")
			case storagetest.OpList:
				err = b.List(ctx, "", func(storage.ObjectInfo) error { return nil })
			case storagetest.OpDelete:
				err = b.Delete(ctx, "k")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s of a stalled storage: got %v, want context.DeadlineExceeded", op, err)
			}
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Fatalf("%s of a stalled storage ended after %v, want about the 300ms call timeout", op, elapsed)
			}
		})
	}
}

// TestCallTimeoutIsPerCall: the timeout bounds each call, never the job: a
// command making calls for longer than it in total is not cut.
func TestCallTimeoutIsPerCall(t *testing.T) {
	inner := mem.New()
	if err := inner.Put(context.Background(), "k", strings.NewReader("hello"), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}
	f := storagetest.NewFault(inner)
	f.Delay(storagetest.OpStat, storagetest.AnyKey, 100*time.Millisecond)
	b := storage.Stack(f, storage.StackOptions{Retry: callTimeoutPolicy, CallTimeout: callTimeoutPolicy.CallTimeout})
	for i := range 6 { // 600ms in all, twice the call timeout
		if _, err := b.Stat(context.Background(), "k"); err != nil {
			t.Fatalf("stat %d: %v", i, err)
		}
	}
}

// TestCallTimeoutOutageRiddenOutWithinIt: the call timeout is the retry
// budget: a transient outage shorter than it is ridden out.
func TestCallTimeoutOutageRiddenOutWithinIt(t *testing.T) {
	inner := mem.New()
	if err := inner.Put(context.Background(), "k", strings.NewReader("hello"), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}
	f := storagetest.NewFault(inner)
	failFirst(f, storagetest.OpStat, 8, errTransient) // more than MaxAttempts
	policy := callTimeoutPolicy
	policy.CallTimeout = 20 * time.Second
	b := storage.Stack(f, storage.StackOptions{Retry: policy, CallTimeout: policy.CallTimeout})
	if _, err := b.Stat(context.Background(), "k"); err != nil {
		t.Fatalf("stat through an outage of 8 attempts, under a 20s call timeout: %v", err)
	}
}

// ctxBody is a storage whose bodies fail once the context of their Get
// ends, as an HTTP body does.
type ctxBody struct{ storage.Backend }

func (c ctxBody) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := c.Backend.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	return ctxReader{ctx: ctx, ReadCloser: rc}, info, nil
}

type ctxReader struct {
	ctx context.Context
	io.ReadCloser
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.ReadCloser.Read(p)
}

// TestCallTimeoutDoesNotCutBody: the call timeout bounds opening an
// object, not reading it: a body read slowly, past the timeout, is read
// whole; closing it releases the call. The object is bigger than what a
// Get reads within its call.
func TestCallTimeoutDoesNotCutBody(t *testing.T) {
	inner := mem.New()
	big := strings.Repeat("walvault", 1<<18) // 2 MiB
	if err := inner.Put(context.Background(), "k", strings.NewReader(big), storage.PutOptions{Size: int64(len(big))}); err != nil {
		t.Fatal(err)
	}
	policy := callTimeoutPolicy
	policy.CallTimeout = 100 * time.Millisecond
	b := storage.Stack(ctxBody{inner}, storage.StackOptions{Retry: policy, CallTimeout: policy.CallTimeout})
	rc, _, err := b.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != big {
		t.Fatalf("reading a body past the call timeout: %d bytes, %v; want %d", len(got), err, len(big))
	}
	rc.Close()

	// The caller's own deadline still bounds the body (wal-fetch's whole
	// fetch).
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rc, _, err = b.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	time.Sleep(100 * time.Millisecond)
	if _, err := io.ReadAll(rc); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("reading a body past the caller's deadline: got %v, want context.DeadlineExceeded", err)
	}
}

// TestCallTimeoutDoesNotCutLongListing: a listing is bounded until its
// first entry; delivering the rest may take longer than the call timeout.
func TestCallTimeoutDoesNotCutLongListing(t *testing.T) {
	inner := mem.New()
	for _, k := range []string{"a", "b", "c"} {
		if err := inner.Put(context.Background(), k, strings.NewReader(k), storage.PutOptions{Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	policy := callTimeoutPolicy
	policy.CallTimeout = 100 * time.Millisecond
	b := storage.Stack(inner, storage.StackOptions{Retry: policy, CallTimeout: policy.CallTimeout})
	var got []string
	err := b.List(context.Background(), "", func(o storage.ObjectInfo) error {
		got = append(got, o.Key)
		time.Sleep(80 * time.Millisecond) // 240ms in all
		return nil
	})
	if err != nil || strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("slow listing under a 100ms call timeout: %q, %v; want a,b,c", got, err)
	}
}

// breakOnce breaks the first body Get returns, after one byte; every later
// one is whole.
type breakOnce struct {
	storage.Backend
	gets atomic.Int32
}

func (b *breakOnce) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := b.Backend.Get(ctx, key)
	if err != nil || b.gets.Add(1) > 1 {
		return rc, info, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, 1), iotest.ErrReader(errTransient)), rc}, info, nil
}

// TestRetrySmallBodyBrokenMidRead: a small object (the repository's own
// records) is read whole within its call, so a body that breaks mid-read
// is fetched again like any transient failure.
func TestRetrySmallBodyBrokenMidRead(t *testing.T) {
	inner := mem.New()
	if err := inner.Put(context.Background(), "walvault.json", strings.NewReader(`{"a":1}`), storage.PutOptions{Size: 7}); err != nil {
		t.Fatal(err)
	}
	b := &breakOnce{Backend: inner}
	rc, _, err := storage.Stack(b, storage.StackOptions{Retry: callTimeoutPolicy, CallTimeout: 10 * time.Second}).Get(context.Background(), "walvault.json")
	if err != nil {
		t.Fatalf("get of a small object whose first body broke: %v", err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || string(got) != `{"a":1}` {
		t.Fatalf("read %q, %v; want the whole object", got, err)
	}
	if n := b.gets.Load(); n != 2 {
		t.Fatalf("%d Gets, want 2 (broken, then whole)", n)
	}
}

// TestCallTimeoutDoesNotCutBigPut: a Put bigger than a record is a
// transfer, bounded by its progress (the backend's stall timeout), not by
// the call timeout; a small one is a call.
func TestCallTimeoutDoesNotCutBigPut(t *testing.T) {
	f := storagetest.NewFault(mem.New())
	f.Delay(storagetest.OpPut, storagetest.AnyKey, 300*time.Millisecond)
	policy := callTimeoutPolicy
	policy.CallTimeout = 100 * time.Millisecond
	b := storage.Stack(f, storage.StackOptions{Retry: policy, CallTimeout: policy.CallTimeout})
	big := strings.Repeat("walvault", 1<<18) // 2 MiB
	if err := b.Put(context.Background(), "big", strings.NewReader(big), storage.PutOptions{Size: int64(len(big))}); err != nil {
		t.Fatalf("a 2 MiB put taking longer than the call timeout: %v", err)
	}
	if err := b.Put(context.Background(), "small", strings.NewReader("x"), storage.PutOptions{Size: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a small put taking longer than the call timeout: got %v, want context.DeadlineExceeded", err)
	}
}
