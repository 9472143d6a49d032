package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// receiver is a wal-receive process running in the background.
type receiver struct {
	cmd    *exec.Cmd
	stderr *testenv.SyncBuffer
	done   chan error
}

func startReceiver(t *testing.T, r *repo, pg *testenv.Postgres, spool string, extra ...string) *receiver {
	t.Helper()
	args := append([]string{"wal-receive", "--slot", "walvault", "--max-lag", "300ms", "--pg-conn", pg.ConnString(), "--spool-dir", spool, "--log-level", "debug"}, extra...)
	// As the server user, like wal-push: the repository stays readable
	// by the restore_command of the restored server.
	cmd := testenv.ServerCommand(t, testenv.BuildWalvault(t), args...)
	cmd.Env = append(cleanEnv(), r.env...)
	rc := &receiver{cmd: cmd, stderr: &testenv.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = rc.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { rc.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-rc.done
		}
	})
	return rc
}

// stop sends SIGTERM and waits for a clean exit.
func (rc *receiver) stop(t *testing.T) {
	t.Helper()
	rc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-rc.done:
		if err != nil {
			t.Fatalf("wal-receive exited with %v after SIGTERM:\n%s", err, rc.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("wal-receive did not stop within 60s of SIGTERM:\n%s", rc.stderr)
	}
}

// waitStreaming waits until the slot is active.
func waitStreaming(t *testing.T, pg *testenv.Postgres, rc *receiver) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for pg.SQL(t, "SELECT coalesce((SELECT active::text FROM pg_replication_slots WHERE slot_name = 'walvault'), 'none')") != "true" {
		select {
		case err := <-rc.done:
			t.Fatalf("wal-receive exited (%v):\n%s", err, rc.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not active after 30s:\n%s", rc.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// receiveMetrics scrapes wal-receive's --metrics listener.
func receiveMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	m, err := testenv.ScrapeMetrics(addr)
	if err != nil {
		t.Fatalf("scrape wal-receive metrics: %v", err)
	}
	return m
}

func partialKeys(t *testing.T, b storage.Backend) []string {
	t.Helper()
	var keys []string
	err := b.List(context.Background(), repository.PartialPrefix, func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestReceiveSubSecondRPO, on file:// and S3: a marker committed after the last segment
// switch reaches the repository only through wal-receive's partials; after
// kill -9 of the primary a restore of the latest state has it. A receiver
// restarted mid-segment loses nothing.
func TestReceiveSubSecondRPO(t *testing.T) {
	repos(t, testReceive)
}

func testReceive(t *testing.T, r *repo) {
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE marks (id serial PRIMARY KEY, note text)")
	id := backupPush(t, r, pg)
	waitDone(t, r, id)

	// A missing slot is a clear error without --create-slot.
	res := walvault(t, r.env, "wal-receive", "--slot", "walvault", "--pg-conn", pg.ConnString(), "--spool-dir", t.TempDir())
	if res.code == 0 || !strings.Contains(res.stderr, "does not exist") {
		t.Fatalf("wal-receive without a slot: %v", res)
	}

	// A role without REPLICATION is named as the problem.
	pg.SQL(t, "CREATE ROLE norepl LOGIN")
	res = walvault(t, r.env, "wal-receive", "--slot", "walvault", "--create-slot", "--pg-conn", strings.Replace(pg.ConnString(), "user="+pg.User, "user=norepl", 1), "--spool-dir", t.TempDir())
	if res.code == 0 || !strings.Contains(res.stderr, "REPLICATION") {
		t.Fatalf("wal-receive as a role without REPLICATION: %v", res)
	}
	if keys := partialKeys(t, r.backend); len(keys) != 0 {
		t.Fatalf("refused wal-receive wrote %v", keys)
	}

	spool := testenv.UserDir(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	rc := startReceiver(t, r, pg, spool, "--create-slot", "--metrics", metricsAddr)
	waitStreaming(t, pg, rc)
	pg.SQL(t, "INSERT INTO marks (note) VALUES ('first')")
	time.Sleep(2 * time.Second)
	if len(partialKeys(t, r.backend)) == 0 {
		t.Fatalf("no partial in the repository 2s after a commit:\n%s", rc.stderr)
	}
	metrics := receiveMetrics(t, metricsAddr)
	if metrics["walvault_receive_connected"] != 1 || metrics["walvault_receive_bytes_total"] <= 0 || metrics["walvault_receive_partials_stored_total"] < 1 {
		t.Errorf("metrics while streaming: %v", metrics)
	}
	if lag, ok := metrics["walvault_receive_lag_seconds"]; !ok || lag > 1 {
		t.Errorf("walvault_receive_lag_seconds = %v (present %v) 2s after the last commit with --max-lag 300ms", lag, ok)
	}
	// A completed segment is stored by both wal-push and wal-receive,
	// without conflict, and its partials go away.
	switched := pg.SwitchWAL(t)
	pg.WaitArchived(t, switched, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(rc.stderr.String(), switched) || len(partialKeys(t, r.backend)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("wal-receive did not store %s and drop its partials: %v\n%s", switched, partialKeys(t, r.backend), rc.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A server restart: wal-receive reconnects.
	pg.Stop(t)
	pg.Start(t)
	waitStreaming(t, pg, rc)
	pg.SQL(t, "INSERT INTO marks (note) VALUES ('after restart')")
	time.Sleep(time.Second)
	rc.stop(t)

	// Restarted mid-segment: WAL written while it was down is streamed
	// from the slot.
	pg.SQL(t, "INSERT INTO marks (note) VALUES ('while stopped')")
	rc = startReceiver(t, r, pg, spool)
	waitStreaming(t, pg, rc)
	pg.SQL(t, "INSERT INTO marks (note) VALUES ('marker')")
	time.Sleep(2 * time.Second) // max-lag 300ms plus a margin
	pg.StopImmediate(t)
	rc.stop(t)
	if keys := partialKeys(t, r.backend); len(keys) != 1 {
		t.Errorf("partials after the run: %v, want exactly the newest one", keys)
	}

	restored := restoreAndStart(t, r, true, "--backup", id)
	if got := restored.SQL(t, "SELECT string_agg(note, ',' ORDER BY id) FROM marks"); got != "first,after restart,while stopped,marker" {
		t.Fatalf("marks after restore: %q, want first,after restart,while stopped,marker\nwal-receive log:\n%s", got, rc.stderr)
	}
}

// TestReceiveBadInput: a logical slot and a repository of another cluster
// are refused with a message naming the problem, a non-zero exit and
// nothing written.
func TestReceiveBadInput(t *testing.T) {
	r := fileRepo(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{Conf: map[string]string{"wal_level": "logical"}})
	pg.SQL(t, "SELECT pg_create_logical_replication_slot('logical', 'pgoutput')")
	res := walvault(t, r.env, "wal-receive", "--slot", "logical", "--pg-conn", pg.ConnString(), "--spool-dir", t.TempDir())
	if res.code == 0 || !strings.Contains(res.stderr, "logical slot") || !strings.Contains(res.stderr, "physical") {
		t.Errorf("wal-receive on a logical slot: %v", res)
	}
	assertEmptyRepo(t, r.backend)

	// The repository belongs to another cluster.
	other, _ := archivingServer(t, r)
	other.WaitArchived(t, other.SwitchWAL(t), 60*time.Second)
	before := listKeys(t, r, "")
	pg.SQL(t, "SELECT pg_create_physical_replication_slot('walvault', true)")
	res = walvault(t, r.env, "wal-receive", "--slot", "walvault", "--pg-conn", pg.ConnString(), "--spool-dir", t.TempDir())
	ours := pg.SQL(t, "SELECT system_identifier FROM pg_control_system()")
	theirs := other.SQL(t, "SELECT system_identifier FROM pg_control_system()")
	if res.code == 0 {
		t.Fatalf("wal-receive into another cluster's repository: %v", res)
	}
	for _, want := range []string{ours, theirs, "nothing was written"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("message lacks %q:\n%s", want, res.stderr)
		}
	}
	if after := listKeys(t, r, ""); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("refused wal-receive changed the repository: %v -> %v", before, after)
	}
}
