package check

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestContinuityWhenBackupsCannotBeListed: a check that could not read what
// it checks says so and fails. When the backups cannot be listed, where the
// WAL must be continuous from is unknown: continuity fails with the reason
// instead of reporting "OK (no DONE backup yet)" from a second listing.
func TestContinuityWhenBackupsCannotBeListed(t *testing.T) {
	c, b := newChecker(t)
	c.opts.MinBackups = 0
	c.checkIdentity(context.Background())
	denied := errors.New("read directory /var/lib/walvault/backups/20260101T000000Z: permission denied")
	fault := storagetest.NewFault(b)
	// Only the backup checks' listing fails: a second one would work.
	fault.FailNth(storagetest.OpList, 1, storage.Permanent(denied))
	c.b = fault

	rs := c.checkBackups(context.Background())
	if len(rs) != 2 || rs[0].OK || rs[1].OK {
		t.Fatalf("backups that cannot be listed: got %+v, want backup age and count FAILED", rs)
	}
	r := one(t, c.checkContinuity(context.Background()))
	if r.OK || !strings.Contains(r.Detail, "cannot list backups") || !strings.Contains(r.Detail, denied.Error()) {
		t.Fatalf("continuity after the backups could not be listed: got %+v, want FAILED saying the backups cannot be listed and why", r)
	}
	if strings.Contains(r.Detail, "no DONE backup") {
		t.Errorf("continuity claims there is no backup: %+v", r)
	}

	// Once the backups list again, so does continuity.
	if rs := c.checkBackups(context.Background()); !rs[0].OK || !rs[1].OK {
		t.Fatalf("backups listed on the second try: %+v", rs)
	}
	if r := one(t, c.checkContinuity(context.Background())); !r.OK {
		t.Fatalf("continuity once the backups list: %+v", r)
	}
}
