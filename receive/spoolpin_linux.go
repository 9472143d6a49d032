package receive

import (
	"fmt"
	"os"
)

// pinSpoolDir opens the spool directory once and returns a path that
// reaches it through that open descriptor (/proc/self/fd/N): whoever may
// rename it or its parents afterwards, and put a link to another
// directory (a live pg_wal) at its name, does not move where segments are
// written, truncated and removed (explore24d F4). The opened directory is
// checked as spoolDirOwn checks the path. close releases it.
func pinSpoolDir(dir string) (pinned string, close func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return "", nil, fmt.Errorf("spool directory: %w", err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = ownDirectory(dir, fi)
	}
	if err != nil {
		f.Close()
		return "", nil, err
	}
	pinned = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if pi, err := os.Stat(pinned); err != nil || !os.SameFile(fi, pi) {
		// No /proc: the path as it was checked.
		f.Close()
		return dir, func() {}, nil
	}
	return pinned, func() { f.Close() }, nil
}
