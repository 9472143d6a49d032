package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
)

// backupListing is the documented backup-list --json schema (the fields the
// tests rely on).
type backupListing struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	StartLSN string `json:"start_lsn"`
	StopLSN  string `json:"stop_lsn"`
	StopWAL  string `json:"stop_wal"`
	RawBytes int64  `json:"raw_bytes"`
	// StopTime is when the backup ended at the latest: its measure of
	// the server's clock is a bound, later by the measure's uncertainty
	// (half a round trip, more on a loaded host).
	StopTime *time.Time `json:"stop_time"`
}

func listBackups(t *testing.T, env []string) []backupListing {
	t.Helper()
	res := walvault(t, env, "backup-list", "--json")
	if res.code != 0 {
		t.Fatalf("backup-list: %v", res)
	}
	var list []backupListing
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		t.Fatalf("backup-list --json is not the documented JSON: %v\n%s", err, res.stdout)
	}
	return list
}

// backupPush runs backup-push against pg and returns the new backup's id.
func backupPush(t *testing.T, r *repo, pg *testenv.Postgres, extra ...string) string {
	t.Helper()
	return backupPushFrom(t, r, pg, pg, extra...)
}

// backupPushFrom runs backup-push against source, primary itself or a
// standby of it, and returns the new backup's id.
func backupPushFrom(t *testing.T, r *repo, primary, source *testenv.Postgres, extra ...string) string {
	t.Helper()
	// backup-push wants a repository that WAL already reached.
	primary.WaitArchived(t, primary.SwitchWAL(t), 60*time.Second)
	before := map[string]bool{}
	for _, b := range listBackups(t, r.env) {
		before[b.ID] = true
	}
	args := append([]string{"backup-push", "--pg-conn", source.ConnString()}, extra...)
	res := walvault(t, r.env, args...)
	if res.code != 0 {
		t.Fatalf("backup-push: %v", res)
	}
	for _, b := range listBackups(t, r.env) {
		if !before[b.ID] {
			// A restore to a time before the recorded stop does not
			// pick this backup; the tests take targets right after it,
			// so they wait for the server's clock (this host's) to pass
			// the bound, as a DBA's later target does.
			if b.StopTime != nil {
				time.Sleep(min(time.Until(*b.StopTime)+time.Millisecond, 5*time.Second))
			}
			return b.ID
		}
	}
	t.Fatalf("backup-push succeeded but backup-list shows no new backup:\n%s", res.stderr)
	return ""
}

// waitDone waits until backup-list says the backup is DONE: its WAL is
// archived.
func waitDone(t *testing.T, r *repo, id string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, b := range listBackups(t, r.env) {
			if b.ID == id && b.Status == string(repository.StatusDone) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup %s is not DONE after 60s: %+v", id, listBackups(t, r.env))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestBackupPushAndList(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		pg, _ := archivingServer(t, r)
		pg.Pgbench(t, "-i", "-s", "2", "-q")
		pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)

		id := backupPush(t, r, pg, "--part-size", "4MiB", "--max-rate", "1GiB") // max-rate end to end: the limit is far above what this takes
		waitDone(t, r, id)
		m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Archives) != 1 || len(m.Archives[0].Parts) < 3 {
			t.Fatalf("a pgbench -s 2 backup in 4 MiB parts: got %d archives, %d parts", len(m.Archives), len(m.Archives[0].Parts))
		}
		sysid := pg.SQL(t, "SELECT system_identifier FROM pg_control_system()")
		if m.SystemID != sysid || m.PGVersion/10000 != 15 || m.StartLSN == "" || m.StopLSN == "" {
			t.Fatalf("manifest: %+v", m)
		}
		table := walvault(t, r.env, "backup-list")
		if table.code != 0 || !strings.Contains(table.stdout, id) || !strings.Contains(table.stdout, "DONE") {
			t.Fatalf("backup-list table: %v", table)
		}
	})
}

