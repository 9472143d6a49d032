package mem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walvault/walvault/storage"
)

// Backend is the in-memory backend. The zero value is not usable: call New.
type Backend struct {
	mu      sync.Mutex
	objects map[string][]version // oldest first; the last is current
	nextID  int
	closed  bool
	now     func() time.Time
}

var (
	_ storage.Backend   = (*Backend)(nil)
	_ storage.Versioned = (*Backend)(nil)
)

// version is one version of a key: data, or a delete marker.
type version struct {
	id          string
	marker      bool
	data        []byte
	meta        map[string]string
	modTime     time.Time
	retainUntil time.Time
}

// New returns an empty backend.
func New() *Backend {
	return &Backend{objects: map[string][]version{}, now: time.Now}
}

// SetClock makes the backend read the time from now: objects' times, and
// whether a retention still holds. A test moves it past a lock's end
// rather than waiting for it.
func (b *Backend) SetClock(now func() time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = now
}

// Location names this backend, distinct from every other live one (code
// keyed by location, like wal-push's identity cache, tells them apart).
func (b *Backend) Location() string { return fmt.Sprintf("mem://%p", b) }

// Close makes the backend unusable.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

var errClosed = storage.Permanent(errors.New("mem: backend is closed"))

// check refuses a bad key, a done context and a closed backend.
func (b *Backend) check(ctx context.Context, op, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return storage.OpError(op, key, storage.Permanent(err))
	}
	if err := ctx.Err(); err != nil {
		return storage.OpError(op, key, err)
	}
	return nil
}

// current returns key's current data version; b.mu is held.
func (b *Backend) current(key string) (version, bool) {
	vs := b.objects[key]
	if len(vs) == 0 || vs[len(vs)-1].marker {
		return version{}, false
	}
	return vs[len(vs)-1], true
}

func (v version) info(key string) storage.ObjectInfo {
	return storage.ObjectInfo{Key: key, Size: int64(len(v.data)), ModTime: v.modTime, Metadata: maps.Clone(v.meta), RetainUntil: v.retainUntil}
}

// Put reads r whole, then stores it as key's new current version.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	if err := b.check(ctx, "put", key); err != nil {
		return err
	}
	if err := storage.ValidateMetadata(opts.Metadata); err != nil {
		return storage.OpError("put", key, storage.Permanent(err))
	}
	var until time.Time
	if ret := opts.Retention; ret != nil {
		if ret.Mode != storage.Governance && ret.Mode != storage.Compliance {
			return storage.OpError("put", key, storage.Permanent(fmt.Errorf("unknown retention mode %q", ret.Mode)))
		}
		if ret.Until.IsZero() {
			return storage.OpError("put", key, storage.Permanent(errors.New("retention without a retain-until date")))
		}
		until = ret.Until
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return storage.OpError("put", key, fmt.Errorf("reading the data to store: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return storage.OpError("put", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return storage.OpError("put", key, errClosed)
	}
	if vs := b.objects[key]; opts.IfNotExists && len(vs) > 0 {
		// A hidden key too: its newest version is a delete marker.
		return storage.OpError("put", key, storage.ErrExists)
	}
	b.nextID++
	b.objects[key] = append(b.objects[key], version{
		id: strconv.Itoa(b.nextID), data: data, meta: maps.Clone(opts.Metadata),
		modTime: b.now(), retainUntil: until,
	})
	return nil
}

func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	info, data, err := b.read(ctx, "get", key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	return io.NopCloser(bytes.NewReader(data)), info, nil
}

func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, _, err := b.read(ctx, "stat", key)
	return info, err
}

func (b *Backend) read(ctx context.Context, op, key string) (storage.ObjectInfo, []byte, error) {
	if err := b.check(ctx, op, key); err != nil {
		return storage.ObjectInfo{}, nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return storage.ObjectInfo{}, nil, storage.OpError(op, key, errClosed)
	}
	v, ok := b.current(key)
	if !ok {
		return storage.ObjectInfo{}, nil, storage.OpError(op, key, storage.ErrNotFound)
	}
	return v.info(key), v.data, nil
}

// List delivers the keys with a current data version, from a snapshot
// taken at the start (fn may call the backend).
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	return listSnapshot(ctx, b, "list", prefix, func(key string) (storage.ObjectInfo, bool) {
		v, ok := b.current(key)
		return v.info(key), ok
	}, fn)
}

// listSnapshot delivers, in key order, what entry makes of each key under
// prefix that it accepts; entry runs under the lock, fn after it.
func listSnapshot[T any](ctx context.Context, b *Backend, op, prefix string, entry func(key string) (T, bool), fn func(T) error) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return storage.OpError(op, prefix, errClosed)
	}
	var keys []string
	for key := range b.objects {
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	var entries []T
	for _, key := range keys {
		if e, ok := entry(key); ok {
			entries = append(entries, e)
		}
	}
	b.mu.Unlock()
	return deliver(ctx, op, prefix, entries, fn)
}

