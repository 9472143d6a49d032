package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/drill"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal/waltest"
)

// drillServerTag is in the process title of every process of a drill's
// temporary server (it runs with cluster_name=walvault-drill).
const drillServerTag = "walvault-drill:"

// drillProcesses lists running processes that belong to a drill: a
// command line naming the scratch parent dir, or a drill server's title.
func drillProcesses(t *testing.T, scratchParent string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmdline := strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		if strings.Contains(cmdline, scratchParent) || strings.Contains(cmdline, drillServerTag) {
			found = append(found, e.Name()+": "+cmdline)
		}
	}
	return found
}

// assertDrillCleanedUp checks that a finished drill left nothing running
// and no scratch directory in scratchParent.
func assertDrillCleanedUp(t *testing.T, scratchParent string) {
	t.Helper()
	var procs []string
	for i := 0; i < 20; i++ { // children of a killed server take a moment to notice
		if procs = drillProcesses(t, scratchParent); len(procs) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(procs) > 0 {
		t.Errorf("the drill left processes running:\n%s", strings.Join(procs, "\n"))
	}
	entries, err := os.ReadDir(scratchParent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("the drill left %s in the scratch directory %s", e.Name(), scratchParent)
	}
}

// assertNoSecret fails when secret appears in any of texts (walvault's
// output, server logs).
func assertNoSecret(t *testing.T, secret string, texts map[string]string) {
	t.Helper()
	if secret == "" {
		return
	}
	for name, text := range texts {
		if strings.Contains(text, secret) {
			t.Errorf("%s contains the S3 secret key", name)
		}
	}
}

// drillFixture is a cluster archiving into r with one DONE backup and
// WAL archived after it.
type drillFixture struct {
	r        *repo
	pg       *testenv.Postgres
	backupID string
}

func newDrillFixture(t *testing.T, r *repo) *drillFixture {
	t.Helper()
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE drilltest (id int PRIMARY KEY, note text); INSERT INTO drilltest SELECT g, 'in the backup' FROM generate_series(1, 1000) g")
	id := backupPush(t, r, pg)
	pg.SQL(t, "INSERT INTO drilltest VALUES (1001, 'after the backup')")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)
	return &drillFixture{r: r, pg: pg, backupID: id}
}

func TestDrill(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		f := newDrillFixture(t, r)
		secret := valueOf(r.env, "AWS_SECRET_ACCESS_KEY")
		outputs := map[string]string{}

		scratch := testenv.UserDir(t)
		res := walvault(t, r.env, "drill", "--scratch-dir", scratch, "--check-sql", "SELECT * FROM drilltest WHERE note = 'after the backup'")
		outputs["drill"] = res.stdout + res.stderr
		if res.code != 0 {
			t.Fatalf("drill on a healthy repository: %v", res)
		}
		for _, want := range []string{"drill OK: backup " + f.backupID, "RTO ", "RPO ", "OK       read-write", "OK       check-sql: 1 rows", "OK       replay end", "OK       WAL continuity", "OK       pg_amcheck", "record: drills/"} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("drill output lacks %q:\n%s", want, res.stdout)
			}
		}
		t.Logf("drill took %v:\n%s", res.elapsed, res.stdout)
		assertDrillCleanedUp(t, scratch)

		last, lastOK, err := drill.Latest(t.Context(), r.backend)
		if err != nil || last == nil || lastOK == nil || last.Key != lastOK.Key {
			t.Fatalf("drill records: last %+v, last OK %+v, %v", last, lastOK, err)
		}
		if !lastOK.OK || lastOK.BackupID != f.backupID || lastOK.RTOSeconds <= 0 || lastOK.RestoreSeconds <= 0 || lastOK.ReplaySeconds <= 0 || lastOK.RPOSeconds == nil || lastOK.NewestWAL == "" {
			t.Errorf("stored record: %+v", lastOK)
		}

		// --json --keep: the record on stdout, the directory kept with the
		// server stopped, and PostgreSQL's own log to look at.
		res = walvault(t, r.env, "drill", "--scratch-dir", scratch, "--json", "--keep", "--amcheck", "off")
		outputs["drill --json --keep"] = res.stdout + res.stderr
		if res.code != 0 {
			t.Fatalf("drill --json --keep: %v", res)
		}
		var rec drill.Record
		if err := json.Unmarshal([]byte(res.stdout), &rec); err != nil {
			t.Fatalf("drill --json printed no record: %v\n%s", err, res.stdout)
		}
		if !rec.OK || rec.RTOSeconds <= 0 || rec.Key == "" || rec.Key == last.Key || rec.ReplayEndLSN == "" {
			t.Errorf("drill --json record: %+v", rec)
		}
		kept, _ := filepath.Glob(filepath.Join(scratch, "walvault-drill-*"))
		if len(kept) != 1 {
			t.Fatalf("--keep kept %v, want one scratch directory", kept)
		}
		if procs := drillProcesses(t, scratch); len(procs) > 0 {
			t.Errorf("--keep left the server running:\n%s", strings.Join(procs, "\n"))
		}
		cmd := testenv.ServerCommand(t, filepath.Join(f.pg.BinDir, "pg_ctl"), "status", "-D", filepath.Join(kept[0], "data"))
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no server running") {
			t.Errorf("pg_ctl status on the kept directory: %v\n%s", err, out)
		}
		auto := readFile(t, filepath.Join(kept[0], "data", "postgresql.auto.conf"))
		if !strings.Contains(string(auto), "archive_mode = 'off'") {
			t.Errorf("the kept cluster would archive when started by hand; postgresql.auto.conf:\n%s", auto)
		}
		outputs["kept server log"] = string(readFile(t, filepath.Join(kept[0], "postgres.log")))
		outputs["archiving server log"] = string(readFile(t, f.pg.LogFile))
		if !strings.Contains(outputs["kept server log"], "restored") {
			t.Errorf("the drill's server log shows no wal-fetch line:\n%s", outputs["kept server log"])
		}
		assertNoSecret(t, secret, outputs)

		// The drills never archived: no timeline beyond the cluster's own.
		keys := listKeys(t, r, repository.WALPrefix)
		for _, k := range keys {
			if strings.HasSuffix(k, ".history") {
				t.Errorf("a drill archived into the repository: %s", k)
			}
		}
	})
}

