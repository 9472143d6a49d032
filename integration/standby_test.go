package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// TestStandbySurvivesStorageOutage: a standby whose restore_command cannot
// reach the repository stays up (wal-fetch exits 1 on a standby, not 200,
// which would shut it down), and streams from its primary meanwhile.
func TestStandbySurvivesStorageOutage(t *testing.T) {
	r := s3Repo(t)
	primary, _ := archivingServer(t, r)
	primary.SQL(t, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
	id := backupPush(t, r, primary)
	waitDone(t, r, id)
	standby := startStandbyFromRepo(t, r, primary, testenv.PostgresOptions{}, "--timeout", "3s")
	waitReplayed(t, primary, standby)

	// The stream breaks, then the storage goes: the standby's next
	// restore_command calls fail.
	primary.Stop(t)
	r.stop(t)
	waitFor(t, 60*time.Second, "a failed wal-fetch on the standby", func() bool {
		return strings.Contains(standby.LogTail(10000), "this server is a standby: exit 1")
	})
	if got := standby.SQL(t, "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("standby after failed restore_command calls: pg_is_in_recovery = %s", got)
	}
	primary.Start(t)
	primary.SQL(t, "INSERT INTO t VALUES (2)")
	waitReplayed(t, primary, standby)
	if got := standby.SQL(t, "SELECT count(*) FROM t"); got != "2" {
		t.Errorf("standby streaming during the storage outage: %s rows, want 2", got)
	}
}
