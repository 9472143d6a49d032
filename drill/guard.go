package drill

import (
	"fmt"
	"path/filepath"

	"github.com/walvault/walvault/restore"
)

// The drill guard (restore.DrillGuard) runs in the server's wal-fetch: the
// restore_command cmd builds names the scratch directory with
// --drill-scratch, and a segment the guard refuses stops recovery there.

// ScratchDir is the scratch directory of a drill whose data directory is
// dataDir (the argument of Options.RestoreCommand): what the server's
// wal-fetch must name with --drill-scratch, so that its drill guard keeps
// replayed WAL inside it.
func ScratchDir(dataDir string) string { return filepath.Dir(dataDir) }

// exitedEarly is the failure of a server that exited before recovery
// finished: the drill guard's refusal when it stopped recovery (its
// wal-fetch refused a segment), else see the server log.
func (d *drill) exitedEarly(srv *server) error {
	if why := restore.DrillGuardRefusal(srv.dataDir); why != "" {
		d.addCheck("WAL guard", StatusFailed, why)
		return fmt.Errorf("recovery stopped: %s", why)
	}
	return fmt.Errorf("the temporary server exited before recovery finished (%s): recovery failed, see the server log", srv.exitError())
}
