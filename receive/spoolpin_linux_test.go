package receive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpoolDirPinned: once wal-receive started, renaming its spool
// directory and putting a link to another directory (a live pg_wal) at its
// name does not move where segments are written (explore24d F4).
func TestSpoolDirPinned(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pinned, unpin, err := pinSpoolDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unpin()
	if pinned == dir {
		t.Fatalf("pinSpoolDir(%s) gave the path itself: /proc is mounted here, want a descriptor path", dir)
	}
	victim := t.TempDir()
	const name = "000000010000000000000007"
	if err := os.WriteFile(filepath.Join(victim, name), []byte("PRECIOUS"), 0o600); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(parent, "old")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pinned, name), []byte("WAL"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(victim, name)); string(got) != "PRECIOUS" {
		t.Errorf("the file behind the planted link: %q, want it untouched", got)
	}
	if got, _ := os.ReadFile(filepath.Join(moved, name)); string(got) != "WAL" {
		t.Errorf("the spool directory, renamed: %q, want the segment written there", got)
	}

	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pinSpoolDir(open); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Errorf("pinning a world-writable directory: %v; want a refusal", err)
	}
}
