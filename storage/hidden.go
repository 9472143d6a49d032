package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ReadHidden wraps b so that reads see through delete markers. In a
// versioned bucket (every Object Lock bucket) anyone with walvault's
// credentials can DELETE an object without a version id: S3 then hides it
// behind a delete marker while its locked version survives. Such a delete
// must not stop a recovery, so when b says a key is not found, its newest
// hidden version is served instead, with a warning that names the key and
// says to run `walvault repair`.
//
// "Not found" stays authoritative: it is the answer only when neither a
// visible nor a hidden version exists. When looking for a hidden version
// fails for a transient reason, the read fails (for wal-fetch: recovery
// stops rather than ending early). When the storage permanently refuses to
// show versions (on AWS, credentials without s3:ListBucketVersions and
// s3:GetObjectVersion), reads behave as before, with a warning.
//
// A backend without versions (AsVersioned fails) is returned as it is, and
// so is one already wrapped. Writes and deletes pass through untouched.
func ReadHidden(b Backend, log *slog.Logger) Backend {
	if _, ok := b.(*HiddenReader); ok {
		return b
	}
	v, ok := AsVersioned(b)
	if !ok {
		return b
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HiddenReader{Backend: b, v: v, log: log}
}

// HiddenReader is the decorator ReadHidden returns.
type HiddenReader struct {
	Backend
	v      Versioned // found in Backend: the versioned calls go through the layers below
	log    *slog.Logger
	warned sync.Map // warnedKey: one warning per key and command
}

var _ Backend = (*HiddenReader)(nil)

// Unwrap returns the decorated backend.
func (h *HiddenReader) Unwrap() Backend { return h.Backend }

// Get falls back to the key's hidden version.
func (h *HiddenReader) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	rc, info, err := h.Backend.Get(ctx, key)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return rc, info, err
	}
	return h.openHidden(ctx, key, err)
}

// Stat falls back to the key's hidden version (read for its metadata and
// closed at once: this path is taken only for missing keys).
func (h *HiddenReader) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	info, err := h.Backend.Stat(ctx, key)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return info, err
	}
	rc, hinfo, herr := h.openHidden(ctx, key, err)
	if herr != nil {
		return ObjectInfo{}, herr
	}
	rc.Close()
	return hinfo, nil
}

// openHidden looks for key's hidden version after notFound; it returns
// notFound itself when there is none.
func (h *HiddenReader) openHidden(ctx context.Context, key string, notFound error) (io.ReadCloser, ObjectInfo, error) {
	rc, info, err := h.v.GetHidden(ctx, key)
	switch {
	case err == nil:
		if info.Key == "" {
			info.Key = key
		}
		h.warnHidden(ctx, key)
		return rc, info, nil
	case errors.Is(err, ErrNotFound):
		return nil, ObjectInfo{}, notFound
	case IsPermanent(err):
		CallLog(ctx, h.log).Warn("cannot look for a version of a missing object hidden by a delete marker; taking it as missing",
			"key", key, "error", fmt.Errorf("%w: %w", ErrVersionsRefused, err), "hint", VersionsHint)
		return nil, ObjectInfo{}, notFound
	}
	return nil, ObjectInfo{}, fmt.Errorf("%s is not visible in %s, and looking for a version hidden by a delete marker failed, so it cannot be called missing: %w", key, h.Location(), err)
}

// warnedKey is a hidden key warned about in one command's log.
type warnedKey struct {
	log *slog.Logger
	key string
}

func (h *HiddenReader) warnHidden(ctx context.Context, key string) {
	// Once per key and command: a backend kept across commands warns each.
	log := CallLog(ctx, h.log)
	if _, dup := h.warned.LoadOrStore(warnedKey{log, key}, true); dup {
		return
	}
	log.Warn("object hidden by a delete marker (someone deleted it without a version id): using its newest version",
		"key", key, "hint", "run `walvault repair` to make the repository whole again")
}

// List merges the keys hidden under prefix into the listing, in key order,
// so a hidden backup manifest or WAL segment is seen by the catalog. The
// hidden keys are gathered first: their number is what an attacker hid,
// not the size of the repository. The listing starts meanwhile (a round
// trip less on a distant endpoint); what it returns before the hidden keys
// are all known waits in a buffer of a page, and past that the listing
// waits. Nothing reaches fn before the hidden keys are known, so a failed
// versions listing fails the List before any delivery.
func (h *HiddenReader) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return h.ListAfter(ctx, prefix, "", fn)
}

// ListAfter is List from the first key after after, hidden keys included.
func (h *HiddenReader) ListAfter(ctx context.Context, prefix, after string, fn func(ObjectInfo) error) error {
	const maxPending = 1000
	var hidden []HiddenObject
	var hiddenErr error
	done := make(chan struct{})
	hctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		<-done
	}()
	go func() {
		defer close(done)
		hiddenErr = h.v.ListHidden(hctx, prefix, func(o HiddenObject) error {
			if o.Key > after {
				hidden = append(hidden, o)
			}
			return nil
		})
	}()
	known := false
	settle := func() error {
		<-done
		known = true
		switch {
		case hiddenErr != nil && IsPermanent(hiddenErr):
			CallLog(ctx, h.log).Warn("cannot list objects hidden by delete markers; listing only the visible ones",
				"prefix", strconv.Quote(prefix), "error", hiddenErr, "hint", "let walvault's credentials list object versions (s3:ListBucketVersions)")
			hidden = nil
		case hiddenErr != nil:
			return hiddenErr
		}
		slices.SortFunc(hidden, func(a, b HiddenObject) int { return strings.Compare(a.Key, b.Key) })
		return nil
	}
	// Buffered keys reach fn after the listing that found them: a context
	// cancelled meanwhile (by fn, say) stops the delivery as it would the
	// listing.
	call := func(oi ObjectInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(oi)
	}
	deliver := func(o HiddenObject) error {
		h.warnHidden(ctx, o.Key)
		return call(ObjectInfo{Key: o.Key, Size: o.Size, RetainUntil: o.RetainUntil})
	}
	merge := func(oi ObjectInfo) error {
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
		return call(oi)
	}
	var pending []ObjectInfo
	flush := func() error {
		if err := settle(); err != nil {
			return err
		}
		for _, oi := range pending {
			if err := merge(oi); err != nil {
				return err
			}
		}
		pending = nil
		return nil
	}
	err := ListAfter(ctx, h.Backend, prefix, after, func(oi ObjectInfo) error {
		if !known {
			select {
			case <-done:
			default:
				if len(pending) < maxPending {
					pending = append(pending, oi)
					return nil
				}
			}
			if err := flush(); err != nil {
				return err
			}
		}
		return merge(oi)
	})
	if err != nil {
		return err
	}
	if !known {
		if err := flush(); err != nil {
			return err
		}
	}
	for _, o := range hidden {
		if err := deliver(o); err != nil {
			return err
		}
	}
	return nil
}
