package storage_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestCallLog: one backend stack serves two commands (as wal-helper's
// kept backends do); each command's retries and hidden-object warnings go
// to the logger its context carries, the backend's own logger gets none,
// and a call without one still logs to the backend's.
func TestCallLog(t *testing.T) {
	ctx := context.Background()
	f := storagetest.NewFault(mem.New())
	for _, k := range []string{"wal/a", "wal/b"} {
		if err := f.Put(ctx, k, strings.NewReader("x"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.Hide("wal/a")
	var opened, first, second bytes.Buffer
	logTo := func(w *bytes.Buffer) *slog.Logger {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	var failures atomic.Int64 // the Stats of wal/b still to fail
	f.Before(storagetest.OpStat, storagetest.Contains("wal/b"), func(context.Context, string) error {
		if failures.Add(-1) >= 0 {
			return errors.New("connection reset by peer")
		}
		return nil
	})
	b := storage.Stack(f.Versioned(), storage.StackOptions{
		Log:        logTo(&opened),
		Retry:      storage.RetryPolicy{MaxAttempts: 100, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, WarnAfter: time.Nanosecond},
		ReadHidden: true,
	})

	for _, w := range []*bytes.Buffer{&first, &second} {
		cctx := storage.WithCallLog(ctx, logTo(w))
		// A hidden segment: found, with a warning, in each command.
		rc, _, err := b.Get(cctx, "wal/a")
		if err != nil {
			t.Fatalf("get of the hidden object: %v", err)
		}
		rc.Close()
		// A call that fails a few times before it works.
		failures.Store(3)
		if _, err := b.Stat(cctx, "wal/b"); err != nil {
			t.Fatalf("stat through retries: %v", err)
		}
	}
	for name, got := range map[string]string{"first": first.String(), "second": second.String()} {
		if !strings.Contains(got, "delete marker") || !strings.Contains(got, "still retrying") {
			t.Errorf("the %s command's log lacks the hidden object's warning or the retry warning:\n%s", name, got)
		}
	}
	if opened.Len() != 0 {
		t.Errorf("the backend's own logger got the commands' warnings:\n%s", opened.String())
	}
	failures.Store(3)
	if _, err := b.Stat(ctx, "wal/b"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(opened.String(), "still retrying") {
		t.Errorf("a call without a command's logger: the retry warning is not in the backend's log:\n%s", opened.String())
	}
}
