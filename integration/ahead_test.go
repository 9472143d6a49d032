package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// backlog makes PostgreSQL fail archiving, completes n segments and returns
// their names with the sha256 of each as it sits in pg_wal.
func backlog(t *testing.T, pg *testenv.Postgres, n int) ([]string, map[string]string) {
	t.Helper()
	pg.SQL(t, "ALTER SYSTEM SET archive_command = 'false'")
	pg.SQL(t, "SELECT pg_reload_conf()")
	time.Sleep(300 * time.Millisecond) // the archiver rereads its settings
	pg.SQL(t, "CREATE TABLE IF NOT EXISTS ahead(i int, pad text)")
	var names []string
	for i := 0; i < n; i++ {
		pg.SQL(t, "INSERT INTO ahead SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g")
		names = append(names, pg.SwitchWAL(t))
	}
	sums := map[string]string{}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(pg.DataDir, "pg_wal", "archive_status", name+".ready")); err != nil {
			t.Fatalf("%s is not waiting as .ready with archiving failing: %v", name, err)
		}
		sum := sha256.Sum256(readFile(t, filepath.Join(pg.DataDir, "pg_wal", name)))
		sums[name] = hex.EncodeToString(sum[:])
	}
	return names, sums
}

// resumeArchiving lets the archiver that backlog held back run
// archive_command again, once the files settled (as in a real backlog, so
// the later calls prove them unchanged without reading them), and waits
// until last is archived.
func resumeArchiving(t *testing.T, pg *testenv.Postgres, last string, timeout time.Duration) {
	t.Helper()
	time.Sleep(archive.SettledMargin)
	pg.SQL(t, "ALTER SYSTEM RESET archive_command")
	pg.SQL(t, "SELECT pg_reload_conf()")
	pg.WaitArchived(t, last, timeout)
}

// TestAheadBacklog: with a backlog of .ready files, fewer wal-push calls
// upload than there are files, everything lands, and what is fetched back
// is what PostgreSQL wrote.
func TestAheadBacklog(t *testing.T) {
	r := fileRepo(t)
	logf := filepath.Join(testenv.UserDir(t), "walpush.log")
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		ArchiveCommand: testenv.BuildWalvault(t) + " wal-push %p 2>>" + logf,
		Env:            r.env,
	})
	names, sums := backlog(t, pg, 8)
	resumeArchiving(t, pg, names[len(names)-1], 45*time.Second)

	log := string(readFile(t, logf))
	uploaded := strings.Count(log, "msg=archived ") + strings.Count(log, `msg="already archived with the same content"`)
	skipped := strings.Count(log, "pushed ahead by an earlier wal-push")
	ahead := strings.Count(log, `msg="pushed ahead"`)
	t.Logf("wal-push calls that uploaded: %d, skipped: %d, files pushed ahead: %d", uploaded, skipped, ahead)
	if skipped == 0 || ahead == 0 || uploaded >= len(names) {
		t.Fatalf("want fewer uploading calls than the %d segments, and some pushed ahead and skipped; log:\n%s", len(names), log)
	}
	if byStat := strings.Count(log, `unchanged_by="`+archive.ProofStat+`"`); byStat != skipped {
		t.Errorf("%d of %d skipped calls proved the settled file unchanged by its inode and change time, want all; log:\n%s", byStat, skipped, log)
	}
	if strings.Contains(log, "level=WARN") || strings.Contains(log, "level=ERROR") {
		t.Errorf("warnings in the wal-push log:\n%s", log)
	}
	for _, name := range names {
		dest := filepath.Join(t.TempDir(), name)
		if res := walvault(t, r.env, "wal-fetch", name, dest); res.code != 0 {
			t.Fatalf("wal-fetch %s: %v", name, res)
		}
		sum := sha256.Sum256(readFile(t, dest))
		if got := hex.EncodeToString(sum[:]); got != sums[name] {
			t.Fatalf("%s fetched back: sha256 %s, want %s (the file PostgreSQL wrote)", name, got, sums[name])
		}
	}
	st := filepath.Join(pg.DataDir, "pg_wal", "walvault", "pushed")
	if fi, err := os.Stat(st); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory %s: %v, want mode 0700", st, err)
	}
}

