package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

var (
	quick        = storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
	errTransient = errors.New("read tcp 10.0.0.7:443: connection reset by peer")
)

// TestRetryVersioned: the retry decorator is Versioned exactly when what
// it wraps is, and retries the versioned calls.
func TestRetryVersioned(t *testing.T) {
	ctx := context.Background()
	if _, ok := storage.AsVersioned(storage.WithRetry(storagetest.NewFault(mem.New()), quick, nil)); ok {
		t.Error("AsVersioned(retry over a backend without versions): got true, want false")
	}
	f := storagetest.NewFault(mem.New())
	if err := f.Put(ctx, "k", strings.NewReader("body"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Hide("k")
	fv := f.Versioned()
	v, ok := storage.AsVersioned(storage.WithRetry(fv, quick, nil))
	if !ok {
		t.Fatal("AsVersioned(retry over a versioned backend): got false")
	}
	if _, isBare := v.(*storagetest.VersionedFault); isBare {
		t.Fatal("AsVersioned(retry over a versioned backend): got the bare backend, want the retrying layer")
	}
	f.FailNth(storagetest.OpListHidden, 1, errTransient)
	f.FailNth(storagetest.OpGetHidden, 1, errTransient)
	f.FailNth(storagetest.OpUnhide, 1, errTransient)
	f.FailNth(storagetest.OpVersions, 1, errTransient)
	f.FailNth(storagetest.OpGetVersion, 1, errTransient)
	n := 0
	if err := v.ListHidden(ctx, "", func(storage.HiddenObject) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("ListHidden after a transient failure: got %v, %d entries; want nil, 1", err, n)
	}
	rc, _, err := v.GetHidden(ctx, "k")
	if err != nil {
		t.Fatalf("GetHidden after a transient failure: got %v, want nil", err)
	}
	rc.Close()
	if err := v.Unhide(ctx, "k"); err != nil {
		t.Errorf("Unhide after a transient failure: got %v, want nil", err)
	}
	vs, err := v.Versions(ctx, "k")
	if err != nil || len(vs) != 1 {
		t.Fatalf("Versions after a transient failure: got %+v, %v; want one version, nil", vs, err)
	}
	rc, _, err = v.GetVersion(ctx, "k", vs[0].ID)
	if err != nil {
		t.Fatalf("GetVersion after a transient failure: got %v, want nil", err)
	}
	rc.Close()
	for _, op := range []storagetest.Op{storagetest.OpListHidden, storagetest.OpGetHidden, storagetest.OpUnhide, storagetest.OpVersions, storagetest.OpGetVersion} {
		if got := f.Calls(op); got != 2 {
			t.Errorf("calls of %s: got %d, want 2 (one retry)", op, got)
		}
	}
}

// TestStackCounts: the counter sits under the retry layer, so it sees every
// attempt, and the listed entries.
func TestStackCounts(t *testing.T) {
	ctx := context.Background()
	f := storagetest.NewFault(mem.New())
	var c storage.Counter
	b := storage.Stack(f, storage.StackOptions{Retry: quick, Counter: &c})
	for _, k := range []string{"a", "b"} {
		if err := b.Put(ctx, k, strings.NewReader(k), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.FailNth(storagetest.OpStat, 1, errTransient)
	if _, err := b.Stat(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.List(ctx, "", func(storage.ObjectInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	want := storage.Counts{Put: 2, Stat: 2, List: 1, Listed: 2}
	if got := c.Counts(); got != want || got.Calls() != 5 {
		t.Errorf("counts: got %+v (%d calls), want %+v (5 calls)", got, got.Calls(), want)
	}
}

// TestStackReadHidden: with ReadHidden the stack serves a hidden object,
// retrying a transient failure of the look at versions instead of calling
// the object missing; without it, the object is missing.
func TestStackReadHidden(t *testing.T) {
	ctx := context.Background()
	f := storagetest.NewFault(mem.New())
	if err := f.Put(ctx, "wal/k", strings.NewReader("body"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Hide("wal/k")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if _, _, err := storage.Stack(f.Versioned(), storage.StackOptions{Retry: quick, Log: log}).Get(ctx, "wal/k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get of a hidden key without ReadHidden: got %v, want ErrNotFound", err)
	}
	b := storage.Stack(f.Versioned(), storage.StackOptions{Retry: quick, Log: log, ReadHidden: true})
	if again := storage.ReadHidden(b, log); again != b {
		t.Error("ReadHidden over a stack that reads hidden objects: got a second layer")
	}
	f.FailNth(storagetest.OpGetHidden, 1, errTransient)
	rc, info, err := b.Get(ctx, "wal/k")
	if err != nil {
		t.Fatalf("Get of a hidden key with ReadHidden: got %v, want its hidden version", err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "body" || info.Key != "wal/k" {
		t.Errorf("Get of a hidden key: got %q (%+v), want \"body\"", data, info)
	}
	if !strings.Contains(logs.String(), "walvault repair") || !strings.Contains(logs.String(), "key=wal/k") {
		t.Errorf("no warning naming the key and repair:\n%s", logs.String())
	}

	// Versions refused for good: "missing" stands, with a warning.
	f.Fail(storagetest.OpGetHidden, storagetest.AnyKey, storage.Permanent(errors.New("AccessDenied")))
	if _, err := b.Stat(ctx, "wal/k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat when versions are refused: got %v, want ErrNotFound", err)
	}
	if !strings.Contains(logs.String(), "s3:ListBucketVersions") {
		t.Errorf("no warning about the refused versions:\n%s", logs.String())
	}
}

// deliverThenFail is a versioned backend whose ListHidden delivers one
// entry, then fails as a dropped connection would.
type deliverThenFail struct {
	storage.Backend
	calls int
}

func (d *deliverThenFail) ListHidden(_ context.Context, _ string, fn func(storage.HiddenObject) error) error {
	d.calls++
	if err := fn(storage.HiddenObject{Key: "a"}); err != nil {
		return err
	}
	return errTransient
}

func (d *deliverThenFail) GetHidden(context.Context, string) (io.ReadCloser, storage.ObjectInfo, error) {
	return nil, storage.ObjectInfo{}, storage.ErrNotFound
}

func (d *deliverThenFail) Unhide(context.Context, string) error { return storage.ErrNotFound }

func (d *deliverThenFail) Versions(context.Context, string) ([]storage.ObjectVersion, error) {
	return nil, nil
}

func (d *deliverThenFail) GetVersion(context.Context, string, string) (io.ReadCloser, storage.ObjectInfo, error) {
	return nil, storage.ObjectInfo{}, storage.ErrNotFound
}

// TestRetryListHiddenAfterDelivery: as List, ListHidden is not retried once
// it delivered an entry: a retry would deliver it twice.
func TestRetryListHiddenAfterDelivery(t *testing.T) {
	d := &deliverThenFail{Backend: mem.New()}
	v, ok := storage.AsVersioned(storage.WithRetry(d, quick, nil))
	if !ok {
		t.Fatal("AsVersioned: got false")
	}
	n := 0
	err := v.ListHidden(context.Background(), "", func(storage.HiddenObject) error { n++; return nil })
	if !errors.Is(err, errTransient) || n != 1 || d.calls != 1 {
		t.Errorf("ListHidden failing after an entry: got %v, %d entries, %d calls; want the failure, 1 entry, 1 call", err, n, d.calls)
	}
}
