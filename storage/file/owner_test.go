//go:build unix

package file

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/walvault/walvault/storage"
)

// ownerReadEnv names, in the copy of the test binary runAsNobody starts, the
// repository the nobody user must read back.
const ownerReadEnv = "WALVAULT_TEST_READ_AS_OWNER"

// ownerKeys are written under new nested directories, each holding its key
// as body.
var ownerKeys = []string{
	"backups/20260101T000000Z/parts/archive/00001",
	"backups/20260101T000000Z/manifest.json",
	"check/probe-db1",
	"drills/2026/01/drill.json",
	"walvault.json",
}

// TestNewEntriesTakeTheRootsOwner: every file and directory Put creates
// has the root directory's owner and group, even when root writes into a
// repository owned by another user, and that user can list and read all of
// it afterwards (issue 13 part 3: root's check, drill and backup-push left
// directories only root could read).
func TestNewEntriesTakeTheRootsOwner(t *testing.T) {
	if root := os.Getenv(ownerReadEnv); root != "" {
		readBackAll(t, root) // the owner's half, started below
		return
	}
	uid, gid := os.Geteuid(), os.Getegid()
	var root string
	if uid == 0 {
		// A repository owned by nobody, readable by nobody alone.
		dir, err := os.MkdirTemp("", "walvault-owner-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		root = filepath.Join(dir, "repo")
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		mkdir(t, root)
		uid, gid = 65534, 65534
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
	} else {
		root = t.TempDir() // only root can write as someone else
	}
	b := newTestBackend(t, root)
	for i, key := range ownerKeys {
		err := b.Put(context.Background(), key, strings.NewReader(key), storage.PutOptions{IfNotExists: i%2 == 0})
		if err != nil {
			t.Fatalf("Put(%q): got %v, want nil", key, err)
		}
	}
	// Overwriting keeps the owner too.
	put(t, b, ownerKeys[0], ownerKeys[0], nil)

	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s: owner %d:%d, want the root's %d:%d", path, st.Uid, st.Gid, uid, gid)
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			t.Errorf("%s: temp file left behind", path)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The root, 8 directories and 5 objects.
	if n != 14 {
		t.Errorf("walked %d entries under %s, want 14", n, root)
	}
	if os.Geteuid() == 0 {
		runAsNobody(t, "^TestNewEntriesTakeTheRootsOwner$", ownerReadEnv+"="+root)
		return
	}
	readBackAll(t, root)
}

// readBackAll lists the repository at root and reads every object back.
func readBackAll(t *testing.T, root string) {
	t.Helper()
	b := newTestBackend(t, root)
	ctx := context.Background()
	var got []string
	if err := b.List(ctx, "", func(oi storage.ObjectInfo) error { got = append(got, oi.Key); return nil }); err != nil {
		t.Fatalf(`List(""): got %v, want nil`, err)
	}
	want := append([]string(nil), ownerKeys...)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf(`List(""): got %q, want %q`, got, want)
	}
	for _, key := range ownerKeys {
		rc, _, err := b.Get(ctx, key)
		if err != nil {
			t.Errorf("Get(%q): got %v, want nil", key, err)
			continue
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(body) != key {
			t.Errorf("Get(%q): read %q, %v, want %q", key, body, err, key)
		}
	}
}

// statInfo is a FileInfo for owner.apply: only Sys matters.
type statInfo struct {
	os.FileInfo
	st syscall.Stat_t
}

func (s statInfo) Sys() any { return &s.st }

// TestOwnerApply covers who may give a file away and what a refusal means:
// root must succeed; another user keeps its own uid and takes the root's
// group where it can.
func TestOwnerApply(t *testing.T) {
	type call struct{ uid, gid int }
	eperm := &os.PathError{Op: "chown", Path: "x", Err: syscall.EPERM}
	eio := &os.PathError{Op: "chown", Path: "x", Err: syscall.EIO}
	for _, tc := range []struct {
		name      string
		root      bool
		fileGid   uint32
		fileUid   uint32
		results   []error // what each chown call returns, in order
		wantCalls []call
		wantErr   error
	}{
		{name: "already the root's", fileUid: 101, fileGid: 104},
		{name: "root gives it away", root: true, fileUid: 0, fileGid: 0, results: []error{nil}, wantCalls: []call{{101, 104}}},
		{name: "root refused is an error", root: true, fileUid: 0, fileGid: 0, results: []error{eperm}, wantCalls: []call{{101, 104}}, wantErr: syscall.EPERM},
		{name: "root, any other error", root: true, fileUid: 0, fileGid: 0, results: []error{eio}, wantCalls: []call{{101, 104}}, wantErr: syscall.EIO},
		{name: "user takes the root's group", fileUid: 5, fileGid: 5, results: []error{eperm, nil}, wantCalls: []call{{101, 104}, {-1, 104}}},
		{name: "user outside the root's group keeps its own", fileUid: 5, fileGid: 5, results: []error{eperm, eperm}, wantCalls: []call{{101, 104}, {-1, 104}}},
		{name: "user already in the root's group", fileUid: 5, fileGid: 104, results: []error{eperm}, wantCalls: []call{{101, 104}}},
		{name: "user, another error", fileUid: 5, fileGid: 5, results: []error{eio}, wantCalls: []call{{101, 104}}, wantErr: syscall.EIO},
		{name: "user, another error on the group", fileUid: 5, fileGid: 5, results: []error{eperm, eio}, wantCalls: []call{{101, 104}, {-1, 104}}, wantErr: syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := owner{uid: 101, gid: 104, known: true, root: tc.root}
			var calls []call
			err := o.apply(statInfo{st: syscall.Stat_t{Uid: tc.fileUid, Gid: tc.fileGid}}, func(uid, gid int) error {
				calls = append(calls, call{uid, gid})
				if len(calls) > len(tc.results) {
					t.Fatalf("chown called %d times, want %d", len(calls), len(tc.results))
				}
				return tc.results[len(calls)-1]
			})
			if (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Errorf("apply: got %v, want %v", err, tc.wantErr)
			}
			if len(calls) != len(tc.wantCalls) {
				t.Fatalf("chown calls: got %v, want %v", calls, tc.wantCalls)
			}
			for i := range calls {
				if calls[i] != tc.wantCalls[i] {
					t.Errorf("chown call %d: got %v, want %v", i, calls[i], tc.wantCalls[i])
				}
			}
		})
	}
	if err := (owner{}).apply(statInfo{}, func(int, int) error { return errors.New("called") }); err != nil {
		t.Errorf("apply of an unknown owner: got %v, want nil (no chown)", err)
	}
}

