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
func (b *Backend) ListUploads(ctx context.Context, prefix string, fn func(storage.Upload) error) error {
	what := strconv.Quote(prefix)
	in := &s3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: aws.String(b.prefix + prefix)}
	for {
		if err := ctx.Err(); err != nil {
			return storage.OpError("list multipart uploads", what, err)
		}
		out, err := b.client.ListMultipartUploads(ctx, in, b.multipartRetries)
		if err != nil {
			return storage.OpError("list multipart uploads", what, b.translate(err))
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
			if err := fn(up); err != nil {
				return err
			}
		}
		next, nextID := aws.ToString(out.NextKeyMarker), aws.ToString(out.NextUploadIdMarker)
		if !aws.ToBool(out.IsTruncated) || (next == aws.ToString(in.KeyMarker) && nextID == aws.ToString(in.UploadIdMarker)) {
			return nil // the end, or a server that would list the same page again
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
