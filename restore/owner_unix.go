//go:build unix

package restore

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// canReach judges, by mode bits and the owner's primary group only, whether
// o may search every parent directory of dir: PostgreSQL, running as o,
// cannot start a data directory it cannot reach.
func (o *owner) canReach(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
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
		case int(st.Uid) == o.uid:
			bit = 0o100
		case int(st.Gid) == o.gid:
			bit = 0o010
		}
		if perm&bit == 0 {
			return fmt.Errorf("%s (mode %v, owner %d:%d) is not searchable by %s", p, perm, st.Uid, st.Gid, o.name)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
