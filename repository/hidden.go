package repository

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walvault/walvault/storage"
)

// ListHidden calls fn, in key order, for each of walvault's own objects
// (under backups/ and wal/, and walvault.json) that a delete marker hides
// in a versioned bucket: what `walvault repair` makes visible again.
// Objects of other tools sharing the bucket or prefix are left out.
func ListHidden(ctx context.Context, v storage.Versioned, fn func(storage.HiddenObject) error) error {
	for _, prefix := range []string{BackupsPrefix, WALPrefix} {
		if err := v.ListHidden(ctx, prefix, fn); err != nil {
			return err
		}
	}
	return v.ListHidden(ctx, IdentityKey, func(h storage.HiddenObject) error {
		if h.Key != IdentityKey { // "walvault.json.old" shares the prefix
			return nil
		}
		return fn(h)
	})
}

// ErrVersionsRefused is storage.ErrVersionsRefused: hidden objects then
// stay invisible, as they were before walvault looked for them.
var ErrVersionsRefused = storage.ErrVersionsRefused

// OpenHidden opens the newest data version of key hidden behind a delete
// marker, for a caller that was just told key is not found. The error
// wraps storage.ErrNotFound when there is none (b keeps no old versions,
// or key has no hidden version), ErrVersionsRefused when b will not say
// (callers then keep their "not found" and warn); any other error means
// the question could not be answered, which is no authoritative "absent".
func OpenHidden(ctx context.Context, b storage.Backend, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	v, ok := storage.AsVersioned(b)
	if !ok {
		return nil, storage.ObjectInfo{}, storage.OpError("get hidden", key, storage.ErrNotFound)
	}
	rc, info, err := v.GetHidden(ctx, key)
	switch {
	case err == nil:
		if info.Key == "" {
			info.Key = key
		}
		return rc, info, nil
	case errors.Is(err, storage.ErrNotFound):
		return nil, storage.ObjectInfo{}, err
	case storage.IsPermanent(err):
		return nil, storage.ObjectInfo{}, fmt.Errorf("%w: %w", ErrVersionsRefused, err)
	}
	return nil, storage.ObjectInfo{}, err
}
