package s3

import (
	"context"
	"time"

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

// ShortenGovernanceLock asks the server to shorten the GOVERNANCE lock of
// key's current version to until, bypassing governance
// (x-amz-bypass-governance-retention), as a principal with
// s3:BypassGovernanceRetention (or the account root) may. `walvault check`
// tries it on its own probe: when it succeeds, these credentials can lift
// every lock walvault writes in governance mode and then delete the
// versions. MinIO honours the header for any credential that may call
// PutObjectRetention, which walvault's writes under a lock need.
func (b *Backend) ShortenGovernanceLock(ctx context.Context, key string, until time.Time) error {
	okey, err := b.objectKey(key)
	if err != nil {
		return storage.OpError("shorten the lock of", key, err)
	}
	_, err = b.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
		Bucket:                    &b.bucket,
		Key:                       aws.String(okey),
		BypassGovernanceRetention: aws.Bool(true),
		Retention:                 &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(until)},
	})
	if err != nil {
		return storage.OpError("shorten the lock of", key, b.translate(err))
	}
	return nil
}
