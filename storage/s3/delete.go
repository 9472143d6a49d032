package s3

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walvault/walvault/storage"
)

// Delete removes the object's current version.
//
// It first reads the object's headers (HeadObject): a missing key is
// storage.ErrNotFound. In a versioned bucket (every Object Lock bucket is
// one) it then deletes that version by its id: a DELETE without a version id
// would "succeed" by adding a delete marker, hiding a locked object instead
// of refusing. S3 refuses to delete a version under retention or legal hold
// (403 AccessDenied), which becomes storage.ErrLocked; the object stays as
// it was. See doc.go for what remains in a versioned bucket.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.delete(ctx, key); err != nil {
		return storage.OpError("delete", key, err)
	}
	return nil
}

func (b *Backend) delete(ctx context.Context, key string) error {
	okey, err := b.objectKey(key)
	if err != nil {
		return err
	}
	h, err := b.head(ctx, okey)
	if err != nil {
		return err
	}
	in := &s3.DeleteObjectInput{Bucket: &b.bucket, Key: aws.String(okey)}
	if v := aws.ToString(h.VersionId); v != "" {
		in.VersionId = h.VersionId
	}
	_, err = b.client.DeleteObject(ctx, in)
	if err == nil {
		return nil
	}
	if isAccessDenied(err) {
		if why := lockedBy(h, time.Now()); why != "" {
			return fmt.Errorf("%w (%s): %v", storage.ErrLocked, why, err)
		}
		var ae interface{ ErrorMessage() string }
		if errors.As(err, &ae) && (containsFold(ae.ErrorMessage(), "object lock") || containsFold(ae.ErrorMessage(), "retention")) {
			return fmt.Errorf("%w: %v", storage.ErrLocked, err)
		}
	}
	return b.translate(err)
}

// lockedBy says what locks the object, from its headers, or "".
func lockedBy(h *s3.HeadObjectOutput, now time.Time) string {
	if h.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn {
		return "legal hold"
	}
	if h.ObjectLockMode != "" && h.ObjectLockRetainUntilDate != nil && h.ObjectLockRetainUntilDate.After(now) {
		return fmt.Sprintf("%s retention until %s", h.ObjectLockMode, h.ObjectLockRetainUntilDate.UTC().Format(time.RFC3339))
	}
	return ""
}
