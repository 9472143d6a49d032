package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositoryDirectoryMissing: a file:// repository whose directory is
// missing (or is a file) is bad configuration: exit 2, one line naming the
// directory; wal-fetch stops recovery (200), never says "not in the
// archive" (1).
func TestRepositoryDirectoryMissing(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "a-file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "000000010000000000000001")
	if err := os.WriteFile(seg, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{filepath.Join(dir, "unmounted"), notDir} {
		repo := "file://" + root
		for _, tc := range []struct {
			args []string
			code int
		}{
			{[]string{"backup-list", "--repo", repo}, exitUsage},
			{[]string{"verify", "--repo", repo}, exitUsage},
			{[]string{"delete", "--repo", repo, "--retain", "REDUNDANCY 1"}, exitUsage},
			{[]string{"wal-push", "--repo", repo, seg}, exitUsage},
			{[]string{"wal-fetch", "--repo", repo, "000000010000000000000001", filepath.Join(dir, "dest")}, exitRecoveryMustStop},
		} {
			t.Run(filepath.Base(root)+"/"+tc.args[0], func(t *testing.T) {
				code, _, stderr := runCmd(t, tc.args...)
				if code != tc.code {
					t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr)
				}
				if !strings.Contains(stderr, root) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
					t.Fatalf("want one line naming %s, got %q", root, stderr)
				}
			})
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "unmounted")); err == nil {
		t.Fatal("a command created the missing repository directory")
	}
}
