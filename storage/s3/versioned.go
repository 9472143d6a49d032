package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walvault/walvault/storage"
)

// Backend sees through delete markers: in a versioned bucket (every Object
// Lock bucket is one) a DELETE without a version id only hides an object.
var _ storage.Versioned = (*Backend)(nil)

// codeNoSuchVersion is S3's answer for a version id that does not exist.
const codeNoSuchVersion = "NoSuchVersion"

// ListHidden walks ListObjectVersions under prefix, page by page, and calls
// fn for each key whose current version is a delete marker while a data
// version survives. It reports the newest data version (S3 lists a key's
// versions newest first), its size, when the current marker was written
// and, on a bucket with Object Lock, the version's retain-until date (one
// GetObjectRetention per hidden key; zero when the version has none). A
// bucket that never had versioning has no delete markers: fn is not
// called.
func (b *Backend) ListHidden(ctx context.Context, prefix string, fn func(storage.HiddenObject) error) error {
	what := strconv.Quote(prefix)
	if err := ctx.Err(); err != nil {
		return storage.OpError("list hidden", what, err)
	}
	var lockKnown, locked bool
	var fnErr error
	err := b.walkVersions(ctx, b.prefix+prefix, func(kv *keyVersions) error {
		if !kv.hidden() {
			return nil
		}
		key, ok := strings.CutPrefix(kv.key, b.prefix)
		if !ok || key == "" || strings.HasSuffix(key, "/") {
			return nil
		}
		h := storage.HiddenObject{
			Key:       key,
			VersionID: aws.ToString(kv.data.VersionId),
			Size:      aws.ToInt64(kv.data.Size),
			HiddenAt:  aws.ToTime(kv.current.LastModified),
		}
		if !lockKnown {
			locked, lockKnown = b.bucketHasLock(ctx), true
		}
		if locked {
			until, err := b.retainUntil(ctx, kv.key, kv.data.VersionId)
			if err != nil {
				return err
			}
			h.RetainUntil = until
		}
		if err := fn(h); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if err != nil && fnErr != nil && errors.Is(err, fnErr) {
		return err // the caller's own error, as List returns it
	}
	if err != nil {
		return storage.OpError("list hidden", what, err)
	}
	return nil
}

// GetHidden opens the newest data version of a key hidden by a delete
// marker. A key that is visible, or has no data version left, gives
// storage.ErrNotFound. Versity S3 Gateway v1.8.0 sends no Object Lock
// headers for a noncurrent version, so RetainUntil stays zero there.
func (b *Backend) GetHidden(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := b.getHidden(ctx, key)
	if err != nil {
		return nil, storage.ObjectInfo{}, storage.OpError("get hidden", key, err)
	}
	return rc, info, nil
}

func (b *Backend) getHidden(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	okey, err := b.objectKey(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	kv, err := b.versionsOf(ctx, okey)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if !kv.hidden() {
		return nil, storage.ObjectInfo{}, b.notHidden(kv)
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(okey), VersionId: kv.data.VersionId})
	if err != nil {
		if isVersionGone(err) {
			// Deleted (by its version id) since the listing.
			return nil, storage.ObjectInfo{}, fmt.Errorf("%w in %s (its hidden version was deleted meanwhile)", storage.ErrNotFound, b.location)
		}
		return nil, storage.ObjectInfo{}, b.translate(err)
	}
	info := objectInfo(key, out.ContentLength, out.LastModified, out.Metadata, out.ObjectLockRetainUntilDate)
	return &body{rc: out.Body, key: key}, info, nil
}

// Unhide deletes the key's delete markers, by their version ids, so its
// newest data version is current again. It removes every marker of the
// key, also ones older than that version: a marker holds no data, and one
// below the newest data version hides nothing, so removing it changes
// nothing else. (Which markers are "newer" cannot be told reliably:
// S3 lists versions and markers apart, and Versity reports the time a
// noncurrent version was moved aside, not when it was written.) A key that
// is not hidden gives storage.ErrNotFound. On AWS this needs
// s3:DeleteObjectVersion.
func (b *Backend) Unhide(ctx context.Context, key string) error {
	if err := b.unhide(ctx, key); err != nil {
		return storage.OpError("unhide", key, err)
	}
	return nil
}

func (b *Backend) unhide(ctx context.Context, key string) error {
	okey, err := b.objectKey(key)
	if err != nil {
		return err
	}
	kv, err := b.versionsOf(ctx, okey)
	if err != nil {
		return err
	}
	if !kv.hidden() {
		return b.notHidden(kv)
	}
	for _, id := range kv.markers {
		_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: aws.String(okey), VersionId: aws.String(id)})
		if err != nil && !isVersionGone(err) { // gone: removed meanwhile, as wanted
			return fmt.Errorf("remove delete marker %s: %w", id, b.translate(err))
		}
	}
	return nil
}

