package storage

import (
	"context"
	"time"
)

// Uploads is implemented by backends where an interrupted write can leave
// storage behind that is no object and that List never shows: an S3
// multipart upload neither completed nor aborted (its parts are billed
// until it is aborted), a local directory's temp file after a crash.
// Backends abort their own failed writes; these are the ones left by a
// process that was killed, or whose abort itself failed (the storage was
// unreachable).
type Uploads interface {
	// ListUploads calls fn for each incomplete upload under prefix. The
	// List contract's ctx and fn rules apply; the order is the backend's.
	ListUploads(ctx context.Context, prefix string, fn func(Upload) error) error
	// AbortUpload removes an upload ListUploads returned, and what it
	// stored. One already gone is not an error.
	AbortUpload(ctx context.Context, u Upload) error
}

// Upload is one incomplete upload.
type Upload struct {
	// Key is the object it was writing (S3), or the temp file's own path
	// under the root (file://, where the target's name is not known).
	Key string
	// ID tells the upload apart from others of the same key (S3's upload
	// id); empty for file://.
	ID string
	// Started is when it began (S3's Initiated; a temp file's last write).
	Started time.Time
}

// StaleUploadAge is how old an incomplete upload must be before verify
// reports it and delete aborts it: uploads of a running wal-push or
// backup-push are younger (each part is written within minutes).
const StaleUploadAge = time.Hour

// AsUploads finds an Uploads backend in b or in any backend it wraps.
func AsUploads(b Backend) (Uploads, bool) { return As[Uploads](b) }

// StaleUploads returns the incomplete uploads under prefix that started
// more than olderThan before now (0: every one). ok is false when b keeps
// none (the backend does not implement Uploads).
func StaleUploads(ctx context.Context, b Backend, prefix string, olderThan time.Duration, now time.Time) (stale []Upload, ok bool, err error) {
	u, ok := AsUploads(b)
	if !ok {
		return nil, false, nil
	}
	err = u.ListUploads(ctx, prefix, func(up Upload) error {
		if !up.Started.After(now.Add(-olderThan)) {
			stale = append(stale, up)
		}
		return nil
	})
	if err != nil {
		return nil, true, err
	}
	return stale, true, nil
}