func TestBackupPushRefusals(t *testing.T) {
	r := fileRepo(t)
	// A server that does not archive at all.
	plain := testenv.StartPostgres(t, testenv.PostgresOptions{})
	res := walvault(t, r.env, "backup-push", "--pg-conn", plain.ConnString())
	if res.code == 0 || !strings.Contains(res.stderr, "archive_mode") {
		t.Fatalf("backup of a server with archive_mode off: want a refusal naming archive_mode, got %v", res)
	}
	pg, _ := archivingServer(t, r)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	res = walvault(t, r.env, "backup-push", "--pg-conn", pg.ConnString()+" user=nosuchrole")
	if res.code == 0 || !strings.Contains(res.stderr, "nosuchrole") {
		t.Fatalf("backup as a missing role: want an error naming it, got %v", res)
	}
	pg.SQL(t, "CREATE ROLE plain LOGIN")
	res = walvault(t, r.env, "backup-push", "--pg-conn", pg.ConnString()+" user=plain")
	if res.code == 0 || !strings.Contains(strings.ToLower(res.stderr), "replication") {
		t.Fatalf("backup as a role without REPLICATION: want an error about it, got %v", res)
	}
}

// TestInterruptedBackupIsIncomplete kills backup-push midway: the backup
// shows as INCOMPLETE and is never LATEST.
func TestInterruptedBackupIsIncomplete(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.Pgbench(t, "-i", "-s", "2", "-q")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	good := backupPush(t, r, pg)
	waitDone(t, r, good)
	time.Sleep(time.Second) // the next backup gets the next id

	pg.Pgbench(t, "-i", "-s", "10", "-q")
	cmd := exec.Command(testenv.BuildWalvault(t), "backup-push", "--pg-conn", pg.ConnString(), "--part-size", "1MiB", "--checkpoint", "fast")
	cmd.Env = append(cleanEnv(), r.env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !killed {
		matches, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(r.url, "file://"), "backups", "*", "base.tar.00002*"))
		if len(matches) > 0 {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Wait()
	if !killed {
		t.Fatal("backup-push never stored a third part to interrupt")
	}
	var incomplete string
	for _, b := range listBackups(t, r.env) {
		if b.Status == string(repository.StatusIncomplete) {
			incomplete = b.ID
		}
	}
	if incomplete == "" {
		t.Fatalf("the killed backup is not listed as INCOMPLETE: %+v", listBackups(t, r.env))
	}
	bi, err := repository.FindBackup(mustList(t, r), "LATEST")
	if err != nil || bi.ID != good {
		t.Fatalf("LATEST = %s, %v; want the complete backup %s, never the interrupted %s", bi.ID, err, good, incomplete)
	}
}

func mustList(t *testing.T, r *repo) []repository.BackupInfo {
	t.Helper()
	list, err := repository.ListBackups(t.Context(), r.backend)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestBackupDamagedPageChecksum: a page whose checksum does not match
// fails backup-push (PostgreSQL verifies checksums as it reads), naming
// the file; --no-verify-checksums takes the backup anyway, as a DBA wants
// before repairing the page, and its manifest says so (explore23d F10).
func TestBackupDamagedPageChecksum(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE damaged AS SELECT g, repeat('z', 200) AS pad FROM generate_series(1, 20000) g; CHECKPOINT")
	file := filepath.Join(pg.DataDir, pg.SQL(t, "SELECT pg_relation_filepath('damaged')"))
	pg.Stop(t)
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, 8192*3+4000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pg.Start(t)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)

	res := walvault(t, r.env, "backup-push", "--pg-conn", pg.ConnString())
	if res.code == 0 || !strings.Contains(res.stderr, "checksum") || !strings.Contains(res.stderr, "--no-verify-checksums") {
		t.Fatalf("backup-push over a damaged page: want a failure naming the checksum, got %v", res)
	}
	id := backupPush(t, r, pg, "--no-verify-checksums")
	m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
	if err != nil || !m.ChecksumsUnverified {
		t.Errorf("manifest of the backup without checksum verification: %+v, %v; want checksums_unverified", m.ChecksumsUnverified, err)
	}
	// Said where a DBA looks (explore23f F4).
	if res := walvault(t, r.env, "info", id); res.code != 0 || !strings.Contains(res.stdout, "NOT VERIFIED") {
		t.Errorf("info %s: want it to say the checksums were not verified, got %v", id, res)
	}
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	if _, res := restoreInto(t, r, "--backup", id); !strings.Contains(res.stdout+res.stderr, "was taken with --no-verify-checksums") {
		t.Errorf("restore of %s: want a warning that its checksums were not verified, got %v", id, res)
	}
}