// listKeys lists the repository's keys under prefix.
func listKeys(t *testing.T, r *repo, prefix string) []string {
	t.Helper()
	var keys []string
	err := r.backend.List(t.Context(), prefix, func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestDrillBadInput(t *testing.T) {
	r := fileRepo(t)
	pg, _ := archivingServer(t, r)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	scratch := testenv.UserDir(t)

	res := walvault(t, r.env, "drill", "--scratch-dir", scratch)
	if res.code == 0 || !strings.Contains(res.stderr, "no backup is DONE") {
		t.Fatalf("drill without a backup: want a failure saying there is none, got %v", res)
	}
	assertDrillCleanedUp(t, scratch)

	id := backupPush(t, r, pg)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)

	// A postgres of another major version.
	fakeBin := t.TempDir()
	if err := os.WriteFile(filepath.Join(fakeBin, "postgres"), []byte("#!/bin/sh\necho 'postgres (PostgreSQL) 16.4'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)

	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"missing binaries", []string{"--pg-bin", "/nonexistent"}, "no postgres program", 1},
		{"wrong major version", []string{"--pg-bin", fakeBin}, "version 16.4", 1},
		{"scratch directory missing", []string{"--scratch-dir", "/nonexistent/scratch"}, "cannot create the scratch directory", 1},
		{"scratch directory is a file", []string{"--scratch-dir", notADir}, "not a directory", 1},
		{"port in use", []string{"--port", busyPort}, "port " + busyPort + " on 127.0.0.1 is in use", 1},
		{"failing check-sql", []string{"--check-sql", "SELECT * FROM no_such_table"}, "no_such_table", 1},
		{"check-sql without rows", []string{"--check-sql", "SELECT 1 WHERE false"}, "returned no rows", 1},
		{"unknown role", []string{"--db-user", "nosuchrole", "--amcheck", "off"}, "nosuchrole", 1},
		{"target action shutdown", []string{"--target-immediate", "--target-action", "shutdown"}, "shutdown", 2},
		{"archiving turned back on", []string{"--server-setting", "archive_mode=on"}, "archive_mode", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"drill", "--scratch-dir", scratch}, tc.args...)
			res := walvault(t, r.env, args...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("want exit %d and an error mentioning %q, got %v", tc.code, tc.want, res)
			}
			assertDrillCleanedUp(t, scratch)
		})
	}
	// A failed check shows the server log's last lines.
	res = walvault(t, r.env, "drill", "--scratch-dir", scratch, "--check-sql", "SELECT * FROM no_such_table", "--amcheck", "off")
	if !strings.Contains(res.stderr, "server log (last lines)") {
		t.Errorf("a failed drill does not show the server log: %v", res)
	}
	last, lastOK, err := drill.Latest(t.Context(), r.backend)
	if err != nil || last == nil || last.OK || lastOK != nil || !strings.Contains(last.Error, "no_such_table") {
		t.Errorf("failed drills: want failed records and none OK, got last %+v, last OK %+v, %v", last, lastOK, err)
	}
}

