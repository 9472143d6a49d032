package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// portFree reports whether 127.0.0.1:port can be listened on.
func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func TestPostgresArchiveSwitchPgbenchStop(t *testing.T) {
	t.Parallel()
	archive := UserDir(t)
	h := StartPostgres(t, PostgresOptions{
		ArchiveCommand: fmt.Sprintf("test ! -f %[1]s/%%f && cp %%p %[1]s/%%f", archive),
	})
	if got := h.SQL(t, "SHOW port"); got != strconv.Itoa(h.Port()) {
		t.Fatalf("SHOW port = %q, harness says %d", got, h.Port())
	}
	if got := h.SQL(t, "SHOW data_checksums"); got != "on" {
		t.Errorf("data_checksums = %q, want on", got)
	}
	if got := h.SQL(t, "SHOW archive_mode"); got != "on" {
		t.Errorf("archive_mode = %q, want on", got)
	}

	h.SQL(t, "CREATE TABLE t (id int PRIMARY KEY, v text);\n"+
		"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 10000) g;")
	seg := h.SwitchWAL(t)
	// Nothing written in between: SwitchWAL must still complete a new segment.
	seg2 := h.SwitchWAL(t)
	if seg2 <= seg {
		t.Fatalf("second SwitchWAL on an idle server returned %s after %s", seg2, seg)
	}
	h.WaitArchived(t, seg2, 30*time.Second)
	if ok, err := h.Archived(seg); !ok || err != nil {
		t.Fatalf("Archived(%s) = %v, %v after %s was archived", seg, ok, err, seg2)
	}

	for _, name := range []string{seg, seg2} {
		path := filepath.Join(archive, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("archived segment: %v", err)
		}
		if fi.Size() != h.WalSegSize || h.WalSegSize != 16<<20 {
			t.Fatalf("%s is %d bytes, want %d (16 MiB)", name, fi.Size(), h.WalSegSize)
		}
		// A switched segment reads cleanly to its last record, XLOG SWITCH,
		// preceded by SwitchWAL's logical message.
		stdout, stderr, err := h.Run(t, "pg_waldump", path)
		if err != nil {
			t.Fatalf("pg_waldump %s: %v\n%s", name, err, stderr)
		}
		last := tail(stdout, 2)
		if !strings.Contains(last, "walvault-testenv") || !strings.HasSuffix(strings.TrimSpace(last), "desc: SWITCH") {
			t.Fatalf("pg_waldump %s does not end in SwitchWAL's message and XLOG SWITCH; stderr: %s\nstdout tail: %s", name, stderr, last)
		}
	}

	h.Pgbench(t, "-i", "-s", "1", "-q")
	out := h.Pgbench(t, "-T", "3", "-c", "2")
	if !strings.Contains(out, "tps") {
		t.Fatalf("pgbench output has no tps line:\n%s", out)
	}
	if n := h.SQL(t, "SELECT count(*) FROM pgbench_accounts"); n != "100000" {
		t.Fatalf("pgbench_accounts has %s rows", n)
	}

	// Clean stop frees the port; Start brings the same cluster back.
	port := h.Port()
	h.Stop(t)
	if h.IsRunning() {
		t.Fatalf("server still running after Stop")
	}
	if !portFree(port) {
		t.Fatalf("port %d still taken after Stop", port)
	}
	// Someone takes the port while the server is down: Start moves it.
	taken, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	h.Start(t)
	if h.Port() == port {
		t.Fatalf("Start kept port %d although it was taken", port)
	}
	if !strings.Contains(h.LogTail(20), "could not bind") {
		t.Errorf("no bind failure in the log:\n%s", h.LogTail(20))
	}
	if n := h.SQL(t, "SELECT count(*) FROM t"); n != "10000" {
		t.Fatalf("after restart t has %s rows", n)
	}
	// A crash-like stop and crash recovery.
	h.SQL(t, "INSERT INTO t VALUES (10001, 'after restart')")
	h.StopImmediate(t)
	h.Start(t)
	if n := h.SQL(t, "SELECT count(*) FROM t"); n != "10001" {
		t.Fatalf("after crash recovery t has %s rows", n)
	}
	if !strings.Contains(h.LogTail(50), "database system was interrupted") {
		t.Errorf("log tail shows no crash recovery:\n%s", h.LogTail(50))
	}
}

