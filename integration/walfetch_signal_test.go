package integration

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// TestWALFetchSignalsStopRecovery: a wal-fetch waiting on a storage that
// does not answer, stopped by SIGTERM, SIGINT or SIGQUIT, exits 200, and
// one that crashes dies of the signal, both of which make PostgreSQL stop
// recovery; never 1 or 2, which it reads as "not in the archive" and
// would end recovery there (Go's own answer to SIGQUIT and to a crash is
// exit 2).
func TestWALFetchSignalsStopRecovery(t *testing.T) {
	env := silentS3Env(t)
	bin := testenv.BuildWalvault(t)
	// SIGSEGV and SIGABRT stand for a crash (a fatal runtime error such as
	// out of memory or a failed thread creation raises SIGABRT): Go's
	// default answer is exit 2 (explore23b F1); wal-fetch must die of the
	// signal instead, which PostgreSQL treats as fatal too.
	crashes := map[syscall.Signal]bool{syscall.SIGSEGV: true, syscall.SIGABRT: true}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGSEGV, syscall.SIGABRT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "wal-fetch", "000000010000000000000003", filepath.Join(t.TempDir(), "RECOVERYXLOG"))
			cmd.Env = env
			err := signalWhileRunning(t, cmd, time.Second, sig) // past the start, into the request
			var exit *exec.ExitError
			switch {
			case !errors.As(err, &exit):
				t.Fatalf("wal-fetch after %s: %v; want it to fail", sig, err)
			case crashes[sig]:
				if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
					t.Fatalf("wal-fetch after %s: %v; want it killed by the signal (exit 2 reads as not in the archive)", sig, err)
				}
			case exit.ExitCode() != 200:
				t.Fatalf("wal-fetch after %s: %v; want exit 200", sig, err)
			}
		})
	}
}

// signalWhileRunning starts cmd, sends it sig after the pause and returns
// how it ended; a cmd still running 30 s after the signal fails the test.
func signalWhileRunning(t *testing.T, cmd *exec.Cmd, pause time.Duration, sig syscall.Signal) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pause)
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s still running 30s after %s", cmd.Args[1], sig)
		return nil
	}
}

// silentS3Env is the environment of a repository on an S3 endpoint that
// takes connections and never answers: a command on it waits.
func silentS3Env(t *testing.T) []string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return append(cleanEnv(), "WALVAULT_REPO=s3://bucket/db1", "WALVAULT_S3_ENDPOINT=http://"+ln.Addr().String(),
		"WALVAULT_S3_ALLOW_HTTP=true", "WALVAULT_S3_PATH_STYLE=true", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y", "AWS_REGION=us-east-1")
}
