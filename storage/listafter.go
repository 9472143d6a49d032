package storage

import "context"

// ListerAfter is a Backend that can start a listing past a key: S3's
// ListObjectsV2 StartAfter. Without it ListAfter lists the whole prefix.
type ListerAfter interface {
	// ListAfter is List restricted to the keys under prefix that sort
	// after after.
	ListAfter(ctx context.Context, prefix, after string, fn func(ObjectInfo) error) error
}

// ListAfter calls fn, in key order, for each object under prefix whose key
// sorts after after: on b's own start-after listing when it has one, else
// by skipping the keys before it in a listing of the whole prefix. A
// server that ignored the start key would be filtered the same way.
func ListAfter(ctx context.Context, b Backend, prefix, after string, fn func(ObjectInfo) error) error {
	filtered := func(oi ObjectInfo) error {
		if oi.Key <= after {
			return nil
		}
		return fn(oi)
	}
	if la, ok := b.(ListerAfter); ok {
		return la.ListAfter(ctx, prefix, after, filtered)
	}
	return b.List(ctx, prefix, filtered)
}
