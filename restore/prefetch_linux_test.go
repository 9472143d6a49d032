package restore

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// TestStartDetachedReaped: a process StartDetached started is reaped when
// it ends, so a long-lived wal-helper that starts prefetchers collects no
// zombies (explore24a F1).
func TestStartDetachedReaped(t *testing.T) {
	for range 3 {
		if err := StartDetached("/bin/true", nil, filepath.Join(t.TempDir(), "log")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		zombies := zombieChildren(t)
		if zombies == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d children of this process are zombies 10 s after they ended: not reaped", zombies)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// zombieChildren counts this process's children in state Z (/proc).
func zombieChildren(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after ")".
		fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(fields) > 1 && fields[0] == "Z" && fields[1] == strconv.Itoa(os.Getpid()) {
			n++
		}
	}
	return n
}
