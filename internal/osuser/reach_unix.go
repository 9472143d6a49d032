//go:build unix

// Package osuser answers questions about what an OS user may do with the
// file system, for the commands that hand files to the postgres user.
package osuser

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CanSearch judges, by mode bits and the primary group only, whether the
// user uid:gid (called name in messages) may search dir and every
// directory above it: PostgreSQL running as that user cannot use a data
// directory it cannot reach.
func CanSearch(dir string, uid, gid int, name string) error {
	for p := dir; ; p = filepath.Dir(p) {
		d, err := Check(p, uid, gid, Search)
		if err != nil {
			return err
		}
		if d != nil {
			return fmt.Errorf("%s (mode %v, owner %d:%d) is not searchable by %s", p, d.Mode, d.UID, d.GID, name)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// Check judges, by mode bits and the primary group only, whether the user
// uid:gid has permission bit (Read, Write or Search) on path: nil when it
// has, or when the file system does not say who owns path, else a Denial.
func Check(path string, uid, gid int, bit fs.FileMode) (*Denial, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, nil
	}
	perm := fi.Mode().Perm()
	class := bit // other
	switch {
	case int(st.Uid) == uid:
		class = bit << 6
	case int(st.Gid) == gid:
		class = bit << 3
	}
	if perm&class == 0 {
		return &Denial{Mode: perm, UID: st.Uid, GID: st.Gid}, nil
	}
	return nil, nil
}

// Owner is the user id that owns fi; ok is false when the file system
// does not say.
func Owner(fi fs.FileInfo) (uid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// OwnerGroup is the user and group ids that own fi; ok is false when the
// file system does not say.
func OwnerGroup(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// MatchOwner gives path the owner and group of like, when this process
// runs as root: what a command run by hand as root creates among another
// user's files (the server's pg_wal) stays usable by that user. Otherwise,
// or when like is root's, it does nothing.
func MatchOwner(path, like string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(like)
	if err != nil {
		return err
	}
	uid, gid, ok := OwnerGroup(fi)
	if !ok || uid == 0 {
		return nil
	}
	return os.Lchown(path, uid, gid)
}
