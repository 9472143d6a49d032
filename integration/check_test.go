package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// checkLine is one element of check --json.
type checkLine struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func checkJSON(t *testing.T, env []string, args ...string) ([]checkLine, result) {
	t.Helper()
	res := walvault(t, env, append([]string{"check", "--json"}, args...)...)
	var lines []checkLine
	if err := json.Unmarshal([]byte(res.stdout), &lines); err != nil {
		t.Fatalf("check --json is not a JSON array of {name, ok, detail}: %v\n%v", err, res)
	}
	return lines, res
}

func checkByName(lines []checkLine) map[string]checkLine {
	m := map[string]checkLine{}
	for _, l := range lines {
		m[l.Name] = l
	}
	return m
}

// allChecks are the check names, in their order.
var allChecks = []string{"repository", "repository identity", "PostgreSQL", "wal_level", "archive_mode", "archive_command",
	"archiver", "archive lag", "backup age", "backup count", "WAL continuity", "Object Lock", "pg_wal free space"}

func TestCheckHealthy(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		pg, _ := archivingServer(t, r)
		pg.SQL(t, "CREATE TABLE t AS SELECT 1 AS x")
		id := backupPush(t, r, pg)
		waitDone(t, r, id)

		res := walvault(t, r.env, "check", "--pg-conn", pg.ConnString())
		if res.code != 0 {
			t.Fatalf("check of a healthy setup: %v", res)
		}
		t.Logf("check:\n%s", res.stdout)
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != len(allChecks) {
			t.Fatalf("%d lines, want one per check (%d):\n%s", len(lines), len(allChecks), res.stdout)
		}
		for i, name := range allChecks {
			if !strings.HasPrefix(lines[i], name+": OK") {
				t.Errorf("line %d = %q, want %q OK", i+1, lines[i], name)
			}
		}
		// On the database host, as root: the repository in the server's
		// environment and the free space are really checked.
		for _, want := range []string{"archive_command: OK (runs walvault wal-push into this repository, named by WALVAULT_REPO in the server's environment; segment ", "pg_wal free space: OK (", " free, "} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, res.stdout)
			}
		}
		got, res := checkJSON(t, r.env, "--pg-conn", pg.ConnString())
		if res.code != 0 || len(got) != len(allChecks) {
			t.Fatalf("check --json: %+v\n%v", got, res)
		}
		for _, l := range got {
			if !l.OK || l.Detail == "" {
				t.Errorf("check --json: %+v, want ok with a detail", l)
			}
		}
		if res := walvault(t, r.env, "check", "--pg-conn", pg.ConnString(), "--min-backups", "2"); res.code != 1 || !strings.Contains(res.stdout, "backup count: FAILED (1 DONE backup, min-backups wants 2") {
			t.Errorf("check with min-backups 2 and one backup: %v", res)
		}
	})
}

func TestCheckArchiveModeOff(t *testing.T) {
	r := fileRepo(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	lines, res := checkJSON(t, r.env, "--pg-conn", pg.ConnString())
	if res.code != 1 {
		t.Fatalf("check of a server with archive_mode off: want exit 1, got %v", res)
	}
	got := checkByName(lines)
	if l := got["archive_mode"]; l.OK || !strings.Contains(l.Detail, "archive_mode = on") {
		t.Fatalf("archive_mode line: %+v, want FAILED saying to set archive_mode = on", l)
	}
	if !got["PostgreSQL"].OK || !got["wal_level"].OK {
		t.Errorf("PostgreSQL and wal_level are fine: %+v", lines)
	}
	text := walvault(t, r.env, "check", "--pg-conn", pg.ConnString())
	if !strings.Contains(text.stdout, "archive_mode: FAILED (archive_mode is off") || !strings.Contains(text.stderr, "checks FAILED") {
		t.Fatalf("text output: %v", text)
	}
}

func TestCheckOtherCluster(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	// Another cluster, archiving into the same repository (which refuses
	// its WAL).
	other, _ := archivingServer(t, r)
	lines, res := checkJSON(t, r.env, "--pg-conn", other.ConnString())
	if res.code != 1 {
		t.Fatalf("check of another cluster's repository: want exit 1, got %v", res)
	}
	mine := pg.SQL(t, "SELECT system_identifier FROM pg_control_system()")
	theirs := other.SQL(t, "SELECT system_identifier FROM pg_control_system()")
	l := checkByName(lines)["repository identity"]
	if l.OK || !strings.Contains(l.Detail, mine) || !strings.Contains(l.Detail, theirs) {
		t.Fatalf("repository identity: %+v, want FAILED naming %s (the repository's) and %s (the server's)", l, mine, theirs)
	}
	if l := checkByName(lines)["repository identity"]; !strings.Contains(l.Detail, "belongs to") {
		t.Errorf("detail should say whose repository it is: %s", l.Detail)
	}
}

// TestCheckPrintsNoSecret: whatever fails, check never prints a value of an
// AWS_*SECRET* variable nor the password in the connection string, not even
// when archive_command carries a secret.
func TestCheckPrintsNoSecret(t *testing.T) {
	r := s3Repo(t)
	const password = "pw-Zq8vN3xT"
	var secrets []string
	for _, kv := range r.env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") && strings.Contains(k, "SECRET") {
			secrets = append(secrets, v)
		}
	}
	if len(secrets) == 0 {
		t.Fatal("the S3 test environment has no AWS_*SECRET* variable to leak")
	}
	// A server whose archive_command holds the secret and does not run
	// walvault: its FAILED line quotes the command.
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: "AWS_SECRET_ACCESS_KEY=" + secrets[0] + " /bin/true %p"})
	for _, conn := range []string{
		pg.ConnString() + " password=" + password,
		"host=127.0.0.1 port=1 user=postgres password=" + password + " connect_timeout=2", // unreachable
		"postgres://postgres:" + password + "@127.0.0.1:1/postgres?connect_timeout=2",
	} {
		// A short --timeout: the segment archive_command never brings is
		// waited for that long.
		for _, args := range [][]string{{"check", "--timeout", "5s", "--pg-conn", conn}, {"check", "--json", "--timeout", "5s", "--pg-conn", conn}, {"check", "--log-level", "debug", "--timeout", "5s", "--pg-conn", conn}} {
			res := walvault(t, append(r.env, "PGPASSWORD="+password), args...)
			if res.code != 1 {
				t.Errorf("check %v: want exit 1 (archive_command fails), got %v", args[1:], res)
			}
			out := res.stdout + res.stderr
			for _, s := range append(secrets, password) {
				if strings.Contains(out, s) {
					t.Fatalf("check %v printed the secret %q:\n%s", args[1:], s, out)
				}
			}
		}
	}
	res := walvault(t, r.env, "check", "--timeout", "5s", "--pg-conn", pg.ConnString())
	if !strings.Contains(res.stdout, "archive_command: FAILED (archive_command is \"AWS_SECRET_ACCESS_KEY=[REDACTED] /bin/true %p\"") {
		t.Errorf("archive_command line should quote the command with the secret redacted:\n%s", res.stdout)
	}
}

