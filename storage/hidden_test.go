package storage_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// listsAtOnce holds the versions listing until the listing has started
// (or patience runs out) and records whether it had.
type listsAtOnce struct {
	*storagetest.VersionedFault
	started    chan struct{}
	once       sync.Once
	overlapped bool
}

func (l *listsAtOnce) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	l.once.Do(func() { close(l.started) })
	return l.VersionedFault.List(ctx, prefix, fn)
}

func (l *listsAtOnce) ListHidden(ctx context.Context, prefix string, fn func(storage.HiddenObject) error) error {
	select {
	case <-l.started:
		l.overlapped = true
	case <-time.After(300 * time.Millisecond):
	}
	return l.VersionedFault.ListHidden(ctx, prefix, fn)
}

// TestReadHiddenListsAtOnce: the versions listing and the listing run at
// once, and the merge still delivers every key once, in order, even when
// more visible keys arrive than wait in the buffer.
func TestReadHiddenListsAtOnce(t *testing.T) {
	ctx := context.Background()
	f := storagetest.NewFault(mem.New())
	var want []string
	for i := range 2500 {
		k := fmt.Sprintf("wal/%04d", i)
		if err := f.Put(ctx, k, strings.NewReader("x"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	f.Hide("wal/0000", "wal/1500", "wal/2499")
	probe := &listsAtOnce{VersionedFault: f.Versioned(), started: make(chan struct{})}
	b := storage.ReadHidden(probe, nil)
	var got []string
	if err := b.List(ctx, "wal/", func(oi storage.ObjectInfo) error {
		got = append(got, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !probe.overlapped {
		t.Error("the versions listing ran before the listing started, not with it")
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %d keys (first %v), want %d in order, hidden ones included", len(got), got[:min(3, len(got))], len(want))
	}
}
