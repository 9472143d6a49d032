package drill

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestKillStragglers: a detached process (its own session, as wal-fetch's
// prefetcher) that names the scratch directory is killed; one that names
// only its parent is left alone.
func TestKillStragglers(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "walvault-drill-1")
	start := func(arg string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "--", arg)
		cmd.Env = append(os.Environ(), fakeServerEnv+"=obey")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	straggler := start("--dir=" + root + "/data/pg_wal/walvault/prefetch")
	bystander := start("--scratch-dir=" + parent)
	defer func() {
		bystander.Process.Kill()
		bystander.Wait()
	}()
	exited := make(chan struct{})
	go func() {
		straggler.Wait()
		close(exited)
	}()
	time.Sleep(100 * time.Millisecond)
	killed := killStragglers(root, 5*time.Second)
	if len(killed) != 1 || killed[0] != straggler.Process.Pid {
		t.Fatalf("killed %v, want only %d", killed, straggler.Process.Pid)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the straggler is still running")
	}
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("a process naming only the parent directory was killed: %v", err)
	}
	if got := killStragglers(root, time.Second); len(got) != 0 {
		t.Fatalf("a second pass killed %v", got)
	}
}