func TestPostgresTwoAtOnce(t *testing.T) {
	t.Parallel()
	var a, b *Postgres
	a = StartPostgres(t, PostgresOptions{Conf: map[string]string{"cluster_name": "it's a"}})
	b = StartPostgres(t, PostgresOptions{WalSegSizeMB: 1, Env: []string{"WALVAULT_TESTENV_MARK=b"}})
	if a.Port() == b.Port() || a.DataDir == b.DataDir || a.SocketDir == b.SocketDir {
		t.Fatalf("servers share port/data/socket: %d %d %s %s", a.Port(), b.Port(), a.DataDir, b.DataDir)
	}
	a.SQL(t, "CREATE TABLE only_in_a (x int)")
	if got := b.SQL(t, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'"); got != "0" {
		t.Fatalf("b sees a's table: %s", got)
	}
	if got := a.SQL(t, "SHOW cluster_name"); got != "it's a" {
		t.Errorf("Conf setting: cluster_name = %q", got)
	}
	if got := b.SQL(t, "SHOW wal_segment_size"); got != "1MB" || b.WalSegSize != 1<<20 {
		t.Errorf("b wal_segment_size = %q, WalSegSize = %d; want 1MB", got, b.WalSegSize)
	}
	// Both answer at the same time, from several goroutines.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 4; i++ {
		for _, h := range []*Postgres{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := h.query("SHOW port")
				if err == nil && got != strconv.Itoa(h.Port()) {
					err = fmt.Errorf("SHOW port = %s, want %d", got, h.Port())
				}
				if err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Opts.Env reaches programs run for the server, and they run as the server user.
	out, _, err := b.Run(t, "sh", "-c", "echo $WALVAULT_TESTENV_MARK $(id -u) $PGPORT")
	if err != nil {
		t.Fatal(err)
	}
	u := mustServerUser(t)
	if want := fmt.Sprintf("b %d %d", u.uid, b.Port()); strings.TrimSpace(out) != want {
		t.Errorf("Run environment/user: got %q, want %q", strings.TrimSpace(out), want)
	}
	// The postmaster itself runs as the server user.
	pid := strings.TrimSpace(a.SQL(t, "SELECT pg_backend_pid()"))
	st, err := os.Stat("/proc/" + pid)
	if err == nil && st.Sys().(*syscall.Stat_t).Uid != u.uid {
		t.Errorf("backend %s runs as uid %d, want %d", pid, st.Sys().(*syscall.Stat_t).Uid, u.uid)
	}
	// ConnString's TCP endpoint answers (psql over TCP instead of the socket).
	out, stderr, err := a.Run(t, "psql", "-XAtq", "-d", a.ConnString(), "-c", "SELECT 1")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("psql over TCP with %q: %q %v %s", a.ConnString(), out, err, stderr)
	}
}

func TestPostgresUserDir(t *testing.T) {
	t.Parallel()
	u := mustServerUser(t)
	dir := UserDir(t)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != u.uid {
		t.Errorf("UserDir owner uid %d, want %d (%s)", uid, u.uid, u.name)
	}
	// The server user can write there.
	cmd := ServerCommand(t, "sh", "-c", `echo hi > "$1"/f && mkdir "$1"/d && chmod 000 "$1"/d`, "sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("server user writing into UserDir: %v %s", err, out)
	}
	// A root-made file can be handed over.
	own := filepath.Join(dir, "mine")
	if err := os.WriteFile(own, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ChownToServerUser(t, own)
	if fi, err := os.Stat(own); err != nil || fi.Sys().(*syscall.Stat_t).Uid != u.uid {
		t.Errorf("ChownToServerUser: %v", err)
	}
	// Removal at cleanup copes with files of any owner and mode (checked by
	// the cleanup itself failing the test otherwise).
}

func TestPostgresFreePortDistinct(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 20; i++ {
		p := FreePort(t)
		if seen[p] || p <= 0 {
			t.Fatalf("FreePort returned %d twice or invalid", p)
		}
		seen[p] = true
	}
}

// fatalTB records a Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// expectFatal runs fn with a fake TB and returns the Fatal message.
func expectFatal(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	if f.msg == "" {
		t.Fatalf("expected a Fatal, got none")
	}
	return f.msg
}

func TestPostgresFailuresAreLoud(t *testing.T) {
	// Not parallel: t.Setenv.
	// Missing PostgreSQL binaries fail, with install instructions.
	t.Setenv("WALVAULT_PG_BIN", t.TempDir())
	msg := expectFatal(t, func(tb testing.TB) { PGBinDir(tb) })
	if !strings.Contains(msg, "apt-get install -y postgresql-15") {
		t.Errorf("PGBinDir message lacks install hint: %s", msg)
	}

	// So do missing server programs of another major, naming the script
	// that installs them.
	t.Setenv("WALVAULT_PG17_BIN", t.TempDir())
	msg = expectFatal(t, func(tb testing.TB) { ServerBinDir(tb, 17) })
	for _, want := range []string{"PostgreSQL 17", "./scripts/install-deps.sh", "WALVAULT_PG17_BIN"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ServerBinDir(17) message lacks %q: %s", want, msg)
		}
	}
	// A directory holding another major's programs is refused too.
	t.Setenv("WALVAULT_PG17_BIN", ServerBinDir(t, 18))
	msg = expectFatal(t, func(tb testing.TB) { ServerBinDir(tb, 17) })
	if !strings.Contains(msg, "want PostgreSQL 17") {
		t.Errorf("ServerBinDir(17) on PostgreSQL 18's programs: %s", msg)
	}
	t.Setenv("WALVAULT_PG17_BIN", "")

	// A WALVAULT_BIN the server user cannot run is refused up front.
	bin := filepath.Join(t.TempDir(), "walvault") // t.TempDir is 0700: out of the server user's reach when root
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		bin += "-missing"
	}
	t.Setenv("WALVAULT_BIN", bin)
	msg = expectFatal(t, func(tb testing.TB) { BuildWalvault(tb) })
	if !strings.Contains(msg, "WALVAULT_BIN") {
		t.Errorf("BuildWalvault with a bad WALVAULT_BIN: %s", msg)
	}
}

