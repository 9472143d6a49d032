package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrVersionsRefused: the storage keeps old versions but refuses to show
// them, permanently: on AWS the credentials lack s3:ListBucketVersions or
// s3:GetObjectVersion, or the server lacks the API.
var ErrVersionsRefused = errors.New("the storage refuses to show old versions of objects")

// VersionsHint says what to grant when old versions are refused.
const VersionsHint = "let walvault's credentials list and read object versions (s3:ListBucketVersions, s3:GetObjectVersion)"

// Versioned is implemented by backends whose storage keeps old versions of
// objects: an S3 bucket with versioning, which Object Lock requires. There a
// DELETE without a version id does not remove data; it hides the object
// behind a delete marker while the locked version survives. These methods
// see through and undo that, so a hostile or mistaken delete can neither
// stop a recovery nor go unnoticed. Likewise a PUT over a key only adds a
// newer version: Versions and GetVersion reach the original below it.
type Versioned interface {
	// ListHidden calls fn, in key order, for each key under prefix whose
	// newest version is a delete marker while an older version still holds
	// data. The List contract applies (once per key, ctx honoured).
	ListHidden(ctx context.Context, prefix string, fn func(HiddenObject) error) error
	// GetHidden opens the newest data version of a hidden key. A key that
	// is not hidden (absent, or visible) gives ErrNotFound.
	GetHidden(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// Unhide removes the delete markers above key's newest data version so
	// the object is visible again. A key that is not hidden gives
	// ErrNotFound.
	Unhide(ctx context.Context, key string) error
	// Versions lists the versions of exactly key that hold data (not its
	// delete markers), newest first. A key without any gives none, and no
	// error.
	Versions(ctx context.Context, key string) ([]ObjectVersion, error)
	// GetVersion opens the version of key with the given id. A version
	// that does not exist (any more) gives ErrNotFound.
	GetVersion(ctx context.Context, key, versionID string) (io.ReadCloser, ObjectInfo, error)
}

// OverwrittenLister is implemented by versioned backends that can list,
// in one pass, the keys holding more than one data version: walvault
// writes each WAL key once, so such a key was written over by someone
// else (verify reports them).
type OverwrittenLister interface {
	// ListOverwritten calls fn, in key order, for each key under prefix
	// with more than one data version, with how many it has.
	ListOverwritten(ctx context.Context, prefix string, fn func(key string, versions int) error) error
}

// ObjectVersion is one data version of a key.
type ObjectVersion struct {
	ID      string
	Size    int64
	ModTime time.Time // as the storage reports it (Versity: when it became noncurrent)
}

// HiddenObject is a key hidden behind a delete marker.
type HiddenObject struct {
	Key         string
	VersionID   string    // of the newest data version
	Size        int64     // of that version
	HiddenAt    time.Time // when the newest delete marker was written
	RetainUntil time.Time // lock of that version, zero when unknown or none
}

// Unwrapper is implemented by decorators, so callers can reach the backend
// they wrap (and its optional interfaces).
type Unwrapper interface {
	Unwrap() Backend
}

// As finds, in b or in any backend it wraps (Unwrapper), the first that
// implements T: an optional interface of the backend under the
// decorators.
func As[T any](b Backend) (T, bool) {
	for b != nil {
		if t, ok := b.(T); ok {
			return t, true
		}
		u, ok := b.(Unwrapper)
		if !ok {
			break
		}
		b = u.Unwrap()
	}
	var zero T
	return zero, false
}

// AsVersioned finds a Versioned backend in b or in any backend it wraps.
func AsVersioned(b Backend) (Versioned, bool) { return As[Versioned](b) }
