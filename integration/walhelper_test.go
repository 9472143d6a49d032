package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/peercred"
	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// TestWALHelper: with `walvault wal-helper DATADIR` running beside
// PostgreSQL, archive_command's wal-push calls are run by the helper
// (their output still in the archiver's stderr), a wal-fetch in the data
// directory too, a backlog drains through its pushes ahead, a caller of
// another user runs the command itself; once the helper stops, archiving
// goes on in each call's own process, and the archive is whole
// throughout.
func TestWALHelper(t *testing.T) {
	r := s3Repo(t)
	bin := testenv.BuildWalvault(t)
	pg, pushLog, copies := helperServer(t, bin, r.env)
	helper := startHelperFor(t, pg, bin)
	helperLog := helper.log

	pg.Pgbench(t, "-i", "-s", "1", "-q")
	var viaHelper []string
	for range 3 {
		viaHelper = append(viaHelper, pg.SwitchWAL(t))
	}
	pg.WaitArchived(t, viaHelper[len(viaHelper)-1], 60*time.Second)
	for _, name := range viaHelper {
		if !helper.logged(`[wal-push pg_wal/` + name + `]" exit=0`) {
			t.Errorf("%s was not archived by the helper; its log:\n%s", name, helperLog.String())
		}
	}
	if pushed := string(readFile(t, pushLog)); !strings.Contains(pushed, "segment="+viaHelper[0]) {
		t.Errorf("the archiver's stderr lacks the helper's report for %s:\n%s", viaHelper[0], pushed)
	}

	// A backlog: the helper's pushes ahead go on after each call, and
	// PostgreSQL's calls for those files are skipped on their records.
	names, _ := backlog(t, pg, 8)
	resumeArchiving(t, pg, names[len(names)-1], 60*time.Second)
	pushed := string(readFile(t, pushLog))
	if !helper.logged(`msg="pushed ahead"`) || !strings.Contains(pushed, "pushed ahead by an earlier wal-push") {
		t.Errorf("a backlog through the helper: nothing pushed ahead, or no call skipped; helper:\n%s\narchiver:\n%s", helperLog.String(), pushed)
	}

	// check sees the helper and that the postmaster's calls go to it.
	lines, _ := checkJSON(t, r.env, "--pg-conn", pg.ConnString())
	if l, ok := checkByName(lines)["wal-helper"]; !ok || !l.OK || !strings.Contains(l.Detail, "calls are handed to it") {
		t.Errorf("check's wal-helper line: %+v (present: %v), want OK, calls handed to it", l, ok)
	}

	// wal-fetch as PostgreSQL would start it, in the data directory. The
	// build under test (cgo, glibc) hands the call over from an ELF
	// constructor, before the Go runtime starts: with inittrace on, the
	// runtime would print a line for each package it initialised.
	dest := filepath.Join(testenv.UserDir(t), "fetched")
	fetch := pg.Command(t, bin, "wal-fetch", viaHelper[0], dest)
	fetch.Dir = pg.DataDir
	fetch.Env = append(fetch.Env, "GODEBUG=inittrace=1")
	out, err := fetch.CombinedOutput()
	if err != nil {
		t.Fatalf("wal-fetch through the helper: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("init internal/")) {
		t.Errorf("the handed-off wal-fetch started the Go runtime, so it was not handed over before it (walvault must be built with cgo: a C compiler on PATH, CGO_ENABLED unset or 1):\n%s", out)
	}
	if !bytes.Equal(readFile(t, dest), readFile(t, filepath.Join(copies, viaHelper[0]))) {
		t.Fatalf("%s fetched through the helper differs from what PostgreSQL archived", viaHelper[0])
	}
	if n := strings.Count(helperLog.String(), "[wal-fetch "+viaHelper[0]); n != 1 {
		t.Fatalf("the helper ran %d wal-fetch of %s, want 1:\n%s", n, viaHelper[0], helperLog.String())
	}

	// This test's user (root) is not the server's: the caller does not
	// trust a helper of another user, and runs the command itself.
	rootDest := filepath.Join(t.TempDir(), "fetched")
	cmd := exec.Command(bin, "wal-fetch", viaHelper[1], rootDest)
	cmd.Dir = pg.DataDir
	cmd.Env = append(append(cleanEnv(), "WALVAULT_PREFETCH=0"), r.env...)
	out, err = cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "wal-helper") {
		t.Fatalf("wal-fetch by another user: %v\n%s\nwant it fetched in its own process, without a word of the helper", err, out)
	}
	if !bytes.Equal(readFile(t, rootDest), readFile(t, filepath.Join(copies, viaHelper[1]))) {
		t.Fatalf("%s fetched by another user differs from what PostgreSQL archived", viaHelper[1])
	}
	if strings.Contains(helperLog.String(), "[wal-fetch "+viaHelper[1]) {
		t.Fatalf("the helper ran another user's call:\n%s", helperLog.String())
	}

	if err := helper.stop(t); err != nil {
		t.Fatalf("wal-helper after SIGTERM: %v\n%s", err, helperLog.String())
	}
	if _, err := os.Stat(filepath.Join(pg.DataDir, "pg_wal", "walvault", "helper.sock")); !os.IsNotExist(err) {
		t.Fatalf("helper socket after the helper stopped: %v, want it removed", err)
	}
	calls := strings.Count(helperLog.String(), "wal-helper: ran")
	last := pg.SwitchWAL(t)
	pg.WaitArchived(t, last, 60*time.Second)
	if got := strings.Count(helperLog.String(), "wal-helper: ran"); got != calls {
		t.Fatalf("the stopped helper ran %d more calls", got-calls)
	}
	pushed = string(readFile(t, pushLog))
	if !strings.Contains(pushed, "segment="+last) || strings.Contains(pushed, "level=WARN") || strings.Contains(pushed, "level=ERROR") {
		t.Fatalf("archiving %s without the helper, the archiver's stderr:\n%s", last, pushed)
	}
	entries := fetchEveryArchivedFile(t, r, copies)
	t.Logf("%d files archived, %d of them by the helper", len(entries), strings.Count(helperLog.String(), "[wal-push "))
}

