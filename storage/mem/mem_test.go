package mem_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// hide is storagetest's Options.Hide for a mem backend under any stack.
func hide(t *testing.T, b storage.Backend, key string) {
	t.Helper()
	m, ok := storagetest.Inner[*mem.Backend](b)
	if !ok {
		t.Fatalf("no mem backend in %T", b)
	}
	if err := m.Hide(key); err != nil {
		t.Fatalf("Hide(%q): %v", key, err)
	}
}

var fastRetry = storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

func TestConformance(t *testing.T) {
	opts := storagetest.Options{ObjectLock: true, Hide: hide, LargeObjectSize: 16 << 20}
	t.Run("Bare", func(t *testing.T) {
		storagetest.Run(t, func(*testing.T) storage.Backend { return mem.New() }, opts)
	})
	// The stack commands get, and the one restore reads through.
	t.Run("Stacked", func(t *testing.T) {
		storagetest.Run(t, func(*testing.T) storage.Backend {
			return storage.Stack(mem.New(), storage.StackOptions{Retry: fastRetry, Counter: &storage.Counter{}})
		}, opts)
	})
	t.Run("StackedReadHidden", func(t *testing.T) {
		o := opts
		o.ReadsHidden = true
		storagetest.Run(t, func(*testing.T) storage.Backend {
			return storage.Stack(mem.New(), storage.StackOptions{Retry: fastRetry, Counter: &storage.Counter{}, ReadHidden: true})
		}, o)
	})
}

func put(t *testing.T, b storage.Backend, key, body string, opts storage.PutOptions) error {
	t.Helper()
	return b.Put(context.Background(), key, strings.NewReader(body), opts)
}

func get(t *testing.T, b storage.Backend, key string) string {
	t.Helper()
	rc, _, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestVersions: as on a versioned bucket, Delete removes the current
// version and the one before becomes current; a conditional create of a
// hidden key is refused; Hide of a missing key is an error.
func TestVersions(t *testing.T) {
	b := mem.New()
	ctx := context.Background()
	if err := put(t, b, "k", "one", storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := put(t, b, "k", "two", storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, "k"); got != "one" {
		t.Errorf("Get after deleting the current version: got %q, want the older %q", got, "one")
	}
	if err := b.Hide("k"); err != nil {
		t.Fatal(err)
	}
	if err := put(t, b, "k", "three", storage.PutOptions{IfNotExists: true}); !errors.Is(err, storage.ErrExists) {
		t.Errorf("conditional Put over a hidden key: got %v, want storage.ErrExists", err)
	}
	if err := b.Hide("missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Hide of a missing key: got %v, want storage.ErrNotFound", err)
	}
	if err := b.Delete(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete of a hidden key: got %v, want storage.ErrNotFound", err)
	}
}

// TestRetentionExpires: a lock holds until its date, then Delete works.
func TestRetentionExpires(t *testing.T) {
	b := mem.New()
	until := time.Now().Add(50 * time.Millisecond)
	if err := put(t, b, "k", "x", storage.PutOptions{Retention: &storage.Retention{Mode: storage.Compliance, Until: until}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(context.Background(), "k"); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("Delete under retention: got %v, want storage.ErrLocked", err)
	}
	time.Sleep(time.Until(until) + time.Millisecond)
	if err := b.Delete(context.Background(), "k"); err != nil {
		t.Errorf("Delete after the retention: got %v, want nil", err)
	}
}

// TestSetClock: a lock ends when the backend's clock passes it, not the
// wall clock's.
func TestSetClock(t *testing.T) {
	b := mem.New()
	now := time.Now()
	b.SetClock(func() time.Time { return now })
	if err := put(t, b, "k", "x", storage.PutOptions{Retention: &storage.Retention{Mode: storage.Governance, Until: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(context.Background(), "k"); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("Delete under retention: got %v, want storage.ErrLocked", err)
	}
	now = now.Add(2 * time.Hour)
	if err := b.Delete(context.Background(), "k"); err != nil {
		t.Errorf("Delete once the clock passed the retention: got %v, want nil", err)
	}
}