// TestEveryMajor starts a server of each supported major with its own
// server programs and drives it with PostgreSQL 15's client tools.
func TestEveryMajor(t *testing.T) {
	t.Parallel()
	for _, major := range Majors() {
		t.Run(strconv.Itoa(major), func(t *testing.T) {
			t.Parallel()
			h := StartPostgres(t, PostgresOptions{Major: major})
			if got := h.SQL(t, "SELECT current_setting('server_version_num')::int / 10000"); got != strconv.Itoa(major) || h.Major != major {
				t.Fatalf("server reports major %s (harness says %d), want %d", got, h.Major, major)
			}
			if got := h.SQL(t, "SHOW data_checksums"); got != "on" {
				t.Errorf("data_checksums = %q, want on", got)
			}
			if !strings.HasPrefix(h.BinDir, ServerBinDir(t, major)) || h.ClientBinDir != PGBinDir(t) {
				t.Errorf("BinDir %s, ClientBinDir %s", h.BinDir, h.ClientBinDir)
			}
			// A stopped cluster started again from its directory: the
			// major follows from PG_VERSION.
			h.Stop(t)
			again := StartPostgres(t, PostgresOptions{DataDir: h.DataDir})
			if again.Major != major || again.BinDir != h.BinDir {
				t.Fatalf("restarted from DataDir: major %d in %s, want %d in %s", again.Major, again.BinDir, major, h.BinDir)
			}
			again.Stop(t)
			other := 16
			if major == 16 {
				other = 17
			}
			msg := expectFatal(t, func(tb testing.TB) { StartPostgres(tb, PostgresOptions{DataDir: h.DataDir, Major: other}) })
			if !strings.Contains(msg, fmt.Sprintf("is a PostgreSQL %d cluster", major)) {
				t.Errorf("starting a PostgreSQL %d cluster with another major: %s", major, msg)
			}
		})
	}
}

func TestPostgresErrorsAndArchiveFailure(t *testing.T) {
	t.Parallel()
	h := StartPostgres(t, PostgresOptions{ArchiveCommand: "echo walvault-testenv-refuses %f >&2; exit 1"})
	msg := expectFatal(t, func(tb testing.TB) { h.SQL(tb, "SELECT * FROM no_such_table") })
	if !strings.Contains(msg, "no_such_table") || !strings.Contains(msg, "ERROR") {
		t.Errorf("SQL error message lacks psql's stderr: %s", msg)
	}
	seg := h.SwitchWAL(t)
	msg = expectFatal(t, func(tb testing.TB) { h.WaitArchived(tb, seg, 2*time.Second) })
	for _, want := range []string{"not archived", "failed_count=", "last_failed_wal=" + seg, "walvault-testenv-refuses"} {
		if !strings.Contains(msg, want) {
			t.Errorf("WaitArchived timeout message lacks %q:\n%s", want, msg)
		}
	}
	msg = expectFatal(t, func(tb testing.TB) { h.Start(tb) })
	if !strings.Contains(msg, "already running") {
		t.Errorf("Start on a running server: %s", msg)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
