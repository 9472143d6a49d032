package check

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walvault/walvault/internal/handoff"
	"github.com/walvault/walvault/internal/peercred"
)

// NameWALHelper is the line of a wal-helper serving the data directory; it
// appears only where its socket is (the helper is optional).
const NameWALHelper = "wal-helper"

// checkWALHelper reports a wal-helper whose socket is in the data
// directory: whether it answers, and whether it would run PostgreSQL's
// calls, which it does only when their environment agrees with its own on
// every variable the calls read (opts.HelperReads). Either way archiving
// works: a call the helper does not run runs in its own process. So these
// lines are OK, and say what to change.
func (c *checker) checkWALHelper() []Result {
	l := c.localServer()
	if l.why != "" {
		return nil
	}
	sock := filepath.Join(l.dataDir, handoff.SocketPath)
	if _, err := os.Lstat(sock); err != nil {
		return nil
	}
	conn, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return []Result{ok(NameWALHelper, "not running: %s is left by a helper that stopped, so each archive_command and restore_command call runs in its own process (start walvault wal-helper %s, or remove the socket)", sock, l.dataDir)}
	}
	_, pid, err := peercred.Of(conn.(*net.UnixConn))
	conn.Close()
	if err != nil {
		return []Result{ok(NameWALHelper, "serving %s", l.dataDir)}
	}
	serving := fmt.Sprintf("serving %s (pid %d)", l.dataDir, pid)
	if other := helperBinary(pid); other != "" {
		return []Result{ok(NameWALHelper, "%s, but %s", serving, other)}
	}
	if c.opts.HelperReads == nil {
		return []Result{ok(NameWALHelper, "%s", serving)}
	}
	helperEnv, err := procEnviron(pid)
	if err != nil {
		return []Result{ok(NameWALHelper, "%s; whether it runs PostgreSQL's calls was not checked: cannot read its environment: %v", serving, err)}
	}
	pmEnv, err := postmasterEnviron(l.dataDir)
	if err != nil {
		return []Result{ok(NameWALHelper, "%s; whether it runs PostgreSQL's calls was not checked: cannot read the postmaster's environment: %v", serving, err)}
	}
	if differ := handoff.EnvDiffering(pmEnv, helperEnv, c.opts.HelperReads); len(differ) > 0 {
		return []Result{ok(NameWALHelper, "%s, but it declines PostgreSQL's calls, which then run in their own processes: their environment differs from the helper's in %s (give both the same environment)", serving, strings.Join(differ, ", "))}
	}
	return []Result{ok(NameWALHelper, "%s; PostgreSQL's wal-push and wal-fetch calls are handed to it (the environments agree on every variable they read)", serving)}
}

// helperBinary says what the helper process pid runs when that is not the
// file this walvault runs, and so what becomes of PostgreSQL's calls: the
// helper runs only calls from its own binary. "" when it is the same file,
// or when /proc cannot tell.
func helperBinary(pid int) string {
	exe := peercred.ExecutablesOf(pid)
	switch {
	case strings.HasSuffix(exe.Peer, " (deleted)"):
		// An upgrade renamed a new file over it, or it was removed.
		return fmt.Sprintf("it runs %s, a file since replaced or removed: it declines the next call, which runs the installed binary in its own process, then stops (a unit with Restart=always starts it again, on the new binary)", exe.Peer)
	case exe.Same || exe.Peer == "":
		return ""
	}
	return fmt.Sprintf("it runs %s, not this walvault (%s): calls from this binary run in their own processes (start the helper from the binary archive_command and restore_command name)", exe.Peer, exe.Self)
}
