//go:build unix

package restore

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

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
	return func() { releaseFlock(f) }, nil
}

// releaseFlock drops f's lock, then closes it. Closing alone is not
// enough: a child this process forks (any exec, from any goroutine) holds
// a copy of the descriptor until its exec, and the lock stays with it.
func releaseFlock(f *os.File) {
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	f.Close()
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

// markInFlight creates path locked, for as long as a download runs: it is
// locked before it gets its name, so whoever opens it finds it locked until
// unlock (or the process's death) releases it. unlock removes it first, so
// a wal-fetch that waited finds the record already in place.
func markInFlight(path string) (unlock func(), err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return func() {
		os.Remove(path)
		releaseFlock(f)
	}, nil
}

// waitInFlight waits while a download holds path's lock, at most wait. It
// returns false only when it gave up with the lock still held; a missing
// or unlocked path (no download, or one that finished or died) ends the
// wait at once.
func waitInFlight(ctx context.Context, path string, wait time.Duration) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return true
	}
	// A blocking flock returns the moment the download ends, where
	// polling would add its period to every wait and wake this process up
	// all along. On a timeout the goroutine is left blocked; it closes f
	// itself once it returns (closing f under it would free its descriptor
	// number for reuse while the call still uses it).
	done := make(chan struct{})
	go func() {
		for unix.Flock(int(f.Fd()), unix.LOCK_SH) == unix.EINTR {
		}
		f.Close()
		close(done)
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

// StartDetached starts exe with args in a session of its own, so that
// PostgreSQL, which waits for restore_command and signals its process
// group, neither waits for it nor kills it; its output goes to logPath.
// The caller does not wait for it: a goroutine reaps it when it ends,
// which matters in a long-lived wal-helper, where every prefetcher it
// started would otherwise stay a zombie holding a PID (explore24a F1).
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
	go cmd.Wait()
	return nil
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
