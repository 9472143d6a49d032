//go:build unix

package restore

import (
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/walvault/walvault/internal/osuser"
)

// canReach reports whether o may search every parent directory of dir:
// PostgreSQL, running as o, cannot start a data directory it cannot reach.
func (o *owner) canReach(dir string) error {
	return osuser.CanSearch(filepath.Dir(dir), o.uid, o.gid, o.name)
}

// canRead reports whether o may read path, reaching it, by mode bits and
// o's groups (its primary group and the others it belongs to).
func (o *owner) canRead(path string) error {
	gids := []int{o.gid}
	if u, err := user.Lookup(o.name); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.Atoi(id); err == nil && g != o.gid {
					gids = append(gids, g)
				}
			}
		}
	}
	var denied error
	for _, gid := range gids {
		if err := osuser.CanSearch(filepath.Dir(path), o.uid, gid, o.name); err != nil {
			denied = err
			continue
		}
		d, err := osuser.Check(path, o.uid, gid, osuser.Read)
		switch {
		case err != nil:
			return err
		case d == nil:
			return nil
		}
		denied = fmt.Errorf("%s (mode %v, owner %d:%d) is not readable by %s", path, d.Mode, d.UID, d.GID, o.name)
	}
	return denied
}
