package integration

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
)

// utcNow is the server's clock_timestamp() in a form --target-time takes.
const utcNow = `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

// restoreAndStart restores into a fresh directory with args, starts the
// result without archiving (it must never write into the repository) and
// waits for recovery to end when the target action promotes.
func restoreAndStart(t *testing.T, r *repo, promote bool, args ...string) *testenv.Postgres {
	t.Helper()
	dir, _ := restoreInto(t, r, args...)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: r.env})
	if promote {
		waitPromoted(t, pg)
	}
	return pg
}

// restoreInto restores into a fresh directory with args and returns it
// with restore's output; it fails the test unless the restore succeeded
// and wrote recovery.signal.
func restoreInto(t *testing.T, r *repo, args ...string) (string, result) {
	t.Helper()
	dir := filepath.Join(testenv.UserDir(t), "restored")
	res := walvault(t, r.env, append([]string{"restore", "--pgdata", dir}, args...)...)
	if res.code != 0 {
		t.Fatalf("restore %v: %v", args, res)
	}
	for _, want := range []string{"restored backup", "pg_ctl -D"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("restore output lacks %q:\n%s", want, res.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "recovery.signal")); err != nil {
		t.Fatalf("no recovery.signal after restore: %v", err)
	}
	return dir, res
}

func waitPromoted(t *testing.T, pg *testenv.Postgres) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for pg.SQL(t, "SELECT pg_is_in_recovery()") != "f" {
		if time.Now().After(deadline) {
			t.Fatalf("restored server still in recovery after 60s:\n%s", pg.LogTail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPointInTimeRestore is the seed scenario: a marker row, a WAL switch,
// a destructive change, and a restore to just before it.
func TestPointInTimeRestore(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		pg, _ := archivingServer(t, r)
		_, target := seedScenario(t, r, pg)
		dir, res := restoreInto(t, r, "--target-time", target, "--target-action", "promote", "--max-rate", "1GiB", "--archive-mode", "off")
		if !strings.Contains(res.stdout, "archiving: off") {
			t.Errorf("restore --archive-mode off does not say archiving is off:\n%s", res.stdout)
		}
		// The restored server's environment names another repository (a
		// prefix since abandoned): the settings file restore wrote wins,
		// with a warning, and recovery reaches the target. Its
		// configuration turns archiving on; --archive-mode off beats it.
		env := append(slices.Clone(r.env), "WALVAULT_REPO=file:///nonexistent/abandoned-prefix")
		restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: env, ArchiveCommand: "false"})
		waitPromoted(t, restored)
		checkSeedRestored(t, restored)
		if got := restored.SQL(t, "SHOW archive_mode"); got != "off" {
			t.Errorf("archive_mode of a copy restored with --archive-mode off: %s, want off", got)
		}
		if log := restored.LogTail(10000); !strings.Contains(log, "settings in the environment ignored") || !strings.Contains(log, "WALVAULT_REPO") {
			t.Errorf("the restored server's log does not warn that WALVAULT_REPO was ignored:\n%s", restored.LogTail(30))
		}
	})
}

// TestPointInTimeRestoreLargeSegments is the seed scenario on a cluster
// made with initdb --wal-segsize=64: segments above the 16 MiB that
// wal-push encodes in memory take its two-pass streamed upload (hash, then
// compress while uploading; S3 multipart), which real WAL must survive end
// to end, through wal-fetch and replay.
func TestPointInTimeRestoreLargeSegments(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		pg, _ := archivingServerWith(t, r, testenv.PostgresOptions{WalSegSizeMB: 64})
		pg.Pgbench(t, "-i", "-s", "3", "-q") // more than 16 MiB of WAL in one segment
		_, target := seedScenario(t, r, pg)
		id, err := repository.LoadIdentity(t.Context(), r.backend)
		if err != nil {
			t.Fatalf("load walvault.json: %v", err)
		}
		if id.WALSegmentSize != 64<<20 {
			t.Fatalf("walvault.json records %d-byte segments, want 64 MiB", id.WALSegmentSize)
		}
		restored := restoreAndStart(t, r, true, "--target-time", target, "--target-action", "promote")
		checkSeedRestored(t, restored)
		if got := restored.SQL(t, "SELECT count(*) FROM pgbench_accounts"); got != "300000" {
			t.Errorf("pgbench_accounts after restore: %s rows, want 300000", got)
		}
	})
}

// seedScenario plays the seed scenario on pg, which archives into r: a
// backup, a marker row, a WAL switch, then a destructive change (another
// row and DROP TABLE users), all archived. It returns the backup's id and
// the target time just before the destruction.
func seedScenario(t *testing.T, r *repo, pg *testenv.Postgres) (backupID, target string) {
	t.Helper()
	pg.SQL(t, "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 5000) g;"+
		"CREATE TABLE audit_log (id serial PRIMARY KEY, note text, at timestamptz DEFAULT clock_timestamp())")
	id := backupPush(t, r, pg)
	pg.SQL(t, "INSERT INTO users SELECT g, 'late user ' || g FROM generate_series(5001, 6000) g")
	pg.SQL(t, "INSERT INTO audit_log (note) VALUES ('marker')")
	target = pg.SQL(t, utcNow)
	pg.SwitchWAL(t)
	time.Sleep(50 * time.Millisecond)
	pg.SQL(t, "INSERT INTO audit_log (note) VALUES ('after the target'); DROP TABLE users")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)
	return id, target
}

// checkSeedRestored checks a cluster restored to seedScenario's target and
// promoted: the marker and the table are back, what came after is not, and
// it takes writes.
func checkSeedRestored(t *testing.T, restored *testenv.Postgres) {
	t.Helper()
	if got := restored.SQL(t, "SELECT count(*) FROM users"); got != "6000" {
		t.Errorf("users after restore: %s rows, want 6000 (the DROP undone, the late inserts kept)", got)
	}
	if got := restored.SQL(t, "SELECT string_agg(note, ',' ORDER BY id) FROM audit_log"); got != "marker" {
		t.Errorf("audit_log after restore: %q, want only the marker", got)
	}
	// Read-write after promotion.
	restored.SQL(t, "INSERT INTO audit_log (note) VALUES ('restored')")
}

// TestRestoreTargets restores one history to each kind of target.
func TestRestoreTargets(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE steps (n int, note text)")
	pg.SQL(t, "INSERT INTO steps VALUES (0, 'in the backup')")
	// An earlier point-in-time restore done by hand left its settings in
	// postgresql.conf (a primary ignores them), and a delayed standby's
	// shares it: the backup brings them along, and restore's own
	// settings must beat every one (explore24b F2).
	conf, err := os.OpenFile(filepath.Join(pg.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.WriteString("Recovery_Target_Time = '2000-01-01 00:00:00+00'\nrecovery_target_inclusive = off\nrecovery_target_action = 'shutdown'\nrecovery_min_apply_delay = '1h'\n"); err != nil {
		t.Fatal(err)
	}
	conf.Close()
	id := backupPush(t, r, pg)
	xid := lastLine(pg.SQL(t, "BEGIN; INSERT INTO steps VALUES (1, 'xid'); SELECT pg_current_xact_id(); COMMIT;"))
	pg.SQL(t, "INSERT INTO steps VALUES (2, 'lsn')")
	lsn := pg.SQL(t, "SELECT pg_current_wal_lsn()")
	pg.SQL(t, "INSERT INTO steps VALUES (3, 'name'); SELECT pg_create_restore_point('walvault_it')")
	pg.SQL(t, "INSERT INTO steps VALUES (4, 'latest')")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"xid", []string{"--target-xid", xid}, "0,1"},
		{"lsn", []string{"--target-lsn", lsn}, "0,1,2"},
		{"name", []string{"--target-name", "walvault_it"}, "0,1,2,3"},
		{"immediate", []string{"--target-immediate"}, "0"},
		{"latest", nil, "0,1,2,3,4"},
		{"explicit backup", []string{"--backup", id, "--target-name", "walvault_it"}, "0,1,2,3"},
		{"verified by both checks", []string{"--verify", "both", "--target-immediate"}, "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.name != "latest" {
				args = append(args, "--target-action", "promote")
			}
			restored := restoreAndStart(t, r, true, args...)
			if got := restored.SQL(t, "SELECT string_agg(n::text, ',' ORDER BY n) FROM steps"); got != tc.want {
				t.Fatalf("steps after restoring to %s: %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestBackupUnderLoadRestoresConsistent takes a backup while pgbench
// writes, restores it and checks the cluster with pg_amcheck.
func TestBackupUnderLoadRestoresConsistent(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.Pgbench(t, "-i", "-s", "3", "-q")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pg.Run(t, "pgbench", "-T", "6", "-c", "2")
	}()
	time.Sleep(time.Second)
	id := backupPush(t, r, pg, "--part-size", "8MiB")
	wg.Wait()
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)

	restored := restoreAndStart(t, r, true, "--backup", id, "--target-immediate", "--target-action", "promote")
	stdout, stderr, err := restored.Run(t, "pg_amcheck", "--all", "--install-missing", "--heapallindexed")
	if err != nil {
		t.Fatalf("pg_amcheck on the restored cluster: %v\n%s%s", err, stdout, stderr)
	}
	if got := restored.SQL(t, "SELECT count(*) FROM pgbench_accounts"); got != "300000" {
		t.Fatalf("pgbench_accounts: %s rows, want 300000", got)
	}
}

func TestRestoreBadInput(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE t AS SELECT 1 AS x")
	time.Sleep(1100 * time.Millisecond) // the backup must end after `before`
	before := time.Now().UTC().Add(-time.Second).Format(time.RFC3339)
	id := backupPush(t, r, pg, "--part-size", "1MiB")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)

	nonEmpty := testenv.UserDir(t)
	if err := os.WriteFile(filepath.Join(nonEmpty, "keep.txt"), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := func() string { return filepath.Join(testenv.UserDir(t), "restored") }
	tests := []struct {
		name string
		dir  string
		args []string
		want string
	}{
		{"non-empty directory", nonEmpty, nil, "not empty"},
		{"live cluster", pg.DataDir, nil, "not empty"},
		{"unknown backup", fresh(), []string{"--backup", "20200101T000000Z"}, "does not exist"},
		{"malformed backup id", fresh(), []string{"--backup", "../x"}, "invalid backup id"},
		{"target before every backup", fresh(), []string{"--target-time", before}, "earlier than"},
		{"target in the future", fresh(), []string{"--target-time", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "future"},
		{"time without zone", fresh(), []string{"--target-time", "2026-01-01 10:00:00"}, "zone"},
		{"two targets", fresh(), []string{"--target-name", "x", "--target-immediate"}, "target"},
		{"unknown verification", fresh(), []string{"--verify", "md5"}, "--verify"},
		{"empty target", fresh(), []string{"--target-name", ""}, "--target-name is empty"},
		{"boolean flag with a separate value", fresh(), []string{"--target-name", "x", "--target-inclusive", "false"}, "--flag=false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := walvault(t, r.env, append([]string{"restore", "--pgdata", tc.dir}, tc.args...)...)
			if res.code == 0 || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("want a failure mentioning %q, got %v", tc.want, res)
			}
			if tc.dir != nonEmpty && tc.dir != pg.DataDir {
				if _, err := os.Stat(filepath.Join(tc.dir, "PG_VERSION")); err == nil {
					t.Fatalf("a failed restore left a data directory at %s", tc.dir)
				}
			}
		})
	}
	if got := readFile(t, filepath.Join(nonEmpty, "keep.txt")); string(got) != "precious" {
		t.Fatal("restore touched a non-empty directory")
	}
	if pg.SQL(t, "SELECT x FROM t") != "1" {
		t.Fatal("the live cluster was disturbed")
	}

	t.Run("corrupted part", func(t *testing.T) {
		m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
		if err != nil {
			t.Fatal(err)
		}
		part := m.Archives[len(m.Archives)-1].Parts[0]
		body, _ := getObject(t, r.backend, part.Key)
		r.tamper(t, part.Key, corruptDecoded(t, part.Compression, body))
		dir := fresh()
		res := walvault(t, r.env, "restore", "--pgdata", dir)
		if res.code == 0 || !strings.Contains(res.stderr, part.Key) {
			t.Fatalf("want a failure naming %s, got %v", part.Key, res)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Fatalf("a failed restore left %d entries in %s", len(entries), dir)
		}
	})
}

// corruptDecoded flips one bit of a compressed body where that changes what
// it decodes to. A flip in the middle alone is not enough: an lz4 match
// offset can change to point at equal bytes (a run of zeros in a data
// file), and the part then decodes to its very own bytes, which a restore
// rightly accepts.
func corruptDecoded(t *testing.T, c repository.Compression, body []byte) []byte {
	t.Helper()
	decode := func(b []byte) ([]byte, error) {
		r, err := c.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	want, err := decode(body)
	if err != nil {
		t.Fatalf("decode the stored part: %v", err)
	}
	for i := len(body) / 2; i < len(body); i++ {
		bad := bytes.Clone(body)
		bad[i] ^= 0x40
		if got, err := decode(bad); err != nil || !bytes.Equal(got, want) {
			return bad
		}
	}
	t.Fatal("no single-bit flip in the second half of the part changes what it decodes to")
	return nil
}
