package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWalFetchByHandWritesOnlyDest: wal-fetch run by hand, with prefetch
// on, into a plain directory or a pg_wal outside any data directory,
// writes the one file and nothing else, and starts no prefetcher.
// (Prefetch during recovery: TestPrefetchRecovery and
// TestPrefetchHitWithoutRepository.)
func TestWalFetchByHandWritesOnlyDest(t *testing.T) {
	r := fileRepo(t)
	pg, copies := archivingServer(t, r)
	var names []string
	for range 3 {
		names = append(names, pg.SwitchWAL(t))
	}
	pg.WaitArchived(t, names[len(names)-1], 60*time.Second)
	env := append(r.env, "WALVAULT_PREFETCH=8")

	root := t.TempDir()
	for _, dir := range []string{filepath.Join(root, "look"), filepath.Join(root, "bare", "pg_wal")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(dir, names[0])
		res := walvault(t, env, "wal-fetch", names[0], dest)
		if res.code != 0 {
			t.Fatalf("wal-fetch %s %s: %v", names[0], dest, res)
		}
		if !bytes.Equal(readFile(t, dest), readFile(t, filepath.Join(copies, names[0]))) {
			t.Fatalf("wal-fetch wrote other bytes than the archived segment")
		}
		// A prefetcher would have started by now and written its lock,
		// log or first segments.
		time.Sleep(2 * time.Second)
		var files []string
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && path != dir {
				files = append(files, path)
			}
			return nil
		})
		if len(files) != 1 || files[0] != dest {
			t.Errorf("wal-fetch by hand into %s left %q, want only %s", dir, files, dest)
		}
		if out, _ := exec.Command("pgrep", "-f", "wal-prefetch .*--dir="+dir).Output(); strings.TrimSpace(string(out)) != "" {
			t.Errorf("wal-fetch by hand into %s started a prefetcher: %s", dir, out)
		}
	}
}
