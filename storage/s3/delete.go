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
// of refusing. Servers refuse to delete a version under retention or legal
// hold each with their own answer (AWS, Ceph RGW: 403 AccessDenied; MinIO:
// 400 InvalidRequest "Object is WORM protected"; R2: 403
// ObjectLockedByBucketPolicy; others 409): any refusal (isRefusal) of a
// version whose HEAD shows a legal hold or a retain-until date in force is
// storage.ErrLocked, and the object stays as it was. A refusal of a version
// HEAD shows unlocked is a plain (permission) error. The DELETE is sent
// even when HEAD shows a lock: the server's refusal is what proves the
// lock holds (check's capability probe rests on it). A locked error is a
// *storage.LockedError with the retain-until date HEAD gave, so a caller
// need not ask again. See doc.go for what remains in a versioned bucket.
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
	if in.VersionId != nil && isVersionGone(err) {
		// Deleted by someone else since the HEAD: left retryable (not
		// translated, which makes a 404 permanent), so the retry's HEAD
		// says ErrNotFound, or finds a version written meanwhile.
		return fmt.Errorf("version %s was deleted meanwhile: %w", aws.ToString(in.VersionId), err)
	}
	if isRefusal(err) {
		if why := lockedBy(h, time.Now()); why != "" {
			return fmt.Errorf("%w: %v", &storage.LockedError{Until: retainUntil(h), Why: why}, err)
		}
		if !hasLockHeaders(h) && refusalSaysLocked(err) {
			return fmt.Errorf("%w (the server says so; it sends no Object Lock headers): %v", storage.ErrLocked, err)
		}
	}
	return b.translate(err)
}

// lockedBy says what locks the object, from its headers, or "". A
// retain-until date counts up to maxClockSkew after now: a server whose
// clock is behind ours (as far as S3 allows) still refuses the delete of a
// version we think has just expired, and that is a lock, not a failure.
func lockedBy(h *s3.HeadObjectOutput, now time.Time) string {
	if h.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn {
		return "legal hold"
	}
	if until := h.ObjectLockRetainUntilDate; until != nil && until.After(now.Add(-maxClockSkew)) {
		mode := string(h.ObjectLockMode)
		if mode == "" {
			mode = "Object Lock"
		}
		return fmt.Sprintf("%s retention until %s", mode, until.UTC().Format(time.RFC3339))
	}
	return ""
}

// retainUntil is the retain-until date HEAD gave, or zero.
func retainUntil(h *s3.HeadObjectOutput) time.Time {
	if u := h.ObjectLockRetainUntilDate; u != nil {
		return u.UTC()
	}
	return time.Time{}
}

// hasLockHeaders reports whether HEAD said anything about Object Lock;
// when it did, its answer is final.
func hasLockHeaders(h *s3.HeadObjectOutput) bool {
	return h.ObjectLockLegalHoldStatus != "" || h.ObjectLockRetainUntilDate != nil || h.ObjectLockMode != ""
}

// refusalSaysLocked reads a refusal that HEAD cannot confirm (no Object
// Lock headers: R2's bucket lock rules, or credentials without
// s3:GetObjectRetention, for which AWS leaves them out): R2's own code, or
// a message about the lock (AWS and Versity "object lock", MinIO "WORM
// protected").
func refusalSaysLocked(err error) bool {
	if code, _ := errorCode(err); code == codeR2Locked {
		return true
	}
	var ae interface{ ErrorMessage() string }
	if !errors.As(err, &ae) {
		return false
	}
	msg := ae.ErrorMessage()
	return containsFold(msg, "object lock") || containsFold(msg, "retention") || containsFold(msg, "worm")
}
