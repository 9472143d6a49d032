package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// seeHidden wraps b so that restore and wal-fetch read through delete
// markers. In a versioned bucket (every Object Lock bucket) anyone with
// walvault's credentials can DELETE an object without a version id: S3
// then hides it behind a delete marker while its locked version survives.
// Such a delete must not stop a recovery, so when b says a key is not
// found, its newest hidden version is served instead, with a warning that
// names the key and says to run `walvault repair`.
//
// "Not found" stays authoritative: it is the answer only when neither a
// visible nor a hidden version exists. When looking for a hidden version
// fails for a transient reason, the read fails (for wal-fetch: recovery
// stops rather than ending early). When the storage permanently refuses to
// show versions (on AWS, credentials without s3:ListBucketVersions and
// s3:GetObjectVersion), reads behave as before, with a warning.
//
// A backend without versions (storage.AsVersioned fails) is returned as it
// is.
func seeHidden(b storage.Backend, log *slog.Logger) storage.Backend {
	if _, ok := b.(*hiddenReader); ok {
		return b
	}
	if _, ok := storage.AsVersioned(b); !ok {
		return b
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &hiddenReader{Backend: b, log: log}
}

// hiddenReader is the decorator seeHidden returns. Writes and deletes pass
// through untouched.
type hiddenReader struct {
	storage.Backend
	log    *slog.Logger
	warned sync.Map // keys already warned about: one warning per key
}

var _ storage.Backend = (*hiddenReader)(nil)

// Unwrap returns the decorated backend.
func (h *hiddenReader) Unwrap() storage.Backend { return h.Backend }

// Get falls back to the key's hidden version.
func (h *hiddenReader) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := h.Backend.Get(ctx, key)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return rc, info, err
	}
	rc, hinfo, herr := h.openHidden(ctx, key, err)
	if herr != nil {
		return nil, storage.ObjectInfo{}, herr
	}
	return rc, hinfo, nil
}

// Stat falls back to the key's hidden version (read for its metadata and
// closed at once: this path is taken only for missing keys).
func (h *hiddenReader) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, err := h.Backend.Stat(ctx, key)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return info, err
	}
	rc, hinfo, herr := h.openHidden(ctx, key, err)
	if herr != nil {
		return storage.ObjectInfo{}, herr
	}
	rc.Close()
	return hinfo, nil
}

// openHidden looks for key's hidden version after notFound; it returns
// notFound itself when there is none.
func (h *hiddenReader) openHidden(ctx context.Context, key string, notFound error) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := repository.OpenHidden(ctx, h.Backend, key)
	switch {
	case err == nil:
		h.warnHidden(key)
		return rc, info, nil
	case errors.Is(err, storage.ErrNotFound):
		return nil, storage.ObjectInfo{}, notFound
	case errors.Is(err, repository.ErrVersionsRefused):
		h.log.Warn("cannot look for a version of a missing object hidden by a delete marker; taking it as missing",
			"key", key, "error", err, "hint", "let walvault's credentials list and read object versions (s3:ListBucketVersions, s3:GetObjectVersion)")
		return nil, storage.ObjectInfo{}, notFound
	}
	return nil, storage.ObjectInfo{}, fmt.Errorf("%s is not visible in %s, and looking for a version hidden by a delete marker failed, so it cannot be called missing: %w", key, h.Location(), err)
}

func (h *hiddenReader) warnHidden(key string) {
	if _, dup := h.warned.LoadOrStore(key, true); dup {
		return
	}
	h.log.Warn("object hidden by a delete marker (someone deleted it without a version id): using its newest version",
		"key", key, "hint", "run `walvault repair` to make the repository whole again")
}

// List merges the keys hidden under prefix into the listing, in key order,
// so a hidden backup manifest or WAL segment is seen by the catalog. The
// hidden keys are gathered first: their number is what an attacker hid,
// not the size of the repository.
func (h *hiddenReader) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	v, _ := storage.AsVersioned(h.Backend)
	var hidden []storage.HiddenObject
	err := v.ListHidden(ctx, prefix, func(o storage.HiddenObject) error {
		hidden = append(hidden, o)
		return nil
	})
	switch {
	case err != nil && storage.IsPermanent(err):
		h.log.Warn("cannot list objects hidden by delete markers; listing only the visible ones",
			"prefix", strconv.Quote(prefix), "error", err, "hint", "let walvault's credentials list object versions (s3:ListBucketVersions)")
		hidden = nil
	case err != nil:
		return err
	}
	slices.SortFunc(hidden, func(a, b storage.HiddenObject) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	deliver := func(o storage.HiddenObject) error {
		h.warnHidden(o.Key)
		return fn(storage.ObjectInfo{Key: o.Key, Size: o.Size, RetainUntil: o.RetainUntil})
	}
	err = h.Backend.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		for len(hidden) > 0 && hidden[0].Key <= oi.Key {
			o := hidden[0]
			hidden = hidden[1:]
			if o.Key == oi.Key {
				continue // visible again meanwhile: listed once
			}
			if err := deliver(o); err != nil {
				return err
			}
		}
		return fn(oi)
	})
	if err != nil {
		return err
	}
	for _, o := range hidden {
		if err := deliver(o); err != nil {
			return err
		}
	}
	return nil
}
