package restore

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// copyDescriptorOf duplicates this process's descriptor open on path, as a
// child forked at that moment would hold it until its exec (CI once saw the
// prefetch lock outlive its prefetcher while a parallel test started a
// command). The copy is closed when the test ends.
func copyDescriptorOf(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != path {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		copied, err := syscall.Dup(fd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(copied) })
		return
	}
	t.Fatalf("no descriptor open on %s", path)
}

func TestPrefetchLockReleasedWhileDescriptorCopied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prefetch.lock")
	unlock, err := lockPrefetch(path)
	if err != nil {
		t.Fatal(err)
	}
	copyDescriptorOf(t, path)
	unlock()
	again, err := lockPrefetch(path)
	if err != nil {
		t.Fatalf("lock after unlock, with a forked copy of the descriptor still open: %v", err)
	}
	again()
}

func TestInFlightReleasedWhileDescriptorCopied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.busy")
	unlock, err := markInFlight(path)
	if err != nil {
		t.Fatal(err)
	}
	copyDescriptorOf(t, path)
	// A waiter that opened the record before the download ended.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unlock()
	released := make(chan struct{})
	go func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_SH)
		close(released)
	}()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter still blocked 5s after unlock, with a forked copy of the descriptor open")
	}
}