// helperServer starts PostgreSQL 15 with env whose archive_command is
// wal-push, its stderr appended to pushLog and each archived file copied
// into copies, the ground truth for fetching back.
func helperServer(t *testing.T, bin string, env []string) (pg *testenv.Postgres, pushLog, copies string) {
	t.Helper()
	pushLog = filepath.Join(testenv.UserDir(t), "walpush.log")
	copies = filepath.Join(testenv.UserDir(t), "copies")
	if err := os.Mkdir(copies, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, copies)
	pg = testenv.StartPostgres(t, testenv.PostgresOptions{
		ArchiveCommand: bin + " wal-push %p 2>>" + pushLog + " && cp %p " + copies + "/%f",
		Env:            env,
	})
	return pg, pushLog, copies
}

// helperProc is a wal-helper run for a server's data directory as the
// server's user, with the server's environment, as the systemd unit runs
// it.
type helperProc struct {
	cmd    *exec.Cmd
	log    *testenv.SyncBuffer
	exited chan error
}

// startHelperFor starts the helper of pg's data directory as its server
// does and waits until it listens; it is killed at the test's end if
// still running.
func startHelperFor(t *testing.T, pg *testenv.Postgres, bin string) *helperProc {
	t.Helper()
	return startHelper(t, pg.Command(t, bin, "wal-helper", pg.DataDir))
}

// startHelper starts cmd, a wal-helper, and waits until it listens.
func startHelper(t *testing.T, cmd *exec.Cmd) *helperProc {
	t.Helper()
	h := &helperProc{cmd: cmd, log: &testenv.SyncBuffer{}, exited: make(chan error, 1)}
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.exited <- h.cmd.Wait() }()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.exited
	})
	waitFor(t, 10*time.Second, "the helper to listen", func() bool { return strings.Contains(h.log.String(), "wal-helper listening") })
	return h
}

// logged reports whether the helper's log shows line within a few seconds.
// The helper writes a call's line before it answers, but its output
// reaches the test through a pipe that exec copies in a goroutine of this
// process, after the caller may already have returned.
func (h *helperProc) logged(line string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(h.log.String(), line) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// stop sends SIGTERM and returns how the helper exited.
func (h *helperProc) stop(t *testing.T) error {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.exited:
		h.exited <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("wal-helper still running 30s after SIGTERM:\n%s", h.log.String())
		return nil
	}
}

