package storagetest

import (
	"context"
	"io"

	"github.com/walvault/walvault/storage"
)

// Overwriting is a storage that ignores IfNotExists: a conditional create
// replaces the object and succeeds, as on a server that does not implement
// If-None-Match. The capability probe must refuse it.
type Overwriting struct{ storage.Backend }

// Put stores r whether or not key exists.
func (o Overwriting) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	opts.IfNotExists = false
	return o.Backend.Put(ctx, key, r, opts)
}

// LockIgnoring is a storage that drops Object Lock retention: objects are
// stored unlocked and report none, as on a bucket that ignores the lock
// headers. The capability probe must refuse it under a lock mode.
type LockIgnoring struct{ storage.Backend }

// Put stores r without its retention.
func (l LockIgnoring) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	opts.Retention = nil
	return l.Backend.Put(ctx, key, r, opts)
}
