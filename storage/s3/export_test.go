package s3

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// SetVersionsPageSize makes ListObjectVersions pages hold at most n
// entries, so tests cross page boundaries with a handful of objects.
func SetVersionsPageSize(b *Backend, n int32) { b.versionsPageSize = n }

// Hide does what an attacker with walvault's own credentials can do: a
// DELETE of key without a version id, which a versioned bucket answers
// with a delete marker.
func Hide(ctx context.Context, b *Backend, key string) error {
	okey, err := b.objectKey(key)
	if err != nil {
		return err
	}
	out, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: aws.String(okey)})
	if err != nil {
		return err
	}
	if !aws.ToBool(out.DeleteMarker) {
		return errors.New("no delete marker in the answer")
	}
	return nil
}
