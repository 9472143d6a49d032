package storage_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestWrapReads: Get bodies are read through the wrapper; the rest of the
// backend, and what lies below it, stay reachable.
func TestWrapReads(t *testing.T) {
	t.Parallel()
	inner := mem.New()
	if err := inner.Put(t.Context(), "a", strings.NewReader("hello"), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	b := storage.WrapReads(inner, func(_ context.Context, r io.Reader) io.Reader { return storagetest.CountingReader{R: r, N: &n} })
	rc, info, err := b.Get(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != "hello" || info.Size != 5 {
		t.Errorf("Get: %q, %v, size %d; want hello", got, err, info.Size)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n.Load() != 5 {
		t.Errorf("the wrapper saw %d bytes, want 5", n.Load())
	}
	if _, _, err := b.Get(t.Context(), "missing"); err == nil {
		t.Errorf("Get of a missing key: no error")
	}
	if _, ok := storage.AsVersioned(b); !ok {
		t.Errorf("AsVersioned does not reach the versioned backend below the wrapper")
	}
}