// TestDrillBrokenWAL breaks the archive after the backup: a corrupted
// segment stops recovery, a missing one is found before anything is
// restored. Either way the drill fails, saying which segment.
func TestDrillBrokenWAL(t *testing.T) {
	r := fileRepo(t)
	f := newDrillFixture(t, r)
	var after []string
	for i := 0; i < 3; i++ {
		f.pg.SQL(t, "INSERT INTO drilltest VALUES ("+strconv.Itoa(2000+i)+", 'more')")
		after = append(after, f.pg.SwitchWAL(t))
	}
	f.pg.WaitArchived(t, after[len(after)-1], 60*time.Second)
	id, err := repository.LoadIdentity(t.Context(), r.backend)
	if err != nil {
		t.Fatal(err)
	}
	name := after[0] // needed: replay goes through it to reach the newest
	key := repository.WALKey(waltest.FileName(t, name), id.Compression)
	scratch := testenv.UserDir(t)

	t.Run("corrupted segment", func(t *testing.T) {
		orig, _ := getObject(t, r.backend, key)
		r.tamper(t, key, corruptDecoded(t, id.Compression, orig))
		defer r.tamper(t, key, orig)
		res := walvault(t, r.env, "drill", "--scratch-dir", scratch, "--amcheck", "off")
		if res.code != 1 || !strings.Contains(res.stderr, "exited before recovery finished") || !strings.Contains(res.stderr, name) {
			t.Fatalf("drill over a corrupted segment: want a failure naming %s, got %v", name, res)
		}
		assertDrillCleanedUp(t, scratch)
	})
	t.Run("missing segment", func(t *testing.T) {
		if err := r.backend.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		res := walvault(t, r.env, "drill", "--scratch-dir", scratch)
		if res.code != 1 || !strings.Contains(res.stderr, "WAL continuity") || !strings.Contains(res.stderr, name) {
			t.Fatalf("drill over a missing segment: want a failure naming %s, got %v", name, res)
		}
		assertDrillCleanedUp(t, scratch)
	})
}

