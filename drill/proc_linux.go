package drill

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// setParentDeathSignal makes the kernel send the postmaster SIGQUIT
// (immediate shutdown) if walvault dies without stopping it, say by
// SIGKILL. Go sets it after switching credentials, so it survives the
// switch to the server user.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGQUIT }

// killStragglers kills what the server started outside its process group
// and that outlives it (wal-fetch's detached WAL prefetcher runs in a
// session of its own): every process whose command line names dir, the
// drill's private scratch directory, which nothing else uses. It waits
// up to wait for them to be gone and returns the pids it killed.
func killStragglers(dir string, wait time.Duration) []int {
	var killed []int
	deadline := time.Now().Add(wait)
	for {
		found := processesNaming(dir)
		for _, pid := range found {
			if syscall.Kill(pid, syscall.SIGKILL) == nil && !slices.Contains(killed, pid) {
				killed = append(killed, pid)
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return killed
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesNaming lists live processes (not zombies, not walvault itself)
// whose command line contains dir.
func processesNaming(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	needle := []byte(filepath.Clean(dir) + "/")
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, needle) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && bytes.HasPrefix(stat[i:], []byte(") Z")) {
				continue // a zombie: already dead
			}
		}
		pids = append(pids, pid)
	}
	return pids
}
