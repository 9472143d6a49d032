//go:build unix

package restore

import (
	"path/filepath"

	"github.com/walvault/walvault/internal/osuser"
)

// canReach reports whether o may search every parent directory of dir:
// PostgreSQL, running as o, cannot start a data directory it cannot reach.
func (o *owner) canReach(dir string) error {
	return osuser.CanSearch(filepath.Dir(dir), o.uid, o.gid, o.name)
}
