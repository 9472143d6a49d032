package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// walHelper is a `walvault wal-helper DIR` started for a benchmark run.
type walHelper struct {
	cmd *exec.Cmd
	log *testenv.SyncBuffer
}

// startWALHelper starts bin's wal-helper for the data directory dir (made
// one with a PG_VERSION file), with env, the environment the benchmark's
// walvault calls get, so that it runs them; it is stopped when the run
// ends.
func startWALHelper(b *testing.B, bin, dir string, env []string) *walHelper {
	b.Helper()
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	h := &walHelper{cmd: exec.Command(bin, "wal-helper", dir), log: &testenv.SyncBuffer{}}
	h.cmd.Dir, h.cmd.Env = dir, env
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		h.cmd.Process.Signal(syscall.SIGTERM)
		h.cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(h.log.String(), "wal-helper listening"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("wal-helper not listening after 10s:\n%s", h.log.String())
		}
	}
	return h
}

// cpu is the helper's user and system CPU time so far.
func (h *walHelper) cpu() time.Duration {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(h.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// After the command name in parentheses: state is field 3, utime 14,
	// stime 15, in clock ticks (USER_HZ, 100 on Linux).
	_, rest, _ := strings.Cut(string(stat), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100
}

// peakRSSMiB is the helper's peak resident set so far (VmHWM), in MiB.
func (h *walHelper) peakRSSMiB() float64 {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(h.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// checkRan fails the run unless the helper ran at least n calls: a call it
// declined ran in its own process, and the row would measure that.
func (h *walHelper) checkRan(b *testing.B, n int) {
	b.Helper()
	log := h.log.String()
	if got := strings.Count(log, "wal-helper: ran"); got < n {
		b.Fatalf("the helper ran %d calls, want at least %d; its log:\n%s", got, n, log)
	}
}

// helperLoop is a benchmark row whose walvault calls go through a helper
// started in dir with env (the calls' environment): run does the row's
// loop over the calls, calls is how many the helper must have run; it
// reports the helper's CPU time per
// iteration (helper-cpu-ms), which the calls' own cpu-ms leaves out, and
// its peak RSS (helper-peak-RSS-MiB; peak-RSS-MiB is the calls').
func helperLoop(b *testing.B, e *env, env []string, dir string, calls func() int, run func()) {
	b.Helper()
	h := startWALHelper(b, e.bin, dir, env)
	before := h.cpu()
	run()
	b.ReportMetric(float64(h.cpu()-before)/1e6/float64(calls()), "helper-cpu-ms")
	b.ReportMetric(h.peakRSSMiB(), "helper-peak-RSS-MiB")
	h.checkRan(b, calls())
}
