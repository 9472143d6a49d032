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
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := fi.Mode().Perm()
		var bit fs.FileMode = 0o001
		switch {
		case int(st.Uid) == uid:
			bit = 0o100
		case int(st.Gid) == gid:
			bit = 0o010
		}
		if perm&bit == 0 {
			return fmt.Errorf("%s (mode %v, owner %d:%d) is not searchable by %s", p, perm, st.Uid, st.Gid, name)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