// TestCheckUnreachableRepository: with the repository down, check says so
// once and does not wait another --timeout to prove archiving reaches it
// (the archive_command line then judges the command's words); the checks
// that need the repository say they were not checked.
func TestCheckUnreachableRepository(t *testing.T) {
	r := s3Repo(t)
	pg, _ := archivingServer(t, r)
	r.stop(t)
	lines, res := checkJSON(t, append(r.env, "WALVAULT_TIMEOUT=3s"), "--pg-conn", pg.ConnString())
	if res.code != 1 {
		t.Fatalf("check with the repository down: %v", res)
	}
	got := checkByName(lines)
	if l := got["repository"]; l.OK || !strings.Contains(l.Detail, "not reachable") {
		t.Errorf("repository line: %+v", l)
	}
	if l := got["archive_command"]; !strings.Contains(l.Detail, "runs walvault wal-push into this repository") || strings.Contains(l.Detail, "cannot see whether") {
		t.Errorf("archive_command line with the repository down: %+v, want the command's words judged, no proof waited for", l)
	}
	if l := got["backup age"]; l.OK || !strings.Contains(l.Detail, "not checked") {
		t.Errorf("backup age line: %+v", l)
	}
}

// TestCheckArchiverFailingNoSwitch: while PostgreSQL's archiver fails,
// check does not switch WAL (every run would add a segment to pg_wal
// through the outage, and the archiver retries the failed one first): its
// archive_command line fails naming the segment the archiver is stuck on,
// and the server's WAL position stays in the same segment.
func TestCheckArchiverFailingNoSwitch(t *testing.T) {
	r := fileRepo(t)
	broken := filepath.Join(testenv.UserDir(t), "outage")
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: "test ! -e " + broken + " && " + testenv.BuildWalvault(t) + " wal-push %p", Env: r.env})
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	if err := os.WriteFile(broken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stuck := pg.SwitchWAL(t)
	deadline := time.Now().Add(30 * time.Second)
	for pg.SQL(t, "SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver") != stuck {
		if time.Now().After(deadline) {
			t.Fatalf("the archiver did not fail on %s", stuck)
		}
		time.Sleep(100 * time.Millisecond)
	}
	position := "SELECT pg_walfile_name(pg_current_wal_insert_lsn())"
	before := pg.SQL(t, position)
	lines, res := checkJSON(t, r.env, "--pg-conn", pg.ConnString(), "--timeout", "2s")
	l := checkByName(lines)["archive_command"]
	if res.code != 1 || l.OK || !strings.Contains(l.Detail, stuck+", which PostgreSQL's archiver keeps failing to archive") {
		t.Errorf("archive_command line while the archiver fails on %s: %+v, want FAILED naming it\n%v", stuck, l, res)
	}
	if after := pg.SQL(t, position); after != before {
		t.Errorf("check moved the server from segment %s to %s while the archiver was failing: it switched WAL", before, after)
	}
}