// Versions lists the key's data versions, newest first, as
// ListObjectVersions gives them (with the key as prefix, so one page in the
// usual case). On AWS this needs s3:ListBucketVersions.
func (b *Backend) Versions(ctx context.Context, key string) ([]storage.ObjectVersion, error) {
	okey, err := b.objectKey(key)
	if err != nil {
		return nil, storage.OpError("versions", key, err)
	}
	kv, err := b.versionsOf(ctx, okey)
	if err != nil {
		return nil, storage.OpError("versions", key, err)
	}
	out := make([]storage.ObjectVersion, 0, len(kv.versions))
	for _, v := range kv.versions {
		out = append(out, storage.ObjectVersion{ID: aws.ToString(v.VersionId), Size: aws.ToInt64(v.Size), ModTime: aws.ToTime(v.LastModified)})
	}
	return out, nil
}

// GetVersion opens one version of the key by its id, in one request. On
// AWS this needs s3:GetObjectVersion.
func (b *Backend) GetVersion(ctx context.Context, key, versionID string) (io.ReadCloser, storage.ObjectInfo, error) {
	okey, err := b.objectKey(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, storage.OpError("get version", key, err)
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(okey), VersionId: aws.String(versionID)})
	if err != nil {
		if isVersionGone(err) {
			return nil, storage.ObjectInfo{}, storage.OpError("get version", key, fmt.Errorf("%w in %s: no version %s", storage.ErrNotFound, b.location, versionID))
		}
		return nil, storage.ObjectInfo{}, storage.OpError("get version", key, b.translate(err))
	}
	info := objectInfo(key, out.ContentLength, out.LastModified, out.Metadata, out.ObjectLockRetainUntilDate)
	return &body{rc: out.Body, key: key}, info, nil
}

// notHidden explains why a key is not hidden, as storage.ErrNotFound.
func (b *Backend) notHidden(kv *keyVersions) error {
	switch {
	case kv.current == nil && kv.data != nil:
		return fmt.Errorf("%w: the object is visible, not hidden, in %s", storage.ErrNotFound, b.location)
	case kv.data == nil && len(kv.markers) > 0:
		return fmt.Errorf("%w in %s: only delete markers are left, no version holds data", storage.ErrNotFound, b.location)
	}
	return fmt.Errorf("%w in %s", storage.ErrNotFound, b.location)
}

