package storage

import (
	"context"
	"io"
)

// WrapReads wraps b so that the body of every Get is read through wrap
// (a rate limit, a progress count: see restore and verify). Everything
// else passes through; Unwrap reaches b, so AsVersioned and AsUploads
// still find what lies below (their calls are not wrapped).
func WrapReads(b Backend, wrap func(ctx context.Context, r io.Reader) io.Reader) Backend {
	return &readWrapper{Backend: b, wrap: wrap}
}

type readWrapper struct {
	Backend
	wrap func(ctx context.Context, r io.Reader) io.Reader
}

var _ Backend = (*readWrapper)(nil)

// Unwrap returns the decorated backend.
func (w *readWrapper) Unwrap() Backend { return w.Backend }

func (w *readWrapper) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	rc, info, err := w.Backend.Get(ctx, key)
	if err != nil {
		return rc, info, err
	}
	return wrappedBody{Reader: w.wrap(ctx, rc), Closer: rc}, info, nil
}

// wrappedBody reads through the wrapper and closes the original body.
type wrappedBody struct {
	io.Reader
	io.Closer
}
