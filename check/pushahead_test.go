package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckPushAheadPause: a push-ahead pause in force gets an OK line that
// says until when; none without one, or after it ended.
func TestCheckPushAheadPause(t *testing.T) {
	c, dataDir := localChecker(t, "pg_wal/walvault")
	if rs := c.checkPushAhead(); len(rs) != 0 {
		t.Errorf("no pause: %+v, want no line", rs)
	}
	paused := filepath.Join(dataDir, "pg_wal", "walvault", "ahead-paused")
	if err := os.WriteFile(paused, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(paused)
	if err != nil {
		t.Fatal(err)
	}
	until := fi.ModTime().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	if r := one(t, c.checkPushAhead()); !r.OK || r.Name != NamePushAhead || !strings.Contains(r.Detail, "paused until "+until) {
		t.Errorf("a pause just begun: %+v, want OK and paused until %s", r, until)
	}
	long := time.Now().Add(-11 * time.Minute)
	if err := os.Chtimes(paused, long, long); err != nil {
		t.Fatal(err)
	}
	if rs := c.checkPushAhead(); len(rs) != 0 {
		t.Errorf("a pause that ended a minute ago: %+v, want no line", rs)
	}
}