// TestAheadKill9: wal-push killed in the middle of a parallel batch leaves
// no record without its object, and reruns archive everything.
func TestAheadKill9(t *testing.T) {
	r := fileRepo(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: "false", Env: r.env})
	names, sums := backlog(t, pg, 8)
	pg.Stop(t)
	walDir := filepath.Join(pg.DataDir, "pg_wal")
	bin := testenv.BuildWalvault(t)
	env := append(cleanEnv(), r.env...)

	ready := func() []string {
		entries, err := os.ReadDir(filepath.Join(walDir, "archive_status"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			if n, ok := strings.CutSuffix(e.Name(), ".ready"); ok {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out
	}
	// Every record must describe an object that is in the repository with
	// the recorded checksum.
	checkRecords := func(when string) (n int) {
		t.Helper()
		dir := filepath.Join(walDir, "walvault", "pushed")
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				continue
			}
			n++
			var rec struct {
				SHA256 string `json:"sha256"`
				Key    string `json:"key"`
			}
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, e.Name())), &rec); err != nil {
				t.Fatalf("%s: record %s: %v", when, e.Name(), err)
			}
			f, err := wal.Classify(e.Name())
			if err != nil {
				t.Fatal(err)
			}
			info, err := r.backend.Stat(t.Context(), repository.WALKey(f, repository.LZ4))
			if err != nil {
				t.Fatalf("%s: record for %s but its object: %v", when, e.Name(), err)
			}
			if info.Metadata[repository.MetaSHA256] != rec.SHA256 {
				t.Fatalf("%s: record of %s says sha256 %s, the repository holds %s", when, e.Name(), rec.SHA256, info.Metadata[repository.MetaSHA256])
			}
		}
		return n
	}

	kills := 0
	for _, delay := range []time.Duration{20, 60, 100, 130, 160, 200} {
		first := ready()[0]
		cmd := testenv.ServerCommand(t, bin, "wal-push", filepath.Join(walDir, first))
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			kills++ // killed before it finished, not after
		}
		t.Logf("killed after %v: %d records, all backed by objects", delay*time.Millisecond, checkRecords("after kill -9"))
	}
	t.Logf("%d of 6 wal-push runs killed in flight", kills)
	if kills == 0 {
		t.Fatal("no wal-push was killed in flight")
	}

	// PostgreSQL's reruns: each .ready in order until none is left.
	for len(ready()) > 0 {
		name := ready()[0]
		cmd := testenv.ServerCommand(t, bin, "wal-push", filepath.Join(walDir, name))
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rerun wal-push %s: %v\n%s", name, err, out)
		}
		checkRecords("after rerun of " + name)
		st := filepath.Join(walDir, "archive_status", name)
		if err := os.Rename(st+".ready", st+".done"); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		dest := filepath.Join(t.TempDir(), name)
		if res := walvault(t, r.env, "wal-fetch", name, dest); res.code != 0 {
			t.Fatalf("wal-fetch %s after the reruns: %v", name, res)
		}
		sum := sha256.Sum256(readFile(t, dest))
		if got := hex.EncodeToString(sum[:]); got != sums[name] {
			t.Fatalf("%s fetched back: sha256 %s, want %s", name, got, sums[name])
		}
	}
	// A writer killed between creating its temp file and renaming it
	// leaves the temp file; pushes remove those once a minute old (a live
	// writer's may be younger). Age them, and one more push must clear
	// them, archiving nothing new.
	pushedDir := filepath.Join(walDir, "walvault", "pushed")
	if entries, _ := os.ReadDir(pushedDir); len(entries) != 0 {
		old := time.Now().Add(-2 * time.Minute)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				if err := os.Chtimes(filepath.Join(pushedDir, e.Name()), old, old); err != nil {
					t.Fatal(err)
				}
			}
		}
		cmd := testenv.ServerCommand(t, bin, "wal-push", filepath.Join(walDir, names[0]))
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("wal-push %s again: %v\n%s", names[0], err, out)
		}
	}
	if entries, _ := os.ReadDir(pushedDir); len(entries) != 0 {
		var left []string
		for _, e := range entries {
			left = append(left, e.Name())
		}
		t.Errorf("records left after every file was archived: %q", left)
	}
}
