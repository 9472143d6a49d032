//go:build unix

package restore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/internal/osuser"
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

// TestTargetDirTakenOver: as root, restore takes an existing empty target
// directory from its owner while it writes (an owner could set its mode
// back and put files in that the end would hand over as restored), checks
// it empty once taken, and gives it back as it was when restore fails;
// what appeared meanwhile is refused and left alone.
func TestTargetDirTakenOver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test gives a directory to another user: run it as root (./scripts/test.sh does)")
	}
	const otherUID, otherGID = 4242, 4343
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Chown(dir, otherUID, otherGID); err != nil {
		t.Fatal(err)
	}
	d, err := checkTargetDir(dir, "data directory")
	if err != nil {
		t.Fatal(err)
	}
	// Put in after the check, before restore takes the directory.
	planted := filepath.Join(dir, "pg_hba.conf")
	if err := os.WriteFile(planted, []byte("host all all 0.0.0.0/0 trust\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.create(); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "pg_hba.conf appeared") {
		t.Fatalf("create with a file put in after the check: %v; want ErrNotEmpty naming it", err)
	}
	if uid, gid, _ := ownerIDs(dir); uid != 0 || gid != 0 {
		t.Errorf("owner while restore holds it: %d:%d, want root's", uid, gid)
	}
	if err := d.clean(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid, _ := ownerIDs(dir); uid != otherUID || gid != otherGID || fi.Mode().Perm() != 0o777 {
		t.Errorf("after the refused restore: owner %d:%d mode %v, want %d:%d 0777 back", uid, gid, fi.Mode().Perm(), otherUID, otherGID)
	}
	if _, err := os.Stat(planted); err != nil {
		t.Errorf("what someone else put in was removed: %v; want it left for the owner to look at", err)
	}
}

// ownerIDs is path's owner and group.
func ownerIDs(path string) (uid, gid int, ok bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, false
	}
	return osuser.OwnerGroup(fi)
}

// TestTargetDirSwappedForLink: a link to another directory put at the
// name of the directory restore checked, before restore takes it, is
// refused, and neither restore nor its clean-up touch where the link leads
// (explore24f F3: the clean-up made a root directory 0777).
func TestTargetDirSwappedForLink(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	d, err := checkTargetDir(dir, "data directory")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "root-only")
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, filepath.Join(parent, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(parent, "empty"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, dir); err != nil {
		t.Fatal(err)
	}
	if err := d.create(); err == nil || !strings.Contains(err.Error(), "no longer the directory restore checked") {
		t.Fatalf("create after the directory was replaced by a link: %v; want a refusal", err)
	}
	if err := d.clean(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(elsewhere); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("where the link leads: %v %v, want it untouched (0700)", fi.Mode(), err)
	}
}