// kill kills the helper (SIGKILL) and waits for it.
func (h *helperProc) kill(t *testing.T) {
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.exited <- <-h.exited
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// TestWALHelperKilledMidCall: a helper killed (SIGKILL) while it runs
// archive_command's push, its storage stalled, gives no answer; the call
// then pushes in its own process, and the segment is archived as
// PostgreSQL wrote it. A helper started again takes over the socket the
// killed one left.
func TestWALHelperKilledMidCall(t *testing.T) {
	gw := testenv.StartVersity(t)
	r := s3RepoOn(t, gw)
	proxy := testenv.StartFaultProxy(t, gw.Endpoint)
	env := append(gw.EnvThrough(proxy.Endpoint()), "WALVAULT_REPO="+r.url, "WALVAULT_TIMEOUT=60s")
	bin := testenv.BuildWalvault(t)
	pg, pushLog, copies := helperServer(t, bin, env)
	first := pg.SwitchWAL(t)
	pg.WaitArchived(t, first, 60*time.Second) // walvault.json exists: the next push is a plain upload

	helper := startHelperFor(t, pg, bin)
	proxy.Stall(t)
	last := pg.SwitchWAL(t)
	// The archiver's call is in the helper, its upload stalled.
	time.Sleep(2 * time.Second)
	helper.kill(t)
	proxy.Heal(t)
	pg.WaitArchived(t, last, 90*time.Second)
	pushed := string(readFile(t, pushLog))
	if !strings.Contains(pushed, "wal-helper stopped before answering; running the command in this process") {
		t.Fatalf("the archiver's stderr does not show the call falling back:\n%s", pushed)
	}
	fetchEveryArchivedFile(t, r, copies)
	lines, _ := checkJSON(t, env, "--pg-conn", pg.ConnString())
	if l := checkByName(lines)["wal-helper"]; !l.OK || !strings.Contains(l.Detail, "left by a helper that stopped") {
		t.Errorf("check's wal-helper line after the kill: %+v, want the left socket reported", l)
	}

	// The killed helper's socket is taken over by the next one.
	log := startHelperFor(t, pg, bin).log
	next := pg.SwitchWAL(t)
	pg.WaitArchived(t, next, 60*time.Second)
	if !strings.Contains(log.String(), "[wal-push pg_wal/"+next+`]" exit=0`) {
		t.Fatalf("the restarted helper did not archive %s:\n%s", next, log.String())
	}
}

// TestWALHelperUpgrade: a helper serves calls from the binary it runs
// only. A call from another installation is declined (it runs in its own
// process) and the helper goes on; once a new version is installed under
// the name the helper was started as, whether as a new file renamed over
// the old one (package managers, `go install`) or by switching a symlink
// to another version's file, the next call runs the new binary in its own
// process and the helper stops, for its supervisor to start the new one.
func TestWALHelperUpgrade(t *testing.T) {
	bin := testenv.BuildWalvault(t)
	// copyBin puts a copy of the binary at path, as an installer does: a
	// new file renamed over whatever was there.
	copyBin := func(t *testing.T, path string) {
		t.Helper()
		tmp := path + ".new"
		if err := os.WriteFile(tmp, readFile(t, bin), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	link := func(t *testing.T, target, path string) {
		t.Helper()
		tmp := path + ".new"
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("new file", func(t *testing.T) {
		installed := filepath.Join(t.TempDir(), "walvault")
		copyBin(t, installed)
		upgradeTest(t, installed, func() { copyBin(t, installed) }, func(dir string, call func(string, ...string) string) {
			other := filepath.Join(t.TempDir(), "walvault")
			copyBin(t, other)
			if out := call(other, "wal-fetch", "000000010000000000000003", "pg_wal/RECOVERYXLOG"); !strings.Contains(out, "wal-helper declined (the caller runs "+other) {
				t.Errorf("a call from another installation: %q; want it declined, naming the binaries", out)
			}
		})
	})
	t.Run("symlink switched", func(t *testing.T) {
		root := t.TempDir()
		for _, v := range []string{"v1", "v2"} {
			if err := os.Mkdir(filepath.Join(root, v), 0o755); err != nil {
				t.Fatal(err)
			}
			copyBin(t, filepath.Join(root, v, "walvault"))
		}
		installed := filepath.Join(root, "walvault")
		link(t, filepath.Join(root, "v1", "walvault"), installed)
		upgradeTest(t, installed, func() { link(t, filepath.Join(root, "v2", "walvault"), installed) }, nil)
	})
}

// upgradeTest runs a helper started as installed for a data directory
// holding one segment, pushes the segment through it, runs between (when
// set) with the helper still running, then upgrade, and checks that the
// next call is declined and run in its own process, that the helper stops
// and that calls after it run silently in their own processes.
func upgradeTest(t *testing.T, installed string, upgrade func(), between func(dir string, call func(string, ...string) string)) {
	dir, seg, data := helperDataDir(t)
	env := append(cleanEnv(), "WALVAULT_REPO=file://"+t.TempDir())
	call := func(binary string, args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", binary, args, err, out)
		}
		return string(out)
	}
	fetched := func() {
		t.Helper()
		if !bytes.Equal(readFile(t, filepath.Join(dir, "pg_wal", "RECOVERYXLOG")), data) {
			t.Fatal("wal-fetch did not bring back the segment")
		}
	}
	helperCmd := exec.Command(installed, "wal-helper", dir)
	helperCmd.Env = env
	helper := startHelper(t, helperCmd)

	call(installed, "wal-push", "pg_wal/"+seg.String())
	if !helper.logged("[wal-push pg_wal/" + seg.String() + "]\" exit=0") {
		t.Fatalf("the helper did not run the push of its own binary:\n%s", helper.log.String())
	}
	if between != nil {
		between(dir, call)
		fetched()
	}

	upgrade()
	select {
	case err := <-helper.exited:
		t.Fatalf("the helper stopped before a call came: %v", err)
	default:
	}
	if out := call(installed, "wal-fetch", seg.String(), "pg_wal/RECOVERYXLOG"); !strings.Contains(out, "wal-helper declined") {
		t.Errorf("the first call after the upgrade: %q; want it declined", out)
	}
	fetched()
	select {
	case err := <-helper.exited:
		helper.exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("the replaced helper exited with %v, want 0\n%s", err, helper.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the helper still runs 30s after its binary was replaced:\n%s", helper.log.String())
	}
	if !strings.Contains(helper.log.String(), "binary was replaced") {
		t.Errorf("the helper's log does not say why it stopped:\n%s", helper.log.String())
	}
	if out := call(installed, "wal-fetch", seg.String(), "pg_wal/RECOVERYXLOG"); strings.Contains(out, "wal-helper") {
		t.Errorf("a call after the helper stopped: %q; want it run in its own process without a word", out)
	}
	fetched()
}

// TestWALHelperAuto: with helper auto in PostgreSQL's environment, the
// first archive_command call, run in its own process, starts a wal-helper
// for the data directory, detached, and the calls after it are run by that
// helper; check sees PostgreSQL's calls handed to it, and the archive is
// whole.
func TestWALHelperAuto(t *testing.T) {
	r := s3Repo(t)
	bin := testenv.BuildWalvault(t)
	// debug: the helper then logs each call (at the default level a
	// started helper logs warnings only).
	env := append(append([]string{}, r.env...), "WALVAULT_HELPER=auto", "WALVAULT_LOG_LEVEL=debug")
	pg, pushLog, copies := helperServer(t, bin, env)
	sock := filepath.Join(pg.DataDir, "pg_wal", "walvault", "helper.sock")
	helperLog := filepath.Join(pg.DataDir, "pg_wal", "walvault", "helper.log")
	t.Cleanup(func() { killHelperAt(t, sock) })

	first := pg.SwitchWAL(t)
	pg.WaitArchived(t, first, 60*time.Second)
	if pushed := string(readFile(t, pushLog)); !strings.Contains(pushed, "started a wal-helper") {
		t.Fatalf("the first call did not start a helper; the archiver's stderr:\n%s", pushed)
	}
	waitFor(t, 10*time.Second, "the started helper to listen", func() bool {
		b, _ := os.ReadFile(helperLog)
		return strings.Contains(string(b), "wal-helper listening")
	})
	var later []string
	for range 2 {
		later = append(later, pg.SwitchWAL(t))
	}
	pg.WaitArchived(t, later[len(later)-1], 60*time.Second)
	log := string(readFile(t, helperLog))
	for _, name := range later {
		if !strings.Contains(log, `[wal-push pg_wal/`+name+`]" exit=0`) {
			t.Errorf("%s was not archived by the started helper; its log:\n%s", name, log)
		}
	}
	if n := strings.Count(string(readFile(t, pushLog)), "started a wal-helper"); n != 1 {
		t.Errorf("%d calls started a helper, want 1 (the others go to it)", n)
	}
	lines, _ := checkJSON(t, r.env, "--pg-conn", pg.ConnString())
	if l, ok := checkByName(lines)["wal-helper"]; !ok || !l.OK || !strings.Contains(l.Detail, "calls are handed to it") {
		t.Errorf("check's wal-helper line: %+v (present: %v), want OK, calls handed to it", l, ok)
	}
	fetchEveryArchivedFile(t, r, copies)
}

// killHelperAt kills the helper that answers on sock, if any: one started
// by a call is detached from the test's processes.
func killHelperAt(t *testing.T, sock string) {
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	_, pid, err := peercred.Of(conn.(*net.UnixConn))
	if err != nil || pid <= 0 {
		t.Errorf("cannot tell the pid of the helper on %s: %v", sock, err)
		return
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// helperDataDir is a directory a helper serves: PG_VERSION, and pg_wal
// holding one segment (data).
func helperDataDir(t *testing.T) (dir string, seg wal.Segment, data []byte) {
	t.Helper()
	dir = t.TempDir()
	seg = wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	data = waltest.Cluster{SystemID: 7300000000000000002, SegmentSize: wal.MinSegmentSize}.Segment(t, seg, 1)
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	waltest.WriteFile(t, filepath.Join(dir, "pg_wal"), seg.String(), data)
	return dir, seg, data
}

// TestWALHelperDeclineFollowsLogFormat: why a helper left a call to its
// caller is a line of the call's own log, in its format: under
// --log-format json, every line on stderr is a JSON object.
func TestWALHelperDeclineFollowsLogFormat(t *testing.T) {
	bin := testenv.BuildWalvault(t)
	dir, seg, _ := helperDataDir(t)
	env := append(cleanEnv(), "WALVAULT_REPO=file://"+t.TempDir())
	helperCmd := exec.Command(bin, "wal-helper", dir)
	helperCmd.Env = env
	startHelper(t, helperCmd)

	// The helper's environment lacks the format: it declines.
	cmd := exec.Command(bin, "wal-push", "pg_wal/"+seg.String())
	cmd.Dir, cmd.Env = dir, append(env, "WALVAULT_LOG_FORMAT=json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("wal-push: %v\n%s", err, stderr.String())
	}
	var declined bool
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var entry struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("a line of wal-push --log-format json is not JSON: %q (%v)", line, err)
		}
		declined = declined || entry.Level == "WARN" && strings.Contains(entry.Msg, "wal-helper declined (its environment differs in WALVAULT_LOG_FORMAT)")
	}
	if !declined {
		t.Fatalf("wal-push's log does not say the helper declined:\n%s", stderr.String())
	}
}

// TestWALHelperStopSignal: SIGTERM reaching a wal-fetch whose call waits
// on wal-helper cuts the call off and ends it as without a helper (exit
// 200, PostgreSQL stops recovery and names the failure), not by dying of
// the signal, which PostgreSQL takes for a shutdown: a standby would stop
// altogether (explore23b F2).
func TestWALHelperStopSignal(t *testing.T) {
	bin := testenv.BuildWalvault(t)
	env := silentS3Env(t) // the helper's fetch waits
	dir, seg, _ := helperDataDir(t)
	helperCmd := exec.Command(bin, "wal-helper", dir)
	helperCmd.Env = env
	helper := startHelper(t, helperCmd)

	cmd := exec.Command(bin, "wal-fetch", seg.String(), "pg_wal/RECOVERYXLOG")
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Handed off after 2 s, the fetch waits in the helper.
	err := signalWhileRunning(t, cmd, 2*time.Second, syscall.SIGTERM)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 200 {
		t.Fatalf("wal-fetch handed to a helper, after SIGTERM: %v; want exit 200 as without a helper\n%s", err, stderr.String())
	}
	waitFor(t, 10*time.Second, "the helper to cut the call off", func() bool { return helper.logged("call cut off") })
}