// TestDrillInterrupted sends SIGINT while the temporary server runs: the
// drill stops it, removes the scratch directory and exits non-zero.
func TestDrillInterrupted(t *testing.T) {
	r := fileRepo(t)
	f := newDrillFixture(t, r)
	for i := 0; i < 6; i++ { // WAL to replay keeps the server busy a while
		f.pg.SQL(t, "INSERT INTO drilltest SELECT g, 'bulk' FROM generate_series("+strconv.Itoa(10000*(i+1))+", "+strconv.Itoa(10000*(i+1)+5000)+") g")
		f.pg.SwitchWAL(t)
	}
	f.pg.WaitArchived(t, f.pg.SwitchWAL(t), 60*time.Second)
	scratch := testenv.UserDir(t)

	cmd := exec.Command(testenv.BuildWalvault(t), "drill", "--scratch-dir", scratch)
	cmd.Env = append(cleanEnv(), r.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	signalled := false
	for !signalled && time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the drill ended (%v) before a server process was seen to interrupt:\n%s%s", err, stdout.String(), stderr.String())
		default:
		}
		for _, p := range drillProcesses(t, scratch) {
			if strings.Contains(p, "postgres -D") {
				if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
				signalled = true
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !signalled {
		cmd.Process.Kill()
		t.Fatal("no temporary server appeared within 60s")
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if err == nil || !errors.As(err, &exit) {
			t.Fatalf("an interrupted drill exited with %v, want a failure:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the drill did not stop within 60s of SIGINT:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr does not say the drill was interrupted:\n%s", stderr.String())
	}
	assertDrillCleanedUp(t, scratch)
	if keys := listKeys(t, r, drill.RecordsPrefix); len(keys) != 0 {
		t.Errorf("an interrupted drill stored a record: %v", keys)
	}
}

// TestDrillTablespaceGuard is a drill on the database host of a backup
// taken before a CREATE TABLESPACE (the tester's F7): replaying that
// record would link the drill's pg_tblspc entry to production's own
// tablespace directory, and the drill would write its pages, as of the end
// of the archive, over production's newer ones. The drill's wal-fetch
// refuses the segment, the drill fails saying why, and production's
// tablespace is exactly as it was: every file, and the rows committed
// after the archived WAL.
func TestDrillTablespaceGuard(t *testing.T) {
	r := s3Repo(t)
	f := newDrillFixture(t, r)
	pg := f.pg
	loc := testenv.UserDir(t) // production's tablespace, on this host
	pg.SQL(t, "CREATE TABLESPACE prod_ts LOCATION '"+loc+"'; "+
		"CREATE TABLE in_ts (id int PRIMARY KEY, note text) WITH (autovacuum_enabled = off) TABLESPACE prod_ts; "+
		"INSERT INTO in_ts SELECT g, 'archived' FROM generate_series(1, 100) g")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	// Rows whose WAL is not archived yet, written to the table's files by
	// the checkpoint: what a drill replaying into the tablespace rolls
	// back. Production stays up and idle (autovacuum off for the table),
	// so its files hold still while the drill runs.
	pg.SQL(t, "INSERT INTO in_ts SELECT g, 'not archived yet' FROM generate_series(101, 189) g; CHECKPOINT")
	oid := pg.SQL(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'prod_ts'")
	before := treeSums(t, loc)

	scratch := testenv.UserDir(t)
	// Prefetch on: segments reach the server through the prefetch cache
	// too, and the guard must hold there.
	res := walvault(t, append(r.env, "WALVAULT_PREFETCH=4"), "drill", "--scratch-dir", scratch, "--amcheck", "off")
	t.Logf("drill: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	if after := treeSums(t, loc); !maps.Equal(before, after) {
		t.Errorf("the drill changed production's tablespace %s:\n before %v\n after  %v", loc, before, after)
	}
	want := "holds CREATE TABLESPACE " + oid + " at " + loc
	if res.code != 1 || !strings.Contains(res.stdout, "FAILED   WAL guard: ") || !strings.Contains(res.stdout, want) || !strings.Contains(res.stderr, want) {
		t.Errorf("drill: want a failure naming the record (%q) as the WAL guard's, got %v", want, res)
	}
	assertDrillCleanedUp(t, scratch)
	last, _, err := drill.Latest(t.Context(), r.backend)
	if err != nil || last == nil || last.OK || !strings.Contains(last.Error, "restore drill guard") {
		t.Errorf("stored record: want a failed drill naming the guard, got %+v, %v", last, err)
	}

	// A restore of the same backup on this host (a copy, to get a row
	// back) has the same trap: its wal-fetch refuses the segment, the
	// restored server stops, and production's tablespace is untouched
	// (explore23d F5).
	dir, _ := restoreInto(t, r)
	restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: r.env, NoStart: true})
	log, err := restored.TryStart(t)
	if err == nil || !strings.Contains(log, "restore tablespace guard") || !strings.Contains(log, want) {
		t.Errorf("restored copy: want it stopped by the tablespace guard naming %q, got %v\n%s", want, err, log)
	}
	if after := treeSums(t, loc); !maps.Equal(before, after) {
		t.Errorf("the restored copy changed production's tablespace %s:\n before %v\n after  %v", loc, before, after)
	}

	// Production reads its files again after a restart.
	pg.Stop(t)
	pg.Start(t)
	if n := pg.SQL(t, "SELECT count(*) FROM in_ts"); n != "189" {
		t.Errorf("production's table in the tablespace has %s rows after the drill, want 189", n)
	}
}

// treeSums maps every entry under dir to its sha256 (a file), its target
// (a symbolic link) or "dir".
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			sums[rel] = "-> " + target
			return err
		case d.IsDir():
			sums[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		sum := sha256.Sum256(b)
		sums[rel] = hex.EncodeToString(sum[:])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}