// ListOverwritten calls fn for each key under prefix with more than one
// data version (one ListObjectVersions walk).
func (b *Backend) ListOverwritten(ctx context.Context, prefix string, fn func(key string, versions int) error) error {
	what := strconv.Quote(prefix)
	var fnErr error
	err := b.walkVersions(ctx, b.prefix+prefix, func(kv *keyVersions) error {
		if len(kv.versions) < 2 {
			return nil
		}
		key, ok := strings.CutPrefix(kv.key, b.prefix)
		if !ok || key == "" {
			return nil
		}
		if err := fn(key, len(kv.versions)); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if err != nil && fnErr != nil && errors.Is(err, fnErr) {
		return err
	}
	if err != nil {
		return storage.OpError("list overwritten", what, err)
	}
	return nil
}

// keyVersions is what ListObjectVersions says about one key.
type keyVersions struct {
	key string // the bucket's key, prefix included
	// data is the newest version that holds data (the first listed).
	data *types.ObjectVersion
	// versions are all the versions that hold data, newest first.
	versions []types.ObjectVersion
	// current is the delete marker that is the key's current version, if
	// one is.
	current *types.DeleteMarkerEntry
	markers []string        // version ids of every delete marker
	seen    map[string]bool // version ids already counted
}

func (kv *keyVersions) hidden() bool { return kv.current != nil && kv.data != nil }

// versionsOf gathers the versions of exactly okey.
func (b *Backend) versionsOf(ctx context.Context, okey string) (*keyVersions, error) {
	found := &keyVersions{key: okey}
	errDone := errors.New("done")
	err := b.walkVersions(ctx, okey, func(kv *keyVersions) error {
		switch {
		case kv.key == okey:
			found = kv
			return nil
		case kv.key > okey:
			return errDone // keys come in order: okey's are behind us
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return nil, err
	}
	return found, nil
}

// walkVersions calls fn once per key under prefix, in key order, with all
// of the key's versions and delete markers. It pages through
// ListObjectVersions; a key's entries may span pages. Versity S3 Gateway
// v1.8.0 repeats the last entry of a page at the start of the next one:
// entries seen before are skipped by version id.
func (b *Backend) walkVersions(ctx context.Context, prefix string, fn func(*keyVersions) error) error {
	in := &s3.ListObjectVersionsInput{Bucket: &b.bucket, Prefix: aws.String(prefix)}
	if b.versionsPageSize > 0 {
		in.MaxKeys = aws.Int32(b.versionsPageSize)
	}
	var cur *keyVersions
	// entry takes one listed version or marker; it returns false for a key
	// already passed on (a repeat across pages).
	entry := func(key, id string) (*keyVersions, bool, error) {
		switch {
		case cur != nil && key == cur.key:
		case cur != nil && key < cur.key:
			return nil, false, nil
		default:
			if cur != nil {
				if err := fn(cur); err != nil {
					return nil, false, err
				}
			}
			cur = &keyVersions{key: key, seen: map[string]bool{}}
		}
		if cur.seen[id] {
			return nil, false, nil
		}
		cur.seen[id] = true
		return cur, true, nil
	}
	for {
		page, err := b.client.ListObjectVersions(ctx, in)
		if err != nil {
			return b.translate(err)
		}
		// Versions and markers come in two lists, each in key order: merge
		// them by key.
		vs, ms := page.Versions, page.DeleteMarkers
		for len(vs) > 0 || len(ms) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(ms) == 0 || (len(vs) > 0 && aws.ToString(vs[0].Key) <= aws.ToString(ms[0].Key)) {
				v := vs[0]
				vs = vs[1:]
				kv, ok, err := entry(aws.ToString(v.Key), "v:"+aws.ToString(v.VersionId))
				if err != nil {
					return err
				}
				if ok {
					if kv.data == nil {
						kv.data = &v
					}
					kv.versions = append(kv.versions, v)
				}
				continue
			}
			m := ms[0]
			ms = ms[1:]
			kv, ok, err := entry(aws.ToString(m.Key), "m:"+aws.ToString(m.VersionId))
			if err != nil {
				return err
			}
			if ok {
				kv.markers = append(kv.markers, aws.ToString(m.VersionId))
				if aws.ToBool(m.IsLatest) {
					kv.current = &m
				}
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		next, nextID := aws.ToString(page.NextKeyMarker), aws.ToString(page.NextVersionIdMarker)
		if next == "" || (next == aws.ToString(in.KeyMarker) && nextID == aws.ToString(in.VersionIdMarker)) {
			return storage.Permanent(fmt.Errorf("ListObjectVersions: the server returned the same page again (key marker %q): refusing to loop", next))
		}
		in.KeyMarker, in.VersionIdMarker = aws.String(next), aws.String(nextID)
	}
	if cur != nil {
		return fn(cur)
	}
	return nil
}

// bucketHasLock reports whether the bucket has Object Lock enabled; any
// failure to tell counts as "no" (retain-until dates then stay unknown).
func (b *Backend) bucketHasLock(ctx context.Context) bool {
	if b.lockConfirmed.Load() {
		return true
	}
	out, err := b.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &b.bucket})
	if err != nil || out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return false
	}
	b.lockConfirmed.Store(true)
	return true
}

// retainUntil reads a version's retention with GetObjectRetention, which
// (unlike HEAD on Versity) answers for noncurrent versions too. A version
// without retention, or a server that will not say, gives zero.
func (b *Backend) retainUntil(ctx context.Context, okey string, versionID *string) (time.Time, error) {
	out, err := b.client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &b.bucket, Key: aws.String(okey), VersionId: versionID})
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		return time.Time{}, nil // "unknown" is an allowed answer
	}
	if out.Retention == nil || out.Retention.RetainUntilDate == nil {
		return time.Time{}, nil
	}
	return *out.Retention.RetainUntilDate, nil
}

// isVersionGone reports a 404 for a version id: it does not exist (any
// more).
func isVersionGone(err error) bool {
	code, _ := errorCode(err)
	return code == codeNoSuchVersion || code == codeNoSuchKey
}
