package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/storage"
)

// Get opens the object with GetObject. A missing key is storage.ErrNotFound;
// a missing bucket, a refused access (S3 answers 403 for a missing key when
// the caller lacks s3:ListBucket) or bad credentials are permanent errors,
// never ErrNotFound.
//
// It asks for the object's first chunk (getChunkSize) only. An object that
// fits, or a server that ignores Range, is then one request, read as it
// arrives. A larger object is read through a rangedBody: the first answer
// streams while later chunks download in parallel (see ranged.go).
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	okey, err := b.objectKey(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, storage.OpError("get", key, err)
	}
	// Every request of this Get is made from in (with a range and a
	// condition added), so whatever it carries goes with each of them.
	in := s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(okey)}
	// ctx of the reader: Close cancels it, ending the requests in flight.
	rctx, cancel := context.WithCancel(ctx)
	first := in
	first.Range = aws.String(fmt.Sprintf("bytes=0-%d", b.getChunk-1))
	out, err := b.client.GetObject(rctx, &first)
	if err != nil && isRangeNotSatisfiable(err) {
		// An empty object has no byte 0: some servers answer 416.
		out, err = b.client.GetObject(rctx, &in)
	}
	if err != nil {
		cancel()
		return nil, storage.ObjectInfo{}, storage.OpError("get", key, b.notFound(ctx, err))
	}
	size := aws.ToInt64(out.ContentLength)
	var firstLen int64 // > 0: the object is larger than the first answer
	if out.ContentRange != nil {
		start, end, total, ok := parseContentRange(*out.ContentRange)
		if out.ContentLength == nil && ok {
			// No Content-Length (a chunked answer, as some gateways and
			// proxies send): the range says how long it is, and a body
			// that is not is caught as it is read.
			size = end - start + 1
		}
		switch {
		case ok && start == 0 && end+1 != size:
			out.Body.Close()
			cancel()
			return nil, storage.ObjectInfo{}, storage.OpError("get", key, fmt.Errorf(
				"the server answered with Content-Range %q and %d bytes (Content-Length): a broken answer", *out.ContentRange, size))
		case ok && start == 0 && total == size:
			// The whole object.
		case !ok || start != 0 || !strongETag(aws.ToString(out.ETag)):
			// A range this reader cannot build on (no total, no ETag that
			// If-Match can hold the later ranges to: a weak one never
			// matches): read the object in one request.
			out.Body.Close()
			if out, err = b.client.GetObject(rctx, &in); err != nil {
				cancel()
				return nil, storage.ObjectInfo{}, storage.OpError("get", key, b.notFound(ctx, err))
			}
			size = aws.ToInt64(out.ContentLength)
		default:
			firstLen, size = size, total
		}
	}
	// RetainUntil comes from the response's x-amz-object-lock-* headers.
	// AWS sends them on GET; Versity S3 Gateway v1.8.0 sends them only on
	// HEAD, so there Get reports zero ("unknown") and Stat the date.
	info := objectInfo(key, &size, out.LastModified, out.Metadata, out.ObjectLockRetainUntilDate)
	if firstLen == 0 {
		return &body{rc: out.Body, key: key, cancel: cancel}, info, nil
	}
	return b.newRangedBody(rctx, cancel, key, in, aws.ToString(out.ETag), size, out.Body, firstLen), info, nil
}

// strongETag reports an ETag If-Match can compare: present, and not weak
// ("W/..."; a proxy that compresses may make one so).
func strongETag(etag string) bool { return etag != "" && !strings.HasPrefix(etag, "W/") }

// Stat reads the object's headers with HeadObject.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	okey, err := b.objectKey(key)
	if err != nil {
		return storage.ObjectInfo{}, storage.OpError("stat", key, err)
	}
	out, err := b.head(ctx, okey)
	if err != nil {
		return storage.ObjectInfo{}, storage.OpError("stat", key, err)
	}
	return objectInfo(key, out.ContentLength, out.LastModified, out.Metadata, out.ObjectLockRetainUntilDate), nil
}

// head is HeadObject with its error translated.
func (b *Backend) head(ctx context.Context, okey string) (*s3.HeadObjectOutput, error) {
	b.bucketCheck.startEarly(ctx, b.bucketMissing) // beside the first HEAD: see settledCheck
	if b.expectLockWrite {
		b.lockCheck.startEarly(ctx, b.askObjectLock)
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: aws.String(okey)})
	if err != nil {
		return nil, b.notFound(ctx, err)
	}
	return out, nil
}

// notFound translates a read's error. A 404 is storage.ErrNotFound only if
// it is about the key: GET says NoSuchKey, but a HEAD 404 has no body and
// may mean a missing bucket, which HeadBucket settles (Backend.bucketCheck).
func (b *Backend) notFound(ctx context.Context, err error) error {
	if !isNotFound(err) {
		return b.translate(err)
	}
	if code, _ := errorCode(err); code != codeNoSuchKey {
		if berr := b.bucketCheck.wait(ctx, b.bucketMissing); berr != nil {
			return berr
		}
	}
	return fmt.Errorf("%w in %s", storage.ErrNotFound, b.location)
}

func objectInfo(key string, size *int64, mod *time.Time, md map[string]string, until *time.Time) storage.ObjectInfo {
	if _, ok := md[storage.PutTokenKey]; ok {
		md = maps.Clone(md)
		delete(md, storage.PutTokenKey) // the backend's own (Put)
	}
	info := storage.ObjectInfo{Key: key, Size: aws.ToInt64(size), Metadata: md}
	if mod != nil {
		info.ModTime = *mod
	}
	if until != nil {
		info.RetainUntil = *until
	}
	if len(info.Metadata) == 0 {
		info.Metadata = nil
	}
	return info
}

// body wraps a GetObject body so a failed read (connection reset, timeout)
// names the operation and key.
type body struct {
	rc     io.ReadCloser
	key    string
	cancel context.CancelFunc // nil, or the request's context's, for Close
}

func (r *body) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = storage.OpError("get", r.key, fmt.Errorf("reading the body: %w", err))
	}
	return n, err
}

func (r *body) Close() error {
	err := r.rc.Close()
	if r.cancel != nil {
		r.cancel()
	}
	return err
}
