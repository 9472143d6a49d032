package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/handoff"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// helperRig is a data directory with one segment in pg_wal, a file://
// repository named by WALVAULT_REPO, and a wal-helper serving the
// directory in this process (whose working directory it becomes).
type helperRig struct {
	dir, segment string
	data         []byte
	log          *testenv.SyncBuffer
	stop         func() int    // stops the helper, returns its exit code
	exited       chan struct{} // closed when the helper has returned
	code         int           // its exit code, once exited is closed
}

func startHelperRig(t *testing.T, flags ...string) *helperRig {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	data := waltest.Cluster{SystemID: 7300000000000000001, SegmentSize: wal.MinSegmentSize}.Segment(t, s, 1)
	if err := os.MkdirAll(filepath.Join(dir, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	waltest.WriteFile(t, filepath.Join(dir, "pg_wal"), s.String(), data)
	t.Setenv("WALVAULT_REPO", "file://"+t.TempDir())
	t.Chdir(dir)

	rig := &helperRig{dir: dir, segment: s.String(), data: data, log: &testenv.SyncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	rig.exited = make(chan struct{})
	args := append(append([]string{"walvault", "wal-helper"}, flags...), dir)
	go func() {
		rig.code = run(ctx, args, io.Discard, rig.log)
		close(rig.exited)
	}()
	rig.stop = func() int {
		cancel()
		<-rig.exited
		return rig.code
	}
	t.Cleanup(func() { rig.stop() })
	// Waiting on the log (a locked buffer), not the socket, also orders
	// the helper's flag parsing before this test's own runs for -race:
	// urfave/cli v2 parses into package-level flags.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(rig.log.String(), "wal-helper listening") {
			break
		}
		select {
		case <-rig.exited:
			t.Fatalf("wal-helper exited with %d before listening:\n%s", rig.code, rig.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("wal-helper not listening after 10s:\n%s", rig.log.String())
		}
	}
	return rig
}

// ask hands a command line to the helper as the init of a walvault
// process started in the data directory with this environment would.
func (rig *helperRig) ask(env []string, args ...string) (handoff.Answer, bool) {
	return handoff.Ask(handoff.SocketPath, handoff.Request{Dir: rig.dir, Args: append([]string{"walvault"}, args...), Env: env})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestWALHelperRunsTheCommand: a handed-off wal-push stores the segment
// (a push in a process of its own then finds it archived), a handed-off
// wal-fetch brings it back byte for byte, and failures get the exit code
// and final message the command gives in its own process.
func TestWALHelperRunsTheCommand(t *testing.T) {
	rig := startHelperRig(t)
	env := handoff.Environ(os.Environ())
	p := "pg_wal/" + rig.segment

	a, ok := rig.ask(env, "wal-push", p)
	if !ok || a.Code != exitOK || !strings.Contains(a.Message, "msg=archived") {
		t.Fatalf("handed-off wal-push: ok=%v code=%d message %q; want it run, exit 0, archived", ok, a.Code, a.Message)
	}
	a, ok = rig.ask(env, "wal-fetch", rig.segment, "pg_wal/RECOVERYXLOG")
	if !ok || a.Code != exitOK {
		t.Fatalf("handed-off wal-fetch: ok=%v code=%d message %q", ok, a.Code, a.Message)
	}
	if got, err := os.ReadFile(filepath.Join(rig.dir, "pg_wal", "RECOVERYXLOG")); err != nil || !bytes.Equal(got, rig.data) {
		t.Fatalf("fetched through the helper: %d bytes, %v; want the %d archived", len(got), err, len(rig.data))
	}
	failing := [][]string{
		{"wal-fetch", "000000010000000000000009", "pg_wal/RECOVERYXLOG"}, // not archived: 1, recovery goes on
		{"wal-push", "pg_wal/000000010000000000000009"},                  // no such file
		{"wal-push", "--timeout", "soon", p},                             // usage error
	}
	var answers []handoff.Answer
	for _, args := range failing {
		a, ok := rig.ask(env, args...)
		if !ok {
			t.Fatalf("%q: not run by the helper: %q", args, a.Message)
		}
		answers = append(answers, a)
	}
	// The same calls in their own processes, once the helper has stopped
	// (urfave/cli's package-level flags again).
	rig.stop()
	if !strings.Contains(rig.log.String(), "wal-helper: ran") {
		t.Errorf("the helper logged no call:\n%s", rig.log.String())
	}
	if code, _, stderr := runCmd(t, "wal-push", p); code != exitOK || !strings.Contains(stderr, "already archived with the same content") {
		t.Fatalf("wal-push in its own process after the helper's: exit %d, %q; want the segment found archived", code, stderr)
	}
	for i, args := range failing {
		code, _, stderr := runCmd(t, args...)
		if a := answers[i]; a.Code != code || lastLine(a.Message) != lastLine(stderr) {
			t.Errorf("%q handed off: exit %d, %q; in its own process: exit %d, %q", args, a.Code, lastLine(a.Message), code, lastLine(stderr))
		}
	}
}

// TestWALHelperDeclines: a call the helper must not run (another
// environment, another directory, help) is left to the caller, with the
// reason when it is a mistake to fix, and never a variable's value.
func TestWALHelperDeclines(t *testing.T) {
	rig := startHelperRig(t)
	env := handoff.Environ(os.Environ())
	p := "pg_wal/" + rig.segment

	// The first call: nothing is archived before the declined ones.
	other := append(handoff.Environ(os.Environ()), "AWS_PROFILE=secret-profile-name")
	a, ok := rig.ask(other, "wal-push", p)
	if ok || !strings.Contains(a.Message, "AWS_PROFILE") || strings.Contains(a.Message, "secret-profile-name") {
		t.Errorf("another environment: ok=%v message %q; want declined, naming AWS_PROFILE without its value", ok, a.Message)
	}
	// A variable the command does not read may differ: WALVAULT_PREFETCH
	// is wal-fetch's, not wal-push's.
	prefetchOff := append(handoff.Environ(os.Environ()), "WALVAULT_PREFETCH=0")
	if a, ok := rig.ask(prefetchOff, "wal-fetch", rig.segment, "pg_wal/RECOVERYXLOG"); ok || !strings.Contains(a.Message, "WALVAULT_PREFETCH") {
		t.Errorf("wal-fetch with another WALVAULT_PREFETCH: ok=%v message %q; want declined", ok, a.Message)
	}
	// The S3 client goes through the proxy the environment names.
	proxied := append(handoff.Environ(os.Environ()), "https_proxy=http://127.0.0.1:9")
	if a, ok := rig.ask(proxied, "wal-push", p); ok || !strings.Contains(a.Message, "https_proxy") {
		t.Errorf("wal-push through another proxy: ok=%v message %q; want declined, naming https_proxy", ok, a.Message)
	}
	unread := append(handoff.Environ(os.Environ()), "WALVAULT_PREFETCH=0", "WALVAULT_RETAIN=2 FULL", "WALVAULT_HELPER=auto")
	if a, ok := rig.ask(unread, "wal-push", p); !ok || a.Code != exitOK || !strings.Contains(a.Message, "msg=archived") {
		t.Errorf("wal-push with variables it does not read: ok=%v exit %d %q; want it run and archived", ok, a.Code, a.Message)
	}
	a, ok = handoff.Ask(handoff.SocketPath, handoff.Request{Dir: t.TempDir(), Args: []string{"walvault", "wal-push", p}, Env: env})
	if ok || !strings.Contains(a.Message, "another data directory") {
		t.Errorf("another directory: ok=%v message %q; want declined", ok, a.Message)
	}
	// Another command, even with a handed-off command's name among its
	// arguments (which makes its caller ask), is the caller's.
	for _, args := range [][]string{{"wal-push", "--help"}, {"wal-fetch", "-h"}, {"--version", "wal-push"}, {"backup-list"}, {"info", "wal-fetch"}, {"check", "wal-push"}} {
		if a, ok := rig.ask(env, args...); ok || a.Message != "" {
			t.Errorf("%q: ok=%v message %q; want a silent fallback", args, ok, a.Message)
		}
	}
}

// TestWALHelperStops: a second helper for the same directory is refused;
// the first stops on its context, removing its socket, after which a
// caller runs the command itself without a word.
func TestWALHelperStops(t *testing.T) {
	rig := startHelperRig(t)
	code, _, stderr := runCmd(t, "wal-helper", rig.dir)
	if code != exitFailed || !strings.Contains(stderr, "another wal-helper is running") {
		t.Errorf("second helper: exit %d, %q; want 1, another is running", code, stderr)
	}
	if code := rig.stop(); code != exitOK {
		t.Fatalf("helper stopped with exit %d:\n%s", code, rig.log.String())
	}
	if _, err := os.Stat(handoff.SocketPath); !os.IsNotExist(err) {
		t.Fatalf("socket after the helper stopped: %v, want it removed", err)
	}
	if a, ok := rig.ask(handoff.Environ(os.Environ()), "wal-push", "pg_wal/"+rig.segment); ok || a.Message != "" {
		t.Fatalf("call after the helper stopped: ok=%v %q; want a silent fallback", ok, a.Message)
	}
}

// TestWALHelperKeepsTheRepositoryOpen: calls with the same settings share
// one backend, which their sessions' Close leaves open.
func TestWALHelperKeepsTheRepositoryOpen(t *testing.T) {
	h := &walHelper{ctx: context.Background(), log: newLogger(io.Discard, Config{}), backends: map[keptKey]storage.Backend{}}
	cfg := Config{Repo: "file://" + t.TempDir()}
	b1, err := h.backend(cfg, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b1.Close()
	b2, _ := h.backend(cfg, time.Minute)
	if b1.(keptBackend).Backend != b2.(keptBackend).Backend {
		t.Fatal("the same settings opened a second backend")
	}
	if err := b2.List(context.Background(), "", func(storage.ObjectInfo) error { return nil }); err != nil {
		t.Fatalf("kept backend after Close: %v", err)
	}
	b3, _ := h.backend(Config{Repo: "file://" + t.TempDir()}, time.Minute)
	if b3.(keptBackend).Backend == b2.(keptBackend).Backend || len(h.backends) != 2 {
		t.Fatalf("other settings: %d backends kept, want 2", len(h.backends))
	}
}

// TestWALHelperCallsLogTheirRetries: the storage retries of a handed-off
// call are in that call's output (PostgreSQL's log), not the helper's,
// though the helper keeps the backend open across calls: two calls to an
// S3 endpoint that refuses connections each report their own retries.
func TestWALHelperCallsLogTheirRetries(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "walvault-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "walvault-test")
	rig := startHelperRig(t)
	env := handoff.Environ(os.Environ())
	args := []string{"wal-fetch", "--repo", "s3://walvault-test/p", "--s3-endpoint", "http://127.0.0.1:1", "--s3-allow-http",
		"--s3-region", "us-east-1", "--log-level", "debug", "--timeout", "1s", rig.segment, "pg_wal/RECOVERYXLOG"}
	for i := range 2 {
		a, ok := rig.ask(env, args...)
		if !ok || a.Code == exitOK || !strings.Contains(a.Message, "storage call failed, retrying") {
			t.Fatalf("call %d to a refusing endpoint: ran=%v exit %d; want it run, failed, its retries in its output:\n%s", i+1, ok, a.Code, a.Message)
		}
	}
	if log := rig.log.String(); strings.Contains(log, "retrying") {
		t.Fatalf("the helper's own log has the calls' retries:\n%s", log)
	}
}

// TestWALHelperStopsWhenItsSocketIsTaken: a caller that gave up on a
// silent helper removes its socket, and a new helper may listen there
// since; the old one, running again, stops (exit 0) and leaves the new
// socket in place.
func TestWALHelperStopsWhenItsSocketIsTaken(t *testing.T) {
	saved := socketCheckInterval
	socketCheckInterval = 50 * time.Millisecond
	t.Cleanup(func() { socketCheckInterval = saved })
	rig := startHelperRig(t)
	if err := os.Remove(handoff.SocketPath); err != nil {
		t.Fatal(err)
	}
	next, err := net.Listen("unix", handoff.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	select {
	case <-rig.exited:
		if rig.code != exitOK {
			t.Fatalf("helper whose socket was taken exited with %d, want 0:\n%s", rig.code, rig.log.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the helper runs 5s after its socket was taken:\n%s", rig.log.String())
	}
	if _, err := os.Stat(handoff.SocketPath); err != nil {
		t.Fatalf("the new helper's socket after the old one stopped: %v; want it kept", err)
	}
}

// TestWALHelperIdleExit: with --idle-exit, the helper stops once no call
// came for that long, and at once when the data directory is gone; its
// socket goes with it, and a call then runs in its own process silently.
func TestWALHelperIdleExit(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		rig := startHelperRig(t, "--idle-exit", "400ms")
		env := handoff.Environ(os.Environ())
		// Calls every 200ms keep it running past its idle time (each
		// would fall back silently, ok false, were it gone).
		for range 5 {
			if a, ok := rig.ask(env, "wal-push", "pg_wal/"+rig.segment); !ok || a.Code != exitOK {
				t.Fatalf("call to a helper with idle time left: ran=%v exit %d %q\n%s", ok, a.Code, a.Message, rig.log.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
		select {
		case <-rig.exited:
			if rig.code != exitOK {
				t.Fatalf("idle helper exited with %d, want 0:\n%s", rig.code, rig.log.String())
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("the helper runs 3s after its last call, with --idle-exit 400ms:\n%s", rig.log.String())
		}
		if _, err := os.Stat(handoff.SocketPath); !os.IsNotExist(err) {
			t.Fatalf("socket after the idle helper stopped: %v, want it removed", err)
		}
		if a, ok := rig.ask(handoff.Environ(os.Environ()), "wal-push", "pg_wal/"+rig.segment); ok || a.Message != "" {
			t.Fatalf("call after the idle helper stopped: ok=%v %q; want a silent fallback", ok, a.Message)
		}
	})
	t.Run("declining", func(t *testing.T) {
		// A helper whose environment no longer matches the server's
		// declines every call; those do not keep it running, so with
		// helper auto the next call after it stops starts a new one.
		rig := startHelperRig(t, "--idle-exit", "400ms")
		other := append(handoff.Environ(os.Environ()), "AWS_PROFILE=rotated")
		deadline := time.After(3 * time.Second)
		for {
			select {
			case <-rig.exited:
				if rig.code != exitOK {
					t.Fatalf("idle helper exited with %d, want 0:\n%s", rig.code, rig.log.String())
				}
				return
			case <-deadline:
				t.Fatalf("the helper runs 3s after its start, declining a call every 100ms, with --idle-exit 400ms:\n%s", rig.log.String())
			case <-time.After(100 * time.Millisecond):
				rig.ask(other, "wal-push", "pg_wal/"+rig.segment)
			}
		}
	})
	t.Run("data directory gone", func(t *testing.T) {
		rig := startHelperRig(t, "--idle-exit", "1h")
		if err := os.Remove(filepath.Join(rig.dir, "PG_VERSION")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-rig.exited:
			if rig.code != exitOK || !strings.Contains(rig.log.String(), "data directory is gone") {
				t.Fatalf("exit %d, want 0, saying the data directory is gone:\n%s", rig.code, rig.log.String())
			}
		case <-time.After(45 * time.Second):
			t.Fatalf("the helper runs 45s after its data directory lost PG_VERSION:\n%s", rig.log.String())
		}
	})
}

// TestHelperAppHasTheHandedOffCommands: the app a wal-helper builds for
// each call has exactly the commands that are handed to it, so a call it
// may run finds its command, and one it may not is left to its caller.
func TestHelperAppHasTheHandedOffCommands(t *testing.T) {
	helper := helperApp(io.Discard, io.Discard)
	for _, cmd := range newApp(io.Discard, io.Discard).Commands {
		if got, want := helper.Command(cmd.Name) != nil, handoff.Handles(cmd.Name); got != want {
			t.Errorf("%s: in the helper's app %v, handed off %v", cmd.Name, got, want)
		}
	}
	for _, cmd := range helper.Commands {
		if !handoff.Handles(cmd.Name) {
			t.Errorf("the helper's app has %s, which is not handed off", cmd.Name)
		}
	}
}

// TestWALHelperRefusesAnotherUsersDataDir: a helper of another user than
// the data directory's owner (root, by mistake) is refused at start:
// PostgreSQL's calls could not reach it, and it would leave pg_wal/walvault
// to its own user.
func TestWALHelperRefusesAnotherUsersDataDir(t *testing.T) {
	dir := "/" // root's: another user's whenever the test is not root
	if os.Geteuid() == 0 {
		dir = t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("WALVAULT_REPO", "file://"+t.TempDir())
	code, _, stderr := runCmd(t, "wal-helper", dir)
	if code != exitUsage || !strings.Contains(stderr, "run it as that user") {
		t.Fatalf("wal-helper on another user's data directory: exit %d, %q; want %d, run it as that user", code, stderr, exitUsage)
	}
	if _, err := os.Stat(filepath.Join(dir, "pg_wal")); !os.IsNotExist(err) {
		t.Errorf("%s/pg_wal after the refusal: %v, want nothing created", dir, err)
	}
}

// TestKeepAlive: while a call waits its turn and runs, the helper sends
// the caller a keepalive every interval, and nothing once stopped, so the
// answer that follows is never interleaved with one.
func TestKeepAlive(t *testing.T) {
	var out testenv.SyncBuffer
	stop := keepAlive(&out, 20*time.Millisecond)
	time.Sleep(150 * time.Millisecond)
	stop()
	stop() // twice is fine: every path of serve stops it
	got := out.String()
	if n := strings.Count(got, handoff.Keepalive); n < 3 || strings.ReplaceAll(got, handoff.Keepalive, "") != "" {
		t.Fatalf("keepalives written in 150ms at 20ms: %q; want several, and nothing else", got)
	}
	time.Sleep(100 * time.Millisecond)
	if after := out.String(); after != got {
		t.Errorf("written after stop: %q", after[len(got):])
	}
}

// TestLoggedArgsWithholdSecrets: the helper's per-call log line shows no
// age secret key and no URL password, as walvault's own messages show
// none (explore22c F8); everything else is as given.
func TestLoggedArgsWithholdSecrets(t *testing.T) {
	got := loggedArgs([]string{"wal-fetch", "--decrypt-with", "AGE-SECRET-KEY-1QQQQSECRET", "--s3-endpoint=https://AKIAKEY:s3cretPW@s3.example.test:9000", "000000010000000000000003", "pg_wal/RECOVERYXLOG"})
	line := strings.Join(got, " ")
	for _, secret := range []string{"SECRET-KEY-1QQQQSECRET", "AKIAKEY", "s3cretPW"} {
		if strings.Contains(line, secret) {
			t.Errorf("logged args %q show %s", line, secret)
		}
	}
	want := "wal-fetch --decrypt-with [an age secret key, not shown] --s3-endpoint=https://[not shown]@s3.example.test:9000 000000010000000000000003 pg_wal/RECOVERYXLOG"
	if line != want {
		t.Errorf("logged args %q, want %q", line, want)
	}
	// A URL that does not parse: a '%' not followed by two hex digits in
	// the password (explore22f F3).
	if got := strings.Join(loggedArgs([]string{"--repo=s3://AKIAKEY:Pw%zzSECRET@bucket/db1"}), " "); got != "--repo=s3://[not shown]@bucket/db1" {
		t.Errorf("logged args %q, want the user and password withheld", got)
	}
}
