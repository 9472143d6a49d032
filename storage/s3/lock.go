package s3

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walvault/walvault/storage"
)

// checkObjectLock makes sure the bucket has Object Lock before a Put with
// retention, so such a Put on a bucket without it stores nothing and
// returns storage.ErrUnsupported. Asking the write alone is not enough:
// Versity S3 Gateway v1.8.0 answers 400 "Bucket is missing
// ObjectLockConfiguration" but stores the object anyway, unlocked. A
// confirmed bucket is remembered; a refused or unanswerable question
// (no s3:GetBucketObjectLockConfiguration permission, a server without the
// API) leaves the decision to the write itself.
func (b *Backend) checkObjectLock(ctx context.Context) error {
	if b.lockConfirmed.Load() {
		return nil
	}
	return b.lockCheck.wait(ctx, b.askObjectLock)
}

// askObjectLock asks the bucket's Object Lock configuration once (see
// checkObjectLock).
func (b *Backend) askObjectLock(ctx context.Context) error {
	out, err := b.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &b.bucket})
	if err == nil {
		if c := out.ObjectLockConfiguration; c != nil && c.ObjectLockEnabled == types.ObjectLockEnabledEnabled {
			b.lockConfirmed.Store(true)
			return nil
		}
		return b.lockUnsupported(nil)
	}
	code, status := errorCode(err)
	switch {
	case code == "ObjectLockConfigurationNotFoundError":
		return b.lockUnsupported(err)
	case isAccessDenied(err), code == "NotImplemented", status == 501, code == "MethodNotAllowed":
		return nil
	}
	return b.translate(err)
}

func (b *Backend) lockUnsupported(cause error) error {
	err := fmt.Errorf("%w: bucket %q has no Object Lock: create the bucket with Object Lock enabled, or turn retention off",
		storage.ErrUnsupported, b.bucket)
	if cause != nil {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	return err
}
