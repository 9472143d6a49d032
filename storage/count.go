package storage

import (
	"context"
	"io"
	"sync/atomic"
)

// Counts is what a Counter saw: calls per method, and the entries the
// listings delivered.
type Counts struct {
	Put, Get, Stat, List, Delete  int64
	ListHidden, GetHidden, Unhide int64
	Versions, GetVersion          int64
	Listed, ListedHidden          int64 // entries delivered by List and ListHidden
}

// Calls is the number of calls made, every method together. A call is not
// always one request: an S3 listing of 2,500 objects is one call and three
// pages, and a multipart Put is several requests.
func (c Counts) Calls() int64 {
	return c.Put + c.Get + c.Stat + c.List + c.Delete + c.ListHidden + c.GetHidden + c.Unhide + c.Versions + c.GetVersion
}

// Counter counts the calls that reach the backend it is given to (Count,
// or StackOptions.Counter). It is safe for concurrent use; the zero value
// is ready.
type Counter struct {
	put, get, stat, list, del     atomic.Int64
	listHidden, getHidden, unhide atomic.Int64
	versions, getVersion          atomic.Int64
	listed, listedHidden          atomic.Int64
}

// Counts returns the counts so far.
func (c *Counter) Counts() Counts {
	return Counts{
		Put: c.put.Load(), Get: c.get.Load(), Stat: c.stat.Load(), List: c.list.Load(), Delete: c.del.Load(),
		ListHidden: c.listHidden.Load(), GetHidden: c.getHidden.Load(), Unhide: c.unhide.Load(),
		Versions: c.versions.Load(), GetVersion: c.getVersion.Load(),
		Listed: c.listed.Load(), ListedHidden: c.listedHidden.Load(),
	}
}

// Count wraps b so that every call is counted in c. Below the retry
// decorator (see Stack) it counts attempts, not the calls made to Retry.
// When b keeps old versions, so does the result, and those calls are
// counted too.
func Count(b Backend, c *Counter) Backend {
	cb := &counting{Backend: b, c: c}
	if v, ok := AsVersioned(b); ok {
		return &countingVersioned{counting: cb, v: v}
	}
	return cb
}

type counting struct {
	Backend
	c *Counter
}

var _ Backend = (*counting)(nil)

func (b *counting) Unwrap() Backend { return b.Backend }

func (b *counting) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) error {
	b.c.put.Add(1)
	return b.Backend.Put(ctx, key, r, opts)
}

func (b *counting) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	b.c.get.Add(1)
	return b.Backend.Get(ctx, key)
}

func (b *counting) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	b.c.stat.Add(1)
	return b.Backend.Stat(ctx, key)
}

func (b *counting) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	b.c.list.Add(1)
	return b.Backend.List(ctx, prefix, func(oi ObjectInfo) error {
		b.c.listed.Add(1)
		return fn(oi)
	})
}

func (b *counting) ListAfter(ctx context.Context, prefix, after string, fn func(ObjectInfo) error) error {
	b.c.list.Add(1)
	return ListAfter(ctx, b.Backend, prefix, after, func(oi ObjectInfo) error {
		b.c.listed.Add(1)
		return fn(oi)
	})
}

func (b *counting) Delete(ctx context.Context, key string) error {
	b.c.del.Add(1)
	return b.Backend.Delete(ctx, key)
}

type countingVersioned struct {
	*counting
	v Versioned
}

var _ Versioned = (*countingVersioned)(nil)

func (b *countingVersioned) ListHidden(ctx context.Context, prefix string, fn func(HiddenObject) error) error {
	b.c.listHidden.Add(1)
	return b.v.ListHidden(ctx, prefix, func(o HiddenObject) error {
		b.c.listedHidden.Add(1)
		return fn(o)
	})
}

func (b *countingVersioned) GetHidden(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	b.c.getHidden.Add(1)
	return b.v.GetHidden(ctx, key)
}

func (b *countingVersioned) Unhide(ctx context.Context, key string) error {
	b.c.unhide.Add(1)
	return b.v.Unhide(ctx, key)
}

func (b *countingVersioned) Versions(ctx context.Context, key string) ([]ObjectVersion, error) {
	b.c.versions.Add(1)
	return b.v.Versions(ctx, key)
}

func (b *countingVersioned) GetVersion(ctx context.Context, key, versionID string) (io.ReadCloser, ObjectInfo, error) {
	b.c.getVersion.Add(1)
	return b.v.GetVersion(ctx, key, versionID)
}
