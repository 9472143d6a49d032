package check

import (
	"path/filepath"
	"time"

	"github.com/walvault/walvault/archive"
)

// NamePushAhead is the line of a pause of wal-push's push-ahead after a
// cut-off on a slow link; it appears only while one is in force.
const NamePushAhead = "push-ahead"

// checkPushAhead reports a push-ahead pause (seen on the database host):
// archiving works, one file per call, so the line is OK and says why and
// what to change.
func (c *checker) checkPushAhead() []Result {
	l := c.localServer()
	if l.why != "" {
		return nil
	}
	until, paused := archive.AheadPausedUntil(filepath.Join(l.dataDir, "pg_wal"))
	if !paused {
		return nil
	}
	return []Result{ok(NamePushAhead, "paused until %s: a wal-push's own file was not archived within half its --timeout while files were pushed ahead beside it, so those were cut off; until then, or until a call's file goes through quickly, each call pushes only its own file (the storage was failing or the link is slow: if slow, lower upload-concurrency or raise --timeout)",
		until.UTC().Format(time.RFC3339))}
}