// otherWriterEnv names, in the copy of the test binary runAsNobody starts,
// the repositories owned by someone else that nobody writes into: a
// world-writable one, and one whose directory is also setgid.
const otherWriterEnv = "WALVAULT_TEST_WRITE_AS_OTHER"

// TestOtherUserKeepsItsOwner: a user other than root cannot give its
// entries away; that is no error. The entries keep its owner and group, or
// the root's group where the root directory is setgid.
func TestOtherUserKeepsItsOwner(t *testing.T) {
	if env := os.Getenv(otherWriterEnv); env != "" || os.Geteuid() != 0 {
		// The writer's half, as nobody (started below). A test run by a
		// user other than root writes into its own directories instead,
		// where there is nothing to give away.
		plain, setgid := t.TempDir(), t.TempDir()
		if env != "" {
			plain, setgid, _ = strings.Cut(env, ",")
		}
		uid, gid := os.Geteuid(), os.Getegid()
		writeAndCheckOwner(t, plain, uid, gid)
		if fi, err := os.Stat(setgid); err == nil && fi.Mode()&os.ModeSetgid != 0 {
			gid = int(fi.Sys().(*syscall.Stat_t).Gid)
		}
		writeAndCheckOwner(t, setgid, uid, gid)
		return
	}
	dir, err := os.MkdirTemp("", "walvault-other-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Owned by a third user (not nobody, not root), writable by all.
	const ownerUID, ownerGID = 4242, 4243
	var roots []string
	for _, r := range []struct {
		name string
		mode os.FileMode
	}{{"plain", 0o777}, {"setgid", 0o777 | os.ModeSetgid}} {
		root := filepath.Join(dir, r.name)
		mkdir(t, root)
		if err := os.Chown(root, ownerUID, ownerGID); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(root, r.mode); err != nil {
			t.Fatal(err)
		}
		roots = append(roots, root)
	}
	runAsNobody(t, "^TestOtherUserKeepsItsOwner$", otherWriterEnv+"="+strings.Join(roots, ","))
}

// writeAndCheckOwner puts an object under new directories in the repository
// at root and checks that each new entry has uid and gid and reads back.
func writeAndCheckOwner(t *testing.T, root string, uid, gid int) {
	t.Helper()
	b := newTestBackend(t, root)
	const key = "drills/2026/01/drill.json"
	if err := b.Put(context.Background(), key, strings.NewReader(key), storage.PutOptions{IfNotExists: true}); err != nil {
		t.Fatalf("Put(%q) into %s: got %v, want nil", key, root, err)
	}
	for _, p := range []string{"drills", "drills/2026", "drills/2026/01", key} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s in %s: owner %d:%d, want %d:%d", p, root, st.Uid, st.Gid, uid, gid)
		}
	}
	rc, _, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): got %v, want nil", key, err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(body) != key {
		t.Errorf("Get(%q): read %q, %v, want %q", key, body, err, key)
	}
}
