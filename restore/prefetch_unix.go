//go:build unix

package restore

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockPrefetch takes the prefetch lock without waiting; ErrPrefetchBusy
// when another process holds it. The kernel drops the lock when the
// process dies, so a crashed prefetcher never blocks the next one.
func lockPrefetch(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrPrefetchBusy
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

// prefetchBusy reports whether a prefetcher holds the lock now.
func prefetchBusy(path string) bool {
	unlock, err := lockPrefetch(path)
	if err != nil {
		return errors.Is(err, ErrPrefetchBusy)
	}
	unlock()
	return false
}

// StartDetached starts exe with args in a session of its own, so that
// PostgreSQL, which waits for restore_command and signals its process
// group, neither waits for it nor kills it; its output goes to logPath.
// It is not waited for.
func StartDetached(exe string, args []string, logPath string) error {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return err
	}
	out, err := openPrefetchLog(logPath)
	if err != nil {
		return err
	}
	defer out.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// openPrefetchLog appends to the log, starting it afresh past 1 MiB so it
// stays bounded.
func openPrefetchLog(path string) (*os.File, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if info, err := os.Stat(path); err == nil && info.Size() > 1<<20 {
		flags |= os.O_TRUNC
	}
	return os.OpenFile(path, flags, 0o600)
}
