//go:build unix

package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOwnerCanRead: the identity file restore_command reads as the server's
// user must be readable by it, and its directory searchable.
func TestOwnerCanRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(path, []byte("AGE-SECRET-KEY-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Someone who neither owns the file nor is in its group.
	o := &owner{name: "someone", uid: 4242, gid: 4242}
	for _, d := range []string{filepath.Dir(dir), dir} { // t.TempDir's are 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.canRead(path); err == nil || !strings.Contains(err.Error(), "not readable by someone") {
		t.Fatalf("a 0600 file of another user: %v; want it unreadable", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := o.canRead(path); err != nil {
		t.Fatalf("a 0644 file: %v; want it readable", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := o.canRead(path); err == nil || !strings.Contains(err.Error(), "not searchable by someone") {
		t.Fatalf("a file in a 0700 directory of another user: %v; want it unreachable", err)
	}
}
