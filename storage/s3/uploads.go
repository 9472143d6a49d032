package s3

import (
	"context"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/storage"
)

var _ storage.Uploads = (*Backend)(nil)

// ListUploads lists the multipart uploads under the repository's prefix
// plus prefix that were neither completed nor aborted
// (ListMultipartUploads, page by page). Its requests keep the SDK's
// retryer, as a multipart upload's do: storage.Stack's retry layer does
// not wrap these calls.
//
// MinIO answers a prefix only when it is a whole object key, so a prefix
// listing that finds nothing is asked again of the whole bucket, filtered
// here: one request more where nothing is left over, on any server.
func (b *Backend) ListUploads(ctx context.Context, prefix string, fn func(storage.Upload) error) error {
	full := b.prefix + prefix
	found, err := b.listUploads(ctx, prefix, full, fn)
	if err != nil || found > 0 || full == "" {
		return err
	}
	_, err = b.listUploads(ctx, prefix, "", func(u storage.Upload) error {
		if !strings.HasPrefix(u.Key, prefix) {
			return nil
		}
		return fn(u)
	})
	return err
}

// listUploads lists the uploads whose keys start with asked (a bucket
// key prefix) and lie under the repository's prefix, and says how many.
func (b *Backend) listUploads(ctx context.Context, prefix, asked string, fn func(storage.Upload) error) (int, error) {
	what := strconv.Quote(prefix)
	in := &s3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: aws.String(asked)}
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, storage.OpError("list multipart uploads", what, err)
		}
		out, err := b.client.ListMultipartUploads(ctx, in, b.multipartRetries)
		if err != nil {
			return n, storage.OpError("list multipart uploads", what, b.translate(err))
		}
		for _, u := range out.Uploads {
			key, ok := strings.CutPrefix(aws.ToString(u.Key), b.prefix)
			if !ok {
				continue
			}
			up := storage.Upload{Key: key, ID: aws.ToString(u.UploadId)}
			if u.Initiated != nil {
				up.Started = *u.Initiated
			}
			n++
			if err := fn(up); err != nil {
				return n, err
			}
		}
		next, nextID := aws.ToString(out.NextKeyMarker), aws.ToString(out.NextUploadIdMarker)
		if !aws.ToBool(out.IsTruncated) || (next == aws.ToString(in.KeyMarker) && nextID == aws.ToString(in.UploadIdMarker)) {
			return n, nil // the end, or a server that would list the same page again
		}
		in.KeyMarker, in.UploadIdMarker = aws.String(next), aws.String(nextID)
	}
}

// AbortUpload aborts one multipart upload and frees its parts. An upload
// already gone (NoSuchUpload) counts as aborted.
func (b *Backend) AbortUpload(ctx context.Context, u storage.Upload) error {
	okey, err := b.objectKey(u.Key)
	if err != nil {
		return storage.OpError("abort multipart upload", u.Key, err)
	}
	_, err = b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &b.bucket, Key: aws.String(okey), UploadId: aws.String(u.ID),
	}, b.multipartRetries)
	if err != nil {
		if code, _ := errorCode(err); code == "NoSuchUpload" {
			return nil
		}
		return storage.OpError("abort multipart upload", u.Key, b.translate(err))
	}
	return nil
}
