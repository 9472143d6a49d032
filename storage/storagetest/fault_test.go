package storagetest_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestFaultConformance: without rules, Fault keeps the contract of what it
// wraps.
func TestFaultConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Backend {
		return storagetest.NewFault(mem.New())
	}, storagetest.Options{ObjectLock: true, LargeObjectSize: 1 << 20})
}

// TestVersionedFaultConformance: hidden keys behave as on a versioned
// bucket, as far as the suite checks.
func TestVersionedFaultConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Backend {
		return storagetest.NewFault(mem.New()).Versioned()
	}, storagetest.Options{ObjectLock: true, LargeObjectSize: 1 << 20, Hide: func(t *testing.T, b storage.Backend, key string) {
		b.(*storagetest.VersionedFault).Hide(key)
	}})
}

var errBoom = errors.New("boom")

func put(t *testing.T, b storage.Backend, key string) {
	t.Helper()
	if err := b.Put(context.Background(), key, strings.NewReader(key), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestFaultFailNth(t *testing.T) {
	ctx := context.Background()
	f := storagetest.NewFault(mem.New())
	put(t, f, "a")
	f.FailNth(storagetest.OpStat, 2, errBoom)
	for i, want := range []error{nil, errBoom, nil} {
		if _, err := f.Stat(ctx, "a"); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("Stat call %d: got %v, want %v", i+1, err, want)
		}
	}
	if got := f.Calls(storagetest.OpStat); got != 3 {
		t.Errorf("Calls(stat): got %d, want 3", got)
	}
}

func TestFaultFailAndStall(t *testing.T) {
	f := storagetest.NewFault(mem.New())
	put(t, f, "wal/a")
	put(t, f, "other")
	f.Fail(storagetest.OpGet, storagetest.Prefix("wal/"), errBoom)
	f.Stall(storagetest.OpStat, storagetest.Key("other"))
	if _, _, err := f.Get(context.Background(), "wal/a"); !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "wal/a") {
		t.Errorf("Get of a failing key: got %v, want boom naming the key", err)
	}
	if _, _, err := f.Get(context.Background(), "other"); err != nil {
		t.Errorf("Get of another key: got %v, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Stat(ctx, "other"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled Stat: got %v, want the deadline", err)
	}
}

func TestFaultPutAndBodies(t *testing.T) {
	ctx := context.Background()
	f := storagetest.NewFault(mem.New())
	f.FailPut(storagetest.Contains(".00001"), 3, errBoom)
	f.FailPut(storagetest.Contains(".00002"), 0, nil)
	r := strings.NewReader("0123456789")
	if err := f.Put(ctx, "p.00001", r, storage.PutOptions{}); !errors.Is(err, errBoom) || r.Len() != 7 {
		t.Errorf("failing Put: got %v with %d bytes left, want boom after 3 bytes", err, r.Len())
	}
	if err := f.Put(ctx, "p.00002", strings.NewReader("x"), storage.PutOptions{}); err != nil {
		t.Errorf("lying Put: got %v, want nil", err)
	}
	if _, err := f.Stat(ctx, "p.00002"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after a lying Put: got %v, want nothing stored", err)
	}

	put(t, f, "body")
	f.BreakBodies(storagetest.Key("body"), 2)
	rc, _, err := f.Get(ctx, "body")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if string(got) != "bo" || !errors.Is(err, storagetest.ErrConnReset) {
		t.Errorf("broken body: got %q, %v; want \"bo\", ErrConnReset", got, err)
	}
}

func TestFaultDelayCounts(t *testing.T) {
	f := storagetest.NewFault(mem.New())
	// The delay is long next to a loaded machine's scheduling, and "fast"
	// starts only once "slow" is in flight.
	f.Delay(storagetest.OpPut, storagetest.Key("slow"), time.Second)
	done := make(chan struct{})
	go func() {
		put(t, f, "slow")
		close(done)
	}()
	for deadline := time.Now().Add(5 * time.Second); f.MaxInFlight(storagetest.OpPut) < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the delayed put never started")
		}
	}
	put(t, f, "fast")
	<-done
	if got := f.Returned(storagetest.OpPut); !slices.Equal(got, []string{"fast", "slow"}) {
		t.Errorf("Returned(put): got %q, want [fast slow]", got)
	}
	if got := f.MaxInFlight(storagetest.OpPut); got != 2 {
		t.Errorf("MaxInFlight(put): got %d, want 2", got)
	}
	ret := &storage.Retention{Mode: storage.Governance, Until: time.Now().Add(time.Hour)}
	if err := f.Put(context.Background(), "locked", strings.NewReader("x"), storage.PutOptions{Retention: ret}); err != nil {
		t.Fatal(err)
	}
	if o, ok := f.PutOptions("locked"); !ok || o.Retention != ret {
		t.Errorf("PutOptions(locked): got %+v, %v; want the retention it was put with", o, ok)
	}
	if _, ok := f.PutOptions("never"); ok {
		t.Error("PutOptions of a key never put: got true")
	}
}

func TestFaultHideLock(t *testing.T) {
	ctx := context.Background()
	f := storagetest.NewFault(mem.New())
	put(t, f, "a")
	put(t, f, "b")
	put(t, f, "c")
	f.Hide("b")
	f.Lock("c")
	if _, ok := storage.AsVersioned(f); ok {
		t.Error("AsVersioned(Fault): got true, want false (Versioned() has the versioned calls)")
	}
	var keys []string
	f.List(ctx, "", func(oi storage.ObjectInfo) error { keys = append(keys, oi.Key); return nil })
	if !slices.Equal(keys, []string{"a", "c"}) {
		t.Errorf("List with b hidden: got %q", keys)
	}
	if err := f.Delete(ctx, "c"); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("Delete of a locked key: got %v, want ErrLocked", err)
	}
	if err := f.Put(ctx, "b", strings.NewReader("again"), storage.PutOptions{IfNotExists: true}); !errors.Is(err, storage.ErrExists) {
		t.Errorf("conditional Put over a hidden key: got %v, want ErrExists", err)
	}
	v, ok := storage.AsVersioned(f.Versioned())
	if !ok {
		t.Fatal("AsVersioned(Fault.Versioned()): got false")
	}
	var hidden []string
	v.ListHidden(ctx, "", func(h storage.HiddenObject) error { hidden = append(hidden, h.Key); return nil })
	if !slices.Equal(hidden, []string{"b"}) {
		t.Errorf("ListHidden: got %q, want [b]", hidden)
	}
	if err := v.Unhide(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stat(ctx, "b"); err != nil {
		t.Errorf("Stat after Unhide: got %v, want nil", err)
	}
}
