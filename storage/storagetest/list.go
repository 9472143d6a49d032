package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/walvault/walvault/storage"
)

// listKeysFixture is a repository-shaped set of keys whose lexical order is
// not the order of a naive directory walk: '-' and '.' sort before '/', so
// "wal/00000002.history" comes before "wal/00000002/..." and
// "backups/b1-extra/x" before "backups/b1/...". No key is a directory
// prefix of another ("a" beside "a/b"): a file backend cannot hold both.
var listKeysFixture = []string{
	"walvault.json",
	"wal/00000001/000000010000000000000001.lz4",
	"wal/00000001/000000010000000000000002.lz4",
	"wal/00000001/00000001000000000000000A.lz4",
	"wal/00000001/0000000100000000000000FF.lz4",
	"wal/00000001/000000010000000100000000.lz4",
	"wal/00000002.history",
	"wal/00000002/000000020000000100000001.lz4",
	"wal/00000002/000000020000000100000001.partial",
	"backups/b1/base.tar.lz4",
	"backups/b1/backup_manifest",
	"backups/b1/walvault-manifest.json",
	"backups/b1-extra/x",
	"backups/b10/walvault-manifest.json",
	"x-y",
	"x.y",
	"x/y",
	"x0",
}

// putAll uploads keys (body: the key itself) with at most workers Puts at a
// time.
func putAll(t *testing.T, s *suite, keys []string, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	work := make(chan string)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				err := s.b.Put(s.ctx, key, bytes.NewReader([]byte(key)), storage.PutOptions{Size: int64(len(key)), IfNotExists: true})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("Put(%q): %w", key, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, key := range keys {
		work <- key
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("uploading %d keys: got %d errors, first: %v; want none", len(keys), len(errs), errs[0])
	}
}

// checkListed checks List(prefix) against the keys stored: exactly the ones
// starting with prefix, each once, in lexical order, with their sizes.
func checkListed(t *testing.T, s *suite, stored []string, prefix string) {
	t.Helper()
	want := filterPrefix(sortedCopy(stored), prefix)
	got := list(t, s, prefix)
	gotKeys := make([]string, len(got))
	for i, oi := range got {
		gotKeys[i] = oi.Key
	}
	if !slices.Equal(gotKeys, want) {
		t.Errorf("List(%q):\n got  %q\n want %q", prefix, gotKeys, want)
		return
	}
	for _, oi := range got {
		if oi.Size != int64(len(oi.Key)) {
			t.Errorf("List(%q): entry %q: Size: got %d, want %d", prefix, oi.Key, oi.Size, len(oi.Key))
		}
		checkModTime(t, fmt.Sprintf("List(%q) entry %q", prefix, oi.Key), oi.ModTime)
	}
}

func testListPrefix(t *testing.T, s *suite) {
	checkListed(t, s, nil, "") // an empty repository lists nothing
	putAll(t, s, listKeysFixture, s.opts.Concurrency)
	for _, prefix := range []string{
		"",
		"wal/",
		"wal",
		"wal/00000001/",
		"wal/00000001/0000000100000000000000", // ends mid-name
		"wal/00000001/00000001000000000000000A.lz4",
		"wal/0000000", // mid-name, before a history file and two directories
		"wal/00000002",
		"wal/00000002.",
		"wal/00000002/",
		"backups/b1", // b1/, b1-extra/ and b10/
		"backups/b1/",
		"backups/b1/b",
		"x",
		"x/",
		"missing/",
		"wal/00000003/",
		"zzz",
		"0",
	} {
		checkListed(t, s, listKeysFixture, prefix)
	}
}

// testListAfter: storage.ListAfter lists what List would, less the keys
// up to and including after, over the backend's own start-after listing
// when it has one.
func testListAfter(t *testing.T, s *suite) {
	putAll(t, s, listKeysFixture, s.opts.Concurrency)
	for _, c := range []struct{ prefix, after string }{
		{"", ""},
		{"wal/", "wal/00000001/00000001000000000000000A.lz4"},
		{"wal/00000001/", "wal/00000001/000000010000000000000002"}, // not a key: before 02.lz4
		{"wal/00000001/", "wal/00000001/000000010000000000000002/"},
		{"wal/00000001/", "wal/00000001/000000010000000100000000.lz4"}, // the last: nothing after
		{"wal/", "wal/00000002.history"},
		{"backups/", "backups/b1-extra/x"},
		{"wal/00000002/", "a"},            // before the prefix: all of it
		{"wal/00000001/", "wal/00000002"}, // after the prefix: nothing
	} {
		var want []string
		for _, k := range filterPrefix(sortedCopy(listKeysFixture), c.prefix) {
			if k > c.after {
				want = append(want, k)
			}
		}
		var got []string
		err := storage.ListAfter(s.ctx, s.b, c.prefix, c.after, func(oi storage.ObjectInfo) error {
			got = append(got, oi.Key)
			return nil
		})
		if err != nil {
			t.Errorf("ListAfter(%q, %q): %v", c.prefix, c.after, err)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("ListAfter(%q, %q) = %q, want %q", c.prefix, c.after, got, want)
		}
	}
}

// testListPagination lists ListPaginationCount keys under one prefix, more
// than one S3 page, among neighbours that must not be listed.
func testListPagination(t *testing.T, s *suite) {
	n := s.opts.ListPaginationCount
	keys := make([]string, 0, n+3)
	for i := range n {
		keys = append(keys, fmt.Sprintf("page/%06d", i))
	}
	keys = append(keys, "pagd/x", "page.json", "pagf/x")
	putAll(t, s, keys, max(s.opts.Concurrency, 16))
	checkListed(t, s, keys, "page/")
	checkListed(t, s, keys, "page/0000") // mid-name, still more than a page when n > 1000
	checkListed(t, s, keys, "pag")
	// A start past the first page's keys, and the pages after it.
	after := fmt.Sprintf("page/%06d", n/3)
	var got []string
	err := storage.ListAfter(s.ctx, s.b, "page/", after, func(oi storage.ObjectInfo) error {
		got = append(got, oi.Key)
		return nil
	})
	if want := filterPrefix(sortedCopy(keys), "page/")[n/3+1:]; err != nil || !slices.Equal(got, want) {
		t.Errorf("ListAfter(page/, %s): %d keys (%v), want the %d after it", after, len(got), err, len(want))
	}
}

// testListEarlyStop: List stops at the first error fn returns and returns
// it.
func testListEarlyStop(t *testing.T, s *suite) {
	putAll(t, s, listKeysFixture, s.opts.Concurrency)
	errStop := errors.New("storagetest: stop listing")
	calls := 0
	err := s.b.List(s.ctx, "", func(storage.ObjectInfo) error {
		calls++
		if calls == 3 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf(`List(""), fn failing on the 3rd call: got error %v, want fn's error %v`, err, errStop)
	}
	if calls != 3 {
		t.Errorf(`List(""), fn failing on the 3rd call: fn called %d times, want 3`, calls)
	}
}

// testListCancelled: List under an already-cancelled context returns the
// context's error without calling fn.
func testListCancelled(t *testing.T, s *suite) {
	putAll(t, s, listKeysFixture, s.opts.Concurrency)
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	calls := 0
	err := s.b.List(ctx, "", func(storage.ObjectInfo) error {
		calls++
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf(`List("") under a cancelled context: got error %v, want one matching context.Canceled`, err)
	}
	if calls != 0 {
		t.Errorf(`List("") under a cancelled context: fn called %d times, want 0`, calls)
	}
}

// testListCancelledDuring: once the context is cancelled (here by fn, on its
// first call), List calls fn no more and returns the context's error. A
// backend holding a fetched page must check ctx before each call.
func testListCancelledDuring(t *testing.T, s *suite) {
	putAll(t, s, listKeysFixture, s.opts.Concurrency)
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	calls := 0
	err := s.b.List(ctx, "", func(storage.ObjectInfo) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf(`List(""), cancelled in fn's first call: got error %v, want one matching context.Canceled`, err)
	}
	if calls != 1 {
		t.Errorf(`List(""), cancelled in fn's first call: fn called %d times, want 1`, calls)
	}
}
