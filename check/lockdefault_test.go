package check

import (
	"context"
	"strings"
	"testing"

	"github.com/walvault/walvault/storage"
)

// fakeLockDefault is a bucket with Object Lock and a default retention.
type fakeLockDefault struct {
	fakeLock
	mode storage.RetentionMode
	days int
}

func (f fakeLockDefault) ObjectLockDefault(context.Context) (bool, storage.RetentionMode, int, error) {
	return f.enabled, f.mode, f.days, f.err
}

// TestObjectLockWeakerThanBucketDefault: an object's own retention
// replaces the bucket's default, so a lock policy weaker than the default
// (governance under a compliance default, or fewer days) fails the Object
// Lock check; an equal or stronger one, or no default, passes.
func TestObjectLockWeakerThanBucketDefault(t *testing.T) {
	c, b := newChecker(t)
	c.opts.LockMode, c.opts.LockDays = storage.Governance, 7
	for _, tc := range []struct {
		mode storage.RetentionMode
		days int
		ok   bool
	}{
		{"", 0, true},
		{storage.Governance, 7, true},
		{storage.Governance, 3, true},
		{storage.Governance, 30, false},
		{storage.Compliance, 1, false},
	} {
		c.b = storage.WithRetry(fakeLockDefault{fakeLock: fakeLock{Backend: b, enabled: true}, mode: tc.mode, days: tc.days}, storage.DefaultRetryPolicy, nil)
		r := one(t, c.checkObjectLock(context.Background()))
		if r.OK != tc.ok || !tc.ok && !strings.Contains(r.Detail, "stricter than the lock policy walvault writes with") {
			t.Errorf("bucket default %s %d days, lock-mode governance 7 days: %+v; want OK %v", tc.mode, tc.days, r, tc.ok)
		}
	}
}
