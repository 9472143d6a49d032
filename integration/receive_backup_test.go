package integration

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// TestReceiveBackup: a server with archive_mode off whose WAL reaches an S3
// repository only through wal-receive. backup-push refuses it until
// wal-receive runs, then takes a backup that names wal-receive as its WAL
// source, waits for wal-receive to store the backup's WAL (it is paused
// meanwhile) and is DONE as soon as backup-push returns; check reports the
// slot; a restore of the backup starts and has the data, including a row
// committed after the backup that only wal-receive's partial holds.
func TestReceiveBackup(t *testing.T) {
	r := s3Repo(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{}) // archive_mode off
	pg.SQL(t, "CREATE TABLE items AS SELECT g AS id, 'item ' || g AS name FROM generate_series(1, 5000) g")

	// Neither archive_command nor wal-receive: refused, with both fixes.
	res := walvault(t, r.env, "backup-push", "--pg-conn", pg.ConnString())
	if res.code != 1 || !strings.Contains(res.stderr, "archive_mode = on") || !strings.Contains(res.stderr, "walvault wal-receive --slot") {
		t.Fatalf("backup-push without a WAL source: want exit 1 naming archive_mode and wal-receive, got %v", res)
	}
	assertEmptyRepo(t, r.backend)

	rc := startReceiver(t, r, pg, testenv.UserDir(t), "--create-slot")
	waitStreaming(t, pg, rc)
	waitIdentity(t, r.backend, rc)

	// wal-receive paused (SIGSTOP: its slot stays active) while the backup
	// runs: backup-push must wait for the backup's WAL, not record a
	// backup that is not restorable yet.
	if err := rc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	push := exec.Command(testenv.BuildWalvault(t), "backup-push", "--pg-conn", pg.ConnString())
	push.Env = append(cleanEnv(), r.env...)
	var stdout, stderr testenv.SyncBuffer
	push.Stdout, push.Stderr = &stdout, &stderr
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	pushed := make(chan error, 1)
	go func() { pushed <- push.Wait() }()
	t.Cleanup(func() {
		if push.ProcessState == nil {
			push.Process.Kill()
			<-pushed
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "waiting for wal-receive to store the WAL the backup needs") {
		select {
		case err := <-pushed:
			t.Fatalf("backup-push ended (%v) without waiting for the paused wal-receive:\n%s%s", err, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup-push is not waiting for wal-receive after 60s:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, b := range listBackups(t, r.env) {
		if b.Status != string(repository.StatusIncomplete) {
			t.Errorf("while backup-push waits for its WAL: %+v, want it INCOMPLETE (no manifest yet)", b)
		}
	}
	if err := rc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pushed:
		if err != nil {
			t.Fatalf("backup-push after wal-receive resumed: %v\n%s%s\nwal-receive log:\n%s", err, stdout.String(), stderr.String(), rc.stderr)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("backup-push still running 90s after wal-receive resumed:\n%s", stderr.String())
	}
	t.Logf("backup-push:\n%s%s", stdout.String(), stderr.String())
	if !strings.Contains(stderr.String(), "WAL source: wal-receive on slot walvault") || strings.Contains(stderr.String(), "WAL source: archive_command") {
		t.Errorf("backup-push does not name wal-receive on slot walvault as its WAL source:\n%s", stderr.String())
	}
	// DONE as soon as backup-push returns: backup-list counts the WAL
	// wal-receive stored.
	list := listBackups(t, r.env)
	if len(list) != 1 || list[0].Status != string(repository.StatusDone) {
		t.Fatalf("backup-list right after backup-push: %+v, want one DONE backup", list)
	}
	id := list[0].ID

	pg.SQL(t, "INSERT INTO items VALUES (0, 'after the backup')")
	time.Sleep(2 * time.Second) // max-lag 300ms plus a margin

	// check: the slot is active with its lag; archive_mode off is no
	// failure while wal-receive streams.
	lines, res := checkJSON(t, r.env, "--pg-conn", pg.ConnString())
	if res.code != 0 {
		t.Errorf("check with wal-receive as the WAL source: want exit 0, got %v", res)
	}
	got := checkByName(lines)
	slot := got["wal-receive slot"]
	for _, want := range []string{"walvault: active, wal-receive streaming", "flushed to the repository up to ", " behind the server", "lag", "retained since restart_lsn", "the repository holds WAL up to the flushed position"} {
		if !strings.Contains(slot.Detail, want) {
			t.Errorf("wal-receive slot line %+v lacks %q", slot, want)
		}
	}
	if !slot.OK {
		t.Errorf("wal-receive slot line: %+v, want OK", slot)
	}
	if l := got["archive_mode"]; !l.OK || !strings.Contains(l.Detail, "wal-receive on slot walvault") {
		t.Errorf("archive_mode line: %+v, want OK naming wal-receive", l)
	}
	t.Logf("check:\n%s", walvault(t, r.env, "check", "--pg-conn", pg.ConnString()).stdout)

	// wal-receive stopped: check --slot fails on the inactive slot, and
	// backup-push refuses, pointing at it.
	rc.stop(t)
	res = walvault(t, r.env, "check", "--slot", "walvault", "--pg-conn", pg.ConnString())
	if res.code != 1 || !strings.Contains(res.stdout, "wal-receive slot: FAILED (walvault: inactive") {
		t.Errorf("check --slot with wal-receive stopped: want exit 1 and the slot FAILED as inactive, got %v", res)
	}
	res = walvault(t, r.env, "backup-push", "--pg-conn", pg.ConnString())
	if res.code != 1 || !strings.Contains(res.stderr, "slot 'walvault' exists but is inactive") {
		t.Errorf("backup-push with wal-receive stopped: want a refusal naming the inactive slot, got %v", res)
	}
	pg.StopImmediate(t)

	restored := restoreAndStart(t, r, true, "--backup", id)
	if n := restored.SQL(t, "SELECT count(*) FROM items WHERE id > 0"); n != "5000" {
		t.Errorf("restored items: %s rows, want 5000", n)
	}
	if got := restored.SQL(t, "SELECT coalesce((SELECT name FROM items WHERE id = 0), 'missing')"); got != "after the backup" {
		t.Errorf("the row committed after the backup: %q, want it restored from wal-receive's partial\nwal-receive log:\n%s", got, rc.stderr)
	}
}

// waitIdentity waits until wal-receive has created walvault.json: backup-push
// wants a repository that WAL of this cluster already reached.
func waitIdentity(t *testing.T, b storage.Backend, rc *receiver) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := repository.LoadIdentity(context.Background(), b)
		if err == nil {
			return
		}
		// Any error is waited out: the test's backend has no retry
		// layer, and the gateway may answer 500 to a versions listing
		// while the object is being written.
		if time.Now().After(deadline) {
			t.Fatalf("no %s from wal-receive: %v\n%s", repository.IdentityKey, err, rc.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
