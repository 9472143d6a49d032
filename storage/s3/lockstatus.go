package s3

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walvault/walvault/storage"
)

// ObjectLockEnabled asks the bucket whether Object Lock is enabled, for
// `walvault check`. A bucket without an Object Lock configuration answers
// false with a nil error; a refused or failed question is an error
// (translated like any other call's), so the caller can say it could not
// tell rather than "no".
func (b *Backend) ObjectLockEnabled(ctx context.Context) (bool, error) {
	enabled, _, _, err := b.ObjectLockDefault(ctx)
	return enabled, err
}

// ObjectLockDefault is ObjectLockEnabled's answer with the bucket's
// default retention, from the same request: the mode and the days it
// locks a new object for (years counted as 365 days); "" and 0 when the
// bucket has none. An object's own retention replaces the default, so a
// weaker one walvault sends weakens the bucket's promise for walvault's
// objects.
func (b *Backend) ObjectLockDefault(ctx context.Context) (enabled bool, mode storage.RetentionMode, days int, err error) {
	out, err := b.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &b.bucket})
	if err != nil {
		if code, _ := errorCode(err); code == "ObjectLockConfigurationNotFoundError" {
			return false, "", 0, nil
		}
		return false, "", 0, b.translate(err)
	}
	c := out.ObjectLockConfiguration
	if c == nil || c.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return false, "", 0, nil
	}
	if c.Rule == nil || c.Rule.DefaultRetention == nil {
		return true, "", 0, nil
	}
	d := c.Rule.DefaultRetention
	return true, storage.RetentionMode(d.Mode), int(aws.ToInt32(d.Days)) + 365*int(aws.ToInt32(d.Years)), nil
}
