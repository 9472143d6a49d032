//go:build unix

package restore

import (
	"os"
	"path/filepath"
	"testing"
)

// A failed rename must fail markInFlight and leave no temp file behind: a
// download that believes it is marked in flight while nothing is would let
// a waiting wal-fetch go ahead without it.
func TestMarkInFlightRenameFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "000000010000000000000001.busy")
	// A non-empty directory under the name makes the rename fail.
	if err := os.MkdirAll(filepath.Join(path, "occupied"), 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, err := markInFlight(path)
	if err == nil {
		unlock()
		t.Fatal("markInFlight onto a non-empty directory: got nil error, want the rename's error")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			t.Errorf("left behind after a failed markInFlight: %s", e.Name())
		}
	}
}

func TestMarkInFlightLocksUntilUnlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.busy")
	unlock, err := markInFlight(path)
	if err != nil {
		t.Fatalf("markInFlight: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("in-flight record missing while marked: %v", err)
	}
	unlock()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("in-flight record after unlock: stat error %v, want not-exist", err)
	}
}
