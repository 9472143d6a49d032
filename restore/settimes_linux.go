package restore

import (
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// procFDDir names a process's open files by number (a test's seam).
var procFDDir = "/proc/self/fd/"

// setTimes sets the access and modification times of f, open as name under
// root, through its descriptor: one system call, where root.Chtimes opens
// every directory on the path again (a restore does this for each of its
// thousands of files). Where /proc cannot do it, root.Chtimes does.
func setTimes(f *os.File, root *os.Root, name string, t time.Time) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	var uerr error
	if err := conn.Control(func(fd uintptr) {
		uerr = unix.UtimesNanoAt(unix.AT_FDCWD, procFDDir+strconv.Itoa(int(fd)), []unix.Timespec{ts, ts}, 0)
	}); err != nil {
		return err
	}
	if uerr == nil {
		return nil
	}
	return root.Chtimes(name, t, t) // no /proc, or no access to it
}
