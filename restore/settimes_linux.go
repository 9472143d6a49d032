package restore

import (
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// setTimes sets the access and modification times of f, open as name under
// root, through its descriptor: one system call, where root.Chtimes opens
// every directory on the path again (a restore does this for each of its
// thousands of files). Without /proc it falls back to root.Chtimes.
func setTimes(f *os.File, root *os.Root, name string, t time.Time) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	var uerr error
	if err := conn.Control(func(fd uintptr) {
		uerr = unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(fd)), []unix.Timespec{ts, ts}, 0)
	}); err != nil {
		return err
	}
	if uerr == nil {
		return nil
	}
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		return uerr
	}
	return root.Chtimes(name, t, t)
}
