package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrefetchRecovery replays a dozen archived segments through
// restore_command with prefetch on: recovery succeeds with the right data,
// segments are handed over from the cache, and no prefetcher nor cached
// segment outlives the recovery.
func TestPrefetchRecovery(t *testing.T) {
	r := fileRepo(t)
	r.env = append(r.env, "WALVAULT_PREFETCH=8")
	pg, _ := archivingServer(t, r)
	pg.Pgbench(t, "-i", "-s", "1", "-q")
	pg.SQL(t, "CREATE TABLE marker (n int)")
	id := backupPush(t, r, pg)
	pg.Pgbench(t, "-t", "300", "-c", "2")
	const rounds = 12
	var last string
	for i := 1; i <= rounds; i++ {
		pg.SQL(t, "INSERT INTO marker VALUES ("+strconv.Itoa(i)+")")
		last = pg.SwitchWAL(t)
	}
	pg.WaitArchived(t, last, 60*time.Second)
	waitDone(t, r, id)
	want := pg.SQL(t, "SELECT sum(abalance) FROM pgbench_accounts")

	restored := restoreAndStart(t, r, true, "--backup", id)
	if got := restored.SQL(t, "SELECT count(*) FROM marker"); got != strconv.Itoa(rounds) {
		t.Errorf("marker rows after recovery: %s, want %d (every archived segment replayed)", got, rounds)
	}
	if got := restored.SQL(t, "SELECT sum(abalance) FROM pgbench_accounts"); got != want {
		t.Errorf("pgbench balance after recovery: %s, want %s", got, want)
	}
	log := restored.LogTail(2000)
	if n := strings.Count(log, "restored from prefetch"); n < 3 {
		t.Errorf("server log shows %d hand-overs from the prefetch cache, want at least 3:\n%s", n, restored.LogTail(60))
	}

	// No prefetcher outlives the recovery for long.
	dir := filepath.Join(restored.DataDir, "pg_wal", "walvault", "prefetch")
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", "wal-prefetch .*--dir="+dir).Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prefetch processes still running 15s after recovery ended: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The cache was cleared when recovery ended (PostgreSQL asks for the
	// next timeline's history file); at most a batch started just before
	// may have landed.
	var cached []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			cached = append(cached, path)
		}
		return nil
	})
	if len(cached) > 16 {
		t.Errorf("prefetch cache after recovery holds %d files, want at most one batch: %q", len(cached), cached)
	}
	t.Logf("prefetch cache after recovery: %d files", len(cached))
}
