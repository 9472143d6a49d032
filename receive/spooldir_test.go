//go:build unix

package receive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpoolDirOwn: a spool directory others may write to, or another
// user's (a predictable name in a shared /tmp someone created first), is
// refused; one's own 0700 directory is taken (explore22c F5).
func TestSpoolDirOwn(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := spoolDirOwn(dir); err != nil {
		t.Fatalf("own 0700 directory: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := spoolDirOwn(dir); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Errorf("world-writable spool directory: %v; want a refusal", err)
	}
	if os.Geteuid() == 0 { // only root can hand a directory or a link to another user
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		// Another user's link to a directory of ours (explore22f F2).
		link := filepath.Join(t.TempDir(), "walvault-receive-slot")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := spoolDirOwn(link); err == nil || !strings.Contains(err.Error(), "symbolic link another user") {
			t.Errorf("another user's link to our own directory: %v; want a refusal", err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := spoolDirOwn(dir); err == nil || !strings.Contains(err.Error(), "belongs to another user") {
			t.Errorf("another user's spool directory: %v; want a refusal", err)
		}
	}
}
