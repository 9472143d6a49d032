package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/wal"
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

// TestPrefetchHitWithoutRepository runs wal-fetch as restore_command would
// against an S3 repository: a prefetched segment is served from the cache
// without the repository (even with the gateway stopped), a damaged cached
// copy is refused and fetched again, a storage failure is exit 200 and
// never 1, and a history file request clears the cache and ends the
// prefetcher.
func TestPrefetchHitWithoutRepository(t *testing.T) {
	r := s3Repo(t)
	pg, copies := archivingServer(t, r)
	var names []string
	for range 6 {
		names = append(names, pg.SwitchWAL(t))
	}
	pg.WaitArchived(t, names[len(names)-1], 60*time.Second)
	for i := 1; i < len(names); i++ {
		prev, _ := wal.ParseSegmentName(names[i-1])
		next, err := prev.Next(16 << 20)
		if err != nil || next.String() != names[i] {
			t.Fatalf("test setup: segments %s and %s are not consecutive", names[i-1], names[i])
		}
	}

	// A data directory's pg_wal, as restore_command's %p points into: only
	// there does wal-fetch prefetch.
	datadir := t.TempDir()
	if err := os.WriteFile(filepath.Join(datadir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pgwal := filepath.Join(datadir, "pg_wal")
	if err := os.Mkdir(pgwal, 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(pgwal, "RECOVERYXLOG")
	dir := filepath.Join(pgwal, "walvault", "prefetch")
	env := append(r.env, "WALVAULT_PREFETCH=3", "WALVAULT_TIMEOUT=10s")
	fetch := func(name string) result {
		t.Helper()
		os.Remove(dest)
		return walvault(t, env, "wal-fetch", name, dest)
	}
	served := func(res result, name, how string) {
		t.Helper()
		if res.code != 0 || !strings.Contains(res.stderr, how) {
			t.Fatalf("wal-fetch %s: want exit 0 and %q, got %v", name, how, res)
		}
		if !bytes.Equal(readFile(t, dest), readFile(t, filepath.Join(copies, name))) {
			t.Fatalf("wal-fetch %s wrote other bytes than the archived segment", name)
		}
	}
	prefetchers := func() string {
		out, _ := exec.Command("pgrep", "-f", "wal-prefetch .*--dir="+dir).Output()
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() { // only if the test failed before they exited
		for _, pid := range strings.Fields(prefetchers()) {
			if n, err := strconv.Atoi(pid); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
	})

	served(fetch(names[0]), names[0], "restored")
	// The prefetcher fills the window behind names[0].
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names[1:4] {
		for {
			if _, err := os.Stat(filepath.Join(dir, "00000001", name+".sha256")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not prefetched after 30s; prefetch log:\n%s", name, readFile(t, filepath.Join(pgwal, "walvault", "prefetch.log")))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A damaged copy (same size) is refused, never served.
	f, err := os.OpenFile(filepath.Join(dir, "00000001", names[1]), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("walvault"), 9<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res := fetch(names[1])
	served(res, names[1], "restored")
	if !strings.Contains(res.stderr, "refused") || strings.Contains(res.stderr, "restored from prefetch") {
		t.Fatalf("wal-fetch of a damaged cached copy: want it refused and fetched again, got %v", res)
	}

	// With the repository unreachable, a hit is still a hit...
	r.stop(t)
	served(fetch(names[2]), names[2], "restored from prefetch")
	// ...even with a configuration that would stop any other call: the
	// segment is verified and in place, only the log line and the
	// prefetcher needed the configuration.
	valid := env
	env = append(env, "WALVAULT_COMPRESSION=bogus")
	served(fetch(names[3]), names[3], "configuration is invalid")
	env = valid
	// ...and anything else stops recovery (200), never "not in the
	// archive" (1). names[5] was never in the prefetch window.
	for _, name := range []string{names[5], "00000001000000010000000A"} {
		if res := fetch(name); res.code != 200 {
			t.Errorf("wal-fetch %s with the repository down: want exit 200, got %v", name, res)
		}
		if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("wal-fetch %s with the repository down left %s behind: %v", name, dest, err)
		}
	}

	// Recovery ends: PostgreSQL asks for the next timeline's history file.
	// The cache goes at once and the prefetcher follows it out.
	if res := fetch("00000002.history"); res.code != 200 {
		t.Errorf("wal-fetch of a history file with the repository down: want exit 200, got %v", res)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("prefetch cache after a history file request: %v, want it removed", err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for prefetchers() != "" {
		if time.Now().After(deadline) {
			t.Fatalf("prefetcher still running 10s after the cache was cleared: %s", prefetchers())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
