package storagetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/walvault/walvault/storage"
)

// checkFailedPut checks that a Put failed, and reports whether its error
// carries the reader's (it should, but an SDK may lose the chain: logged,
// not failed).
func checkFailedPut(t *testing.T, what, key string, err, cause error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s Put(%q): got nil, want an error", what, key)
	}
	if !errors.Is(err, cause) {
		t.Logf("%s Put(%q): error %v does not match %v (allowed, but it hides the cause)", what, key, err, cause)
	}
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExists) {
		t.Errorf("%s Put(%q): got error %v, want one matching neither ErrNotFound nor ErrExists", what, key, err)
	}
}

// testFailedPut: a Put whose reader fails midway returns an error and leaves
// no object behind, visible or listed.
func testFailedPut(t *testing.T, s *suite, ifNotExists bool) {
	key := "wal/00000001/000000010000000000000008.lz4"
	for _, size := range []int64{-1, 64 << 10} {
		r := &failingReader{r: newGenerator(1, 64<<10), after: 10 << 10}
		err := s.b.Put(s.ctx, key, r, storage.PutOptions{IfNotExists: ifNotExists, Size: size})
		checkFailedPut(t, "failing-reader", key, err, errReader)
		checkNotFound(t, s, key)
		checkEmpty(t, s)
	}
	// The key is still free.
	mustPut(t, s, key, []byte("after the failures"), storage.PutOptions{IfNotExists: true, Size: -1})
	checkObject(t, s, key, []byte("after the failures"), nil)
}

// testFailedPutLarge: the reader fails after 6 MiB of unknown total size,
// past the first part of an S3 multipart upload; the upload is abandoned and
// no object appears.
func testFailedPutLarge(t *testing.T, s *suite) {
	key := "backups/b1/base.tar.lz4"
	r := &failingReader{r: newGenerator(2, 32<<20), after: 6 << 20}
	err := s.b.Put(s.ctx, key, r, storage.PutOptions{IfNotExists: true, Size: -1})
	checkFailedPut(t, "failing-reader", key, err, errReader)
	checkNotFound(t, s, key)
	checkEmpty(t, s)
}

// testFailedPutKeepsOld: a failed replace (no IfNotExists) leaves the object
// it would have replaced as it was.
func testFailedPutKeepsOld(t *testing.T, s *suite) {
	key := "walvault.json"
	orig := []byte(`{"version":1}`)
	md := map[string]string{"version": "1"}
	mustPut(t, s, key, orig, storage.PutOptions{Size: int64(len(orig)), Metadata: md})
	r := &failingReader{r: newGenerator(3, 64<<10), after: 1 << 10}
	err := s.b.Put(s.ctx, key, r, storage.PutOptions{Size: -1, Metadata: map[string]string{"version": "2"}})
	checkFailedPut(t, "failing-reader replace", key, err, errReader)
	checkObject(t, s, key, orig, md)
}

// testCancelledPut: Put under an already-cancelled context fails and stores
// nothing.
func testCancelledPut(t *testing.T, s *suite) {
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	key := "wal/00000001/00000001000000000000000B.lz4"
	for _, ifNotExists := range []bool{false, true} {
		err := s.b.Put(ctx, key, bytes.NewReader([]byte("never stored")), storage.PutOptions{IfNotExists: ifNotExists, Size: 12})
		checkFailedPut(t, "cancelled", key, err, context.Canceled)
		checkNotFound(t, s, key)
	}
	checkEmpty(t, s)
}

// testCancelledPutMidway: the context is cancelled while the body streams
// (the reader itself goes on yielding); Put fails and stores nothing.
func testCancelledPutMidway(t *testing.T, s *suite) {
	key := "wal/00000001/00000001000000000000000C.lz4"
	for _, size := range []int64{-1, 8 << 20} {
		ctx, cancel := context.WithCancel(s.ctx)
		r := &cancellingReader{r: newGenerator(4, 8<<20), after: 1 << 20, cancel: cancel}
		err := s.b.Put(ctx, key, r, storage.PutOptions{IfNotExists: true, Size: size})
		cancel()
		checkFailedPut(t, "cancelled-midway", key, err, context.Canceled)
		checkNotFound(t, s, key)
	}
	checkEmpty(t, s)
}
