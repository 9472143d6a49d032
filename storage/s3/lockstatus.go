package s3

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ObjectLockEnabled asks the bucket whether Object Lock is enabled, for
// `walvault check`. A bucket without an Object Lock configuration answers
// false with a nil error; a refused or failed question is an error
// (translated like any other call's), so the caller can say it could not
// tell rather than "no".
func (b *Backend) ObjectLockEnabled(ctx context.Context) (bool, error) {
	out, err := b.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &b.bucket})
	if err != nil {
		if code, _ := errorCode(err); code == "ObjectLockConfigurationNotFoundError" {
			return false, nil
		}
		return false, b.translate(err)
	}
	c := out.ObjectLockConfiguration
	return c != nil && c.ObjectLockEnabled == types.ObjectLockEnabledEnabled, nil
}