func deliver[T any](ctx context.Context, op, prefix string, entries []T, fn func(T) error) error {
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return storage.OpError(op, prefix, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete removes key's current data version by its id; an older version,
// if any, becomes current, as in S3.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, "delete", key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return storage.OpError("delete", key, errClosed)
	}
	v, ok := b.current(key)
	if !ok {
		return storage.OpError("delete", key, storage.ErrNotFound)
	}
	if v.retainUntil.After(b.now()) {
		return storage.OpError("delete", key, fmt.Errorf("%w until %s", storage.ErrLocked, v.retainUntil.UTC().Format(time.RFC3339)))
	}
	b.drop(key, len(b.objects[key])-1)
	return nil
}

// drop removes version i of key; b.mu is held.
func (b *Backend) drop(key string, i int) {
	vs := slices.Delete(b.objects[key], i, i+1)
	if len(vs) == 0 {
		delete(b.objects, key)
		return
	}
	b.objects[key] = vs
}

// Hide puts a delete marker on key, as a DELETE without a version id does
// in a versioned bucket: the object vanishes from Get, Stat and List while
// its versions survive (ListHidden, GetHidden). Unlike S3, which adds a
// marker to any key, Hide of a key without a visible object returns
// storage.ErrNotFound, so a test's typo does not pass unnoticed.
func (b *Backend) Hide(key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.current(key); !ok {
		return storage.OpError("hide", key, storage.ErrNotFound)
	}
	b.nextID++
	b.objects[key] = append(b.objects[key], version{id: strconv.Itoa(b.nextID), marker: true, modTime: b.now()})
	return nil
}

// hidden returns key's newest data version and newest delete marker when
// the marker is current; b.mu is held.
func (b *Backend) hidden(key string) (data, marker version, ok bool) {
	vs := b.objects[key]
	if len(vs) == 0 || !vs[len(vs)-1].marker {
		return version{}, version{}, false
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if !vs[i].marker {
			return vs[i], vs[len(vs)-1], true
		}
	}
	return version{}, version{}, false
}

// ListHidden delivers, in key order, the keys under prefix that a delete
// marker hides while a data version survives.
func (b *Backend) ListHidden(ctx context.Context, prefix string, fn func(storage.HiddenObject) error) error {
	return listSnapshot(ctx, b, "list hidden", prefix, func(key string) (storage.HiddenObject, bool) {
		d, m, ok := b.hidden(key)
		return storage.HiddenObject{Key: key, VersionID: d.id, Size: int64(len(d.data)), HiddenAt: m.modTime, RetainUntil: d.retainUntil}, ok
	}, fn)
}

// ListOverwritten delivers, in key order, the keys under prefix with more
// than one data version.
func (b *Backend) ListOverwritten(ctx context.Context, prefix string, fn func(key string, versions int) error) error {
	type entry struct {
		key string
		n   int
	}
	return listSnapshot(ctx, b, "list overwritten", prefix, func(key string) (entry, bool) {
		n := 0
		for _, v := range b.objects[key] {
			if !v.marker {
				n++
			}
		}
		return entry{key, n}, n > 1
	}, func(e entry) error { return fn(e.key, e.n) })
}

// GetHidden opens the newest data version of a hidden key.
func (b *Backend) GetHidden(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := b.check(ctx, "get hidden", key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	d, _, ok := b.hidden(key)
	if !ok {
		return nil, storage.ObjectInfo{}, storage.OpError("get hidden", key, storage.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(d.data)), d.info(key), nil
}

// Unhide removes the delete markers above key's newest data version.
func (b *Backend) Unhide(ctx context.Context, key string) error {
	if err := b.check(ctx, "unhide", key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, _, ok := b.hidden(key); !ok {
		return storage.OpError("unhide", key, storage.ErrNotFound)
	}
	for vs := b.objects[key]; vs[len(vs)-1].marker; vs = b.objects[key] {
		b.drop(key, len(vs)-1)
	}
	return nil
}

// Versions lists key's data versions, newest first.
func (b *Backend) Versions(ctx context.Context, key string) ([]storage.ObjectVersion, error) {
	if err := b.check(ctx, "versions", key); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, storage.OpError("versions", key, errClosed)
	}
	var out []storage.ObjectVersion
	vs := b.objects[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if !vs[i].marker {
			out = append(out, storage.ObjectVersion{ID: vs[i].id, Size: int64(len(vs[i].data)), ModTime: vs[i].modTime})
		}
	}
	return out, nil
}

// GetVersion opens one data version of key by its id.
func (b *Backend) GetVersion(ctx context.Context, key, versionID string) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := b.check(ctx, "get version", key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, storage.ObjectInfo{}, storage.OpError("get version", key, errClosed)
	}
	for _, v := range b.objects[key] {
		if v.id == versionID && !v.marker {
			return io.NopCloser(bytes.NewReader(v.data)), v.info(key), nil
		}
	}
	return nil, storage.ObjectInfo{}, storage.OpError("get version", key, fmt.Errorf("%w: no version %q", storage.ErrNotFound, versionID))
}
