package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// flaky fails the first failures calls of every method with err, then
// answers from one stored object.
type flaky struct {
	failures int
	err      error
	calls    int
	body     []byte
	failList bool
}

func (f *flaky) fail() error {
	f.calls++
	if f.calls <= f.failures {
		return f.err
	}
	return nil
}

func (f *flaky) Put(_ context.Context, _ string, r io.Reader, _ PutOptions) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := f.fail(); err != nil {
		return err
	}
	f.body = b
	return nil
}

func (f *flaky) Get(_ context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return nil, ObjectInfo{}, err
	}
	return io.NopCloser(bytes.NewReader(f.body)), ObjectInfo{Key: key, Size: int64(len(f.body))}, nil
}

func (f *flaky) Stat(_ context.Context, key string) (ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Key: key}, nil
}

func (f *flaky) List(_ context.Context, _ string, fn func(ObjectInfo) error) error {
	f.calls++
	if err := fn(ObjectInfo{Key: "a"}); err != nil {
		return err
	}
	if f.failList {
		return f.err
	}
	return nil
}

func (f *flaky) Delete(context.Context, string) error { return f.fail() }
func (f *flaky) Location() string                     { return "flaky://" }
func (f *flaky) Close() error                         { return nil }

var fastPolicy = RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

func TestRetry(t *testing.T) {
	transient := errors.New("connection reset")
	tests := []struct {
		name      string
		failures  int
		err       error
		wantCalls int
		wantErr   error
	}{
		{"transient then success", 2, transient, 3, nil},
		{"transient past the attempt limit", 10, transient, 4, transient},
		{"not found is an answer", 10, ErrNotFound, 1, ErrNotFound},
		{"exists is an answer", 10, ErrExists, 1, ErrExists},
		{"locked is an answer", 10, ErrLocked, 1, ErrLocked},
		{"permanent is not retried", 10, Permanent(transient), 1, transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &flaky{failures: tc.failures, err: tc.err}
			_, err := WithRetry(f, fastPolicy, nil).Stat(context.Background(), "k")
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if f.calls != tc.wantCalls {
				t.Fatalf("calls = %d, want %d", f.calls, tc.wantCalls)
			}
		})
	}
}

func TestRetryPutRewindsSeekableBody(t *testing.T) {
	f := &flaky{failures: 2, err: errors.New("503")}
	err := WithRetry(f, fastPolicy, nil).Put(context.Background(), "k", strings.NewReader("hello"), PutOptions{})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if got := string(f.body); got != "hello" {
		t.Fatalf("stored %q after retries, want %q", got, "hello")
	}
}

func TestRetryPutDoesNotRetryStream(t *testing.T) {
	f := &flaky{failures: 1, err: errors.New("503")}
	stream := io.MultiReader(strings.NewReader("hello")) // not an io.Seeker
	err := WithRetry(f, fastPolicy, nil).Put(context.Background(), "k", stream, PutOptions{})
	if err == nil || f.calls != 1 {
		t.Fatalf("err = %v after %d calls, want the first error after 1 call", err, f.calls)
	}
}

func TestRetryStopsAtDeadline(t *testing.T) {
	f := &flaky{failures: 100, err: errors.New("timeout")}
	policy := RetryPolicy{MaxAttempts: 100, BaseDelay: 50 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := WithRetry(f, policy, nil).Stat(ctx, "k")
	if err == nil {
		t.Fatal("want an error once the deadline passes")
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("gave up after %v, want about the 120ms deadline", elapsed)
	}
}

// TestRetryWarnsOnceWhileFailing: a call that keeps failing past WarnAfter
// says so once at warning level; a brief failure stays at debug level.
func TestRetryWarnsOnceWhileFailing(t *testing.T) {
	policy := RetryPolicy{MaxAttempts: 100, BaseDelay: 5 * time.Millisecond, MaxDelay: 5 * time.Millisecond, WarnAfter: 40 * time.Millisecond}
	for _, tc := range []struct {
		name     string
		failures int
		warnings int
	}{
		{"outage", 30, 1},
		{"blip", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
			f := &flaky{failures: tc.failures, err: errors.New("connection refused")}
			if _, err := WithRetry(f, policy, log).Stat(context.Background(), "wal/k"); err != nil {
				t.Fatalf("stat: %v", err)
			}
			if got := strings.Count(logged.String(), "level=WARN"); got != tc.warnings {
				t.Fatalf("%d warnings after %d failures, want %d:\n%s", got, tc.failures, tc.warnings, logged.String())
			}
			if tc.warnings > 0 && (!strings.Contains(logged.String(), "wal/k") || !strings.Contains(logged.String(), "connection refused")) {
				t.Fatalf("the warning names neither the key nor the error:\n%s", logged.String())
			}
		})
	}
}

func TestRetryCancelledContextMakesNoCall(t *testing.T) {
	f := &flaky{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WithRetry(f, fastPolicy, nil).Stat(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if f.calls != 0 {
		t.Fatalf("calls = %d, want 0", f.calls)
	}
}

func TestRetryListNotRepeatedAfterDelivery(t *testing.T) {
	f := &flaky{err: errors.New("reset"), failList: true}
	n := 0
	err := WithRetry(f, fastPolicy, nil).List(context.Background(), "", func(ObjectInfo) error { n++; return nil })
	if err == nil {
		t.Fatal("want the list error")
	}
	if n != 1 || f.calls != 1 {
		t.Fatalf("fn called %d times over %d list calls, want 1 and 1", n, f.calls)
	}
}

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		key     string
		wantErr bool
	}{
		{"wal/00000001/000000010000000000000001.lz4", false},
		{"walvault.json", false},
		{"", true}, {"/a", true}, {"a/", true}, {"a//b", true}, {"../x", true}, {"a/./b", true}, {"a\\b", true},
	} {
		if err := ValidateKey(tc.key); (err != nil) != tc.wantErr {
			t.Errorf("ValidateKey(%q) = %v, wantErr %v", tc.key, err, tc.wantErr)
		}
	}
}

// downUntil fails every Stat until a time, as a storage in an outage.
type downUntil struct {
	Backend
	until time.Time
}

func (d downUntil) Stat(_ context.Context, key string) (ObjectInfo, error) {
	if time.Now().Before(d.until) {
		return ObjectInfo{}, errors.New("connection refused")
	}
	return ObjectInfo{Key: key}, nil
}

// TestRetryWarnsOncePerOutage: ten calls in flight through one outage
// (a push-ahead's) give one warning, not ten (explore25b F6).
func TestRetryWarnsOncePerOutage(t *testing.T) {
	policy := RetryPolicy{MaxAttempts: 100, BaseDelay: 5 * time.Millisecond, MaxDelay: 5 * time.Millisecond, WarnAfter: 40 * time.Millisecond}
	var logged testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b := WithRetry(downUntil{until: time.Now().Add(70 * time.Millisecond)}, policy, log)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := b.Stat(context.Background(), fmt.Sprintf("wal/%d", i)); err != nil {
				t.Errorf("stat: %v", err)
			}
		})
	}
	wg.Wait()
	if got := strings.Count(logged.String(), "level=WARN"); got != 1 {
		t.Fatalf("%d warnings from ten calls through one outage, want 1:\n%s", got, logged.String())
	}
}
