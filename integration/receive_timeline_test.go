package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// TestReceiveFollowsPromotion: wal-receive streams from a standby that is
// then promoted. It follows the switch to timeline 2 without a restart,
// stores 00000002.history, and a restore of the latest state reaches a
// row committed on the new timeline that no archive_command shipped.
func TestReceiveFollowsPromotion(t *testing.T) {
	r := s3Repo(t)
	primary, _ := archivingServer(t, r)
	primary.SQL(t, "CREATE TABLE marks (id serial PRIMARY KEY, note text)")
	id := backupPush(t, r, primary)
	waitDone(t, r, id)

	standby := startStandby(t, r, primary)
	receiveFollowsPromotion(t, r, primary, standby, id)
}

// receiveFollowsPromotion runs wal-receive on standby (of primary, whose
// table marks is empty and in backup id), commits a row on timeline 1,
// stops primary, promotes standby and commits a row on timeline 2. It
// fails unless wal-receive follows the switch without a restart, stores
// 00000002.history and a partial of timeline 2, and a restore of the
// latest state has both rows.
func receiveFollowsPromotion(t *testing.T, r *repo, primary, standby *testenv.Postgres, id string) {
	t.Helper()
	spool := testenv.UserDir(t)
	rc := startReceiver(t, r, standby, spool, "--create-slot")
	waitStreaming(t, standby, rc)

	primary.SQL(t, "INSERT INTO marks (note) VALUES ('on timeline 1')")
	waitReplayed(t, primary, standby)
	// The old primary must not go on writing timeline 1 into the
	// repository once the standby has taken over.
	primary.Stop(t)

	if out, err := standby.Command(t, "pg_ctl", "-D", standby.DataDir, "promote", "-w").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl promote: %v\n%s", err, out)
	}
	waitPromoted(t, standby)
	standby.SQL(t, "INSERT INTO marks (note) VALUES ('on timeline 2')")

	history := repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.None)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := r.backend.Stat(context.Background(), history)
		if err == nil && hasTimelinePartial(t, r, 2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the promotion: history %s (%v), partials %v\nwal-receive log:\n%s", history, err, partialKeys(t, r.backend), rc.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(rc.stderr.String(), "following the next one") {
		t.Errorf("wal-receive did not log following the timeline switch:\n%s", rc.stderr)
	}
	time.Sleep(time.Second) // max-lag 300ms plus a margin
	standby.StopImmediate(t)
	rc.stop(t)

	restored := restoreAndStart(t, r, true, "--backup", id)
	if got := restored.SQL(t, "SELECT string_agg(note, ',' ORDER BY id) FROM marks"); got != "on timeline 1,on timeline 2" {
		t.Fatalf("marks after restore: %q, want on timeline 1,on timeline 2\nwal-receive log:\n%s", got, rc.stderr)
	}
}

// startStandby makes a streaming standby of primary with pg_basebackup -R.
// It does not archive.
func startStandby(t *testing.T, r *repo, primary *testenv.Postgres) *testenv.Postgres {
	t.Helper()
	return startStandbyWith(t, r, primary, testenv.PostgresOptions{})
}

// startStandbyWith is startStandby with more server options (DataDir and
// Env are set for it).
func startStandbyWith(t *testing.T, r *repo, primary *testenv.Postgres, opts testenv.PostgresOptions) *testenv.Postgres {
	t.Helper()
	dir := filepath.Join(testenv.UserDir(t), "standby")
	out, err := primary.Command(t, "pg_basebackup", "-D", dir, "-R", "-X", "stream", "-c", "fast",
		"-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port()), "-U", primary.User).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_basebackup for a standby: %v\n%s", err, out)
	}
	opts.DataDir, opts.Env = dir, r.env
	return testenv.StartPostgres(t, opts)
}

// waitReplayed waits until standby has replayed everything primary wrote
// so far.
func waitReplayed(t *testing.T, primary, standby *testenv.Postgres) {
	t.Helper()
	target := primary.SQL(t, "SELECT pg_current_wal_lsn()")
	deadline := time.Now().Add(30 * time.Second)
	for standby.SQL(t, "SELECT pg_last_wal_replay_lsn() >= '"+target+"'::pg_lsn") != "t" {
		if time.Now().After(deadline) {
			t.Fatalf("standby did not replay up to %s within 30s:\n%s", target, standby.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasTimelinePartial(t *testing.T, r *repo, tli wal.TimelineID) bool {
	prefix := fmt.Sprintf("%s%08X/", repository.PartialPrefix, uint32(tli))
	for _, k := range partialKeys(t, r.backend) {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// startStandbyFromRepo makes a streaming standby of primary from r's
// latest DONE backup: restored to the end of the archive, then started
// with standby.signal and primary_conninfo, so it replays what the archive
// holds and streams the rest from primary. Unlike startStandby it works on
// every major: PostgreSQL 15's pg_basebackup refuses servers newer than
// itself. opts may set the standby's archive_command and settings; DataDir,
// Env and the major (the backup's) are set here; restoreArgs go to restore.
func startStandbyFromRepo(t *testing.T, r *repo, primary *testenv.Postgres, opts testenv.PostgresOptions, restoreArgs ...string) *testenv.Postgres {
	t.Helper()
	dir, _ := restoreInto(t, r, restoreArgs...)
	if err := os.Rename(filepath.Join(dir, "recovery.signal"), filepath.Join(dir, "standby.signal")); err != nil {
		t.Fatal(err)
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s application_name=walvault_it_standby", primary.Port(), primary.User)
	f, err := os.OpenFile(filepath.Join(dir, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "primary_conninfo = '%s'\n", conninfo)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	opts.DataDir, opts.Env = dir, r.env
	return testenv.StartPostgres(t, opts)
}
