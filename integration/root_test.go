package integration

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/walvault/walvault/internal/testenv"
)

// TestRootWritesOwnerReads: backup-push and check run as root (the tests'
// user) into a file:// repository the server user owns leave nothing that
// user cannot read: every file and directory takes the repository's owner,
// and backup-list, verify and check then work as the server user (issue 13
// part 3).
func TestRootWritesOwnerReads(t *testing.T) {
	r := fileRepo(t)
	dir := strings.TrimPrefix(r.url, "file://")
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE t AS SELECT 1 AS x")
	id := backupPush(t, r, pg) // as root: backups/<id>/
	waitDone(t, r, id)
	if res := walvault(t, r.env, "check", "--pg-conn", pg.ConnString()); res.code != 0 { // as root: check/
		t.Fatalf("check as %d: %v", os.Geteuid(), res)
	}

	rootInfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := rootInfo.Sys().(*syscall.Stat_t)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != want.Uid || st.Gid != want.Gid {
			t.Errorf("%s: owner %d:%d, want the repository's %d:%d", path, st.Uid, st.Gid, want.Uid, want.Gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// As the repository's owner, through the server's environment.
	bin := testenv.BuildWalvault(t)
	asOwner := func(args ...string) string {
		t.Helper()
		stdout, stderr, err := pg.Run(t, bin, args...)
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run walvault %v as %s: %v", args, testenv.ServerUser(t), err)
		}
		if err != nil {
			t.Errorf("walvault %v as %s: %v\nstdout: %s\nstderr: %s", args, testenv.ServerUser(t), err, stdout, stderr)
		}
		return stdout
	}
	var list []backupListing
	if err := json.Unmarshal([]byte(asOwner("backup-list", "--json")), &list); err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("backup-list --json as %s: %+v, %v; want backup %s", testenv.ServerUser(t), list, err, id)
	}
	asOwner("verify")
	asOwner("check", "--pg-conn", pg.ConnString())
}
