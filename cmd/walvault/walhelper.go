package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/internal/handoff"
	"github.com/walvault/walvault/internal/osuser"
	"github.com/walvault/walvault/internal/peercred"
	"github.com/walvault/walvault/storage"
)

// helperKey is the App.Metadata entry of a command line a wal-helper runs:
// its *walHelper, whose backends the command's session reuses.
const helperKey = "walvault.helper"

// walHelperOptions are wal-helper's settings: only those every command
// reads (the repository's, which it opens at start to check them, and the
// log's).
type walHelperOptions struct {
	Config
	IdleExit time.Duration // stop after this long without a call (0: never)
}

func (o *walHelperOptions) precheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("wal-helper takes exactly one argument, the data directory")
	}
	return nil
}

func walHelperCommand() *cli.Command {
	var opts walHelperOptions
	return &cli.Command{
		Name:      "wal-helper",
		Usage:     "stay resident for one data directory, running its wal-push and wal-fetch calls without a process start each",
		ArgsUsage: "DATADIR",
		Description: `PostgreSQL starts a process for every archive_command and restore_command
call, and most of what a wal-push or wal-fetch of a 16 MiB segment costs
beyond the work itself is starting walvault: initialising the AWS SDK, the
Prometheus client and the rest, and a new connection to S3. wal-helper keeps
one walvault running for the data directory DATADIR, with its connections to
the repository open. It listens on DATADIR/pg_wal/walvault/helper.sock (a
Unix socket only its user may use); a wal-push or wal-fetch started in
DATADIR, as PostgreSQL starts them, finds the socket before initialising
anything else (before the Go runtime starts, in a build with cgo on glibc),
hands its command line over, and exits with the helper's exit code after
printing what the command printed. archive_command and restore_command stay
as they are.

The helper runs a command only when the caller's environment agrees with its
own on every variable the command reads: its settings' WALVAULT_* (see its
--help) and WALVAULT_CONFIG, every AWS_* variable, HOME (~/.aws),
SSL_CERT_FILE, SSL_CERT_DIR and the proxy variables (HTTP_PROXY,
HTTPS_PROXY, NO_PROXY, in either case). The command then resolves its flags,
environment and --config file exactly as it would in its own process (a
changed config file counts at the next call). Otherwise, and whenever the
helper is not running, stops, is cut off before its answer or sends
nothing for 30s (it sends a keepalive every 10s while a call runs), the caller
runs the command itself, as without a helper; the commands are idempotent,
so nothing is lost or done wrong. A declined call says why on stderr
(PostgreSQL's log), naming the variables that differ, never their values;
walvault check, on the database host, says whether PostgreSQL's calls go to
the helper. Calls from another walvault binary than the helper's are
declined too; when a new binary is installed over the helper's (an
upgrade), the helper stops at the next call, for its supervisor to start
the new one (the unit restarts it).

wal-push's pushes ahead (upload-concurrency) go on in the helper after the
call that started them returns, so a backlog drains as a steady pipeline:
PostgreSQL's call for a file still being pushed ahead waits for that push,
is answered from its record, and starts the next file.

Run it as the server's user, beside the server (contrib/systemd has a unit),
or let PostgreSQL's calls start it (helper auto: a call that finds no helper
starts one with --idle-exit 10m). Give it the server's environment and
archive_command's --config, if any: its
own settings are those every command reads (the repository, opened at start
as any command opens it, and the log's level and format). Each command's
messages, storage retries included, go to the caller (PostgreSQL's log);
the helper logs one line per call. Calls run one at a time, as PostgreSQL
makes them. SIGTERM or Ctrl-C stops it: calls still running are cut off and
their callers run them themselves.

Exit codes: 0 stopped by a signal, because its binary was replaced or because its socket was removed (a caller gave up on it),
1 failed, 2 bad arguments.`,
		Flags: settingFlags(&opts,
			&cli.DurationFlag{Name: "idle-exit", Usage: "stop after this long without a call it runs (declined ones do not count), or once DATADIR is no longer a data directory (0: run until stopped; helper auto starts helpers with 10m)", Destination: &opts.IdleExit},
		),
		Action: repoAction(&opts, func(c *cli.Context, opts *walHelperOptions, s *session) error {
			return runWALHelper(s.ctx, c.Args().First(), opts.IdleExit, s.log)
		}),
	}
}

// walHelper is a running wal-helper.
type walHelper struct {
	ctx    context.Context // the helper's life: cancelled, every call is cut off
	stop   func()          // ends it (its binary was replaced)
	binary string          // the absolute path it was started as ("": unknown)
	log    *slog.Logger
	env    map[string]string // handoff.Environ of the helper
	// pipeline carries wal-push's pushes ahead on after the call returns.
	pipeline *archive.Pipeline
	// whole has every command, for reading command lines only: urfave/cli
	// keeps state in an app it runs, so each call runs a new helperApp.
	whole *cli.App

	// calls runs one command line at a time: urfave/cli v2 parses flags
	// into package-level flags (help, version), so two in one process
	// would race; PostgreSQL calls archive_command and restore_command
	// one at a time anyway.
	calls sync.Mutex

	mu       sync.Mutex
	backends map[keptKey]storage.Backend

	busy atomic.Int64 // connections being served
	// socketTaken: the socket's path is no longer this helper's
	// (exitWhenSocketGone), so closing the listener must not unlink it.
	socketTaken atomic.Bool
	lastCall    atomic.Int64 // when the last one ended, in Unix nanoseconds
}

// exitWhenIdle stops the helper once no call came for idle (none in
// flight, none ended since), or once the data directory (the working
// directory) holds no PG_VERSION: a cluster removed, or a restore drill's
// scratch directory gone.
func (h *walHelper) exitWhenIdle(idle time.Duration) {
	h.lastCall.Store(time.Now().UnixNano())
	h.stopWhen(min(idle/4, 5*time.Second), func() bool {
		if _, err := os.Stat("PG_VERSION"); err != nil {
			h.log.Info("wal-helper: the data directory is gone; stopping", "err", err)
			return true
		}
		if h.busy.Load() == 0 && time.Since(time.Unix(0, h.lastCall.Load())) >= idle {
			h.log.Info("wal-helper: no call for a while; stopping", "idle", idle)
			return true
		}
		return false
	})
}

// stopWhen asks done every interval, and stops the helper once it says
// so; it returns when the helper ends.
func (h *walHelper) stopWhen(every time.Duration, done func() bool) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		}
		if done() {
			h.stop()
			return
		}
	}
}

// socketCheckInterval is how often a helper checks that its socket is
// still its own.
var socketCheckInterval = 5 * time.Second

// exitWhenSocketGone stops the helper once its socket is removed or
// another file takes its path: a caller gave up on it (it was stopped or
// stuck for the caller's silence limit) and removed it, or it was removed
// by hand. No call reaches it any more, so it leaves its place to the next
// helper (a supervisor's restart, or helper auto's next start), and must
// not unlink the path on its way out, which may be that helper's socket.
func (h *walHelper) exitWhenSocketGone(every time.Duration) {
	own, err := os.Stat(handoff.SocketPath)
	if err != nil {
		return
	}
	h.stopWhen(every, func() bool {
		if now, err := os.Stat(handoff.SocketPath); err == nil && os.SameFile(own, now) {
			return false
		}
		h.log.Warn("wal-helper: its socket was removed or replaced (a caller gave up waiting for it, or it was removed by hand); stopping", "socket", handoff.SocketPath)
		h.socketTaken.Store(true) // read where the listener is closed
		return true
	})
}

// maxKeptBackends bounds the repositories a helper keeps open: one config
// is the rule, a few while it changes.
const maxKeptBackends = 4

// keptKey identifies a backend by everything openBackend is given.
type keptKey struct {
	cfg     Config
	timeout time.Duration
}

func runWALHelper(ctx context.Context, dir string, idleExit time.Duration, log *slog.Logger) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// Before the chdir below: a relative path to the binary is the
	// starting directory's.
	binary := startedAs()
	// PostgreSQL's calls reach only a helper of their own user, and one of
	// another (root) would leave pg_wal/walvault to it.
	if fi, err := os.Stat(abs); err == nil {
		if owner, ok := osuser.Owner(fi); ok && owner != os.Geteuid() {
			return usageError{fmt.Errorf("wal-helper runs as user id %d, but %s belongs to user id %d, the server's: run it as that user (runuser -u postgres -- walvault wal-helper ...): PostgreSQL's calls reach only a helper of their own user", os.Geteuid(), abs, owner)}
		}
	}
	if _, err := os.Stat(filepath.Join(abs, "PG_VERSION")); err != nil {
		return usageError{fmt.Errorf("%s is not a PostgreSQL data directory (no PG_VERSION): %w", abs, err)}
	}
	// The callers' paths (%p) are relative to the data directory: so are
	// this process's.
	if err := os.Chdir(abs); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(handoff.SocketPath), 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", filepath.Join(abs, filepath.Dir(handoff.SocketPath)), err)
	}
	ln, err := listenHelper()
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	h := &walHelper{ctx: ctx, stop: stop, binary: binary, log: log, env: handoff.EnvMap(handoff.Environ(os.Environ())), pipeline: archive.NewPipeline(ctx, log), backends: map[keptKey]storage.Backend{}, whole: newApp(io.Discard, io.Discard)}
	log.Info("wal-helper listening", "data_dir", abs, "socket", filepath.Join(abs, handoff.SocketPath))
	if idleExit > 0 {
		go h.exitWhenIdle(idleExit)
	}
	go h.exitWhenSocketGone(socketCheckInterval)

	var calls sync.WaitGroup
	go func() {
		<-ctx.Done()
		if h.socketTaken.Load() {
			ln.SetUnlinkOnClose(false)
		}
		ln.Close()
	}()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			ln.Close()
			calls.Wait()
			return fmt.Errorf("wal-helper: accept: %w", err)
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			h.serve(conn)
		}()
	}
	calls.Wait()
	h.pipeline.Wait() // cut off with ctx: they leave no record
	h.mu.Lock()
	for _, b := range h.backends {
		b.Close()
	}
	h.mu.Unlock()
	log.Info("wal-helper stopped")
	return nil
}

// listenHelper listens on the socket, taking over one left by a helper
// that is gone, but never one a running helper answers on.
func listenHelper() (*net.UnixListener, error) {
	path := handoff.SocketPath
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, errors.New("another wal-helper is running for this data directory (its socket answers)")
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// requestTimeout bounds reading a request; the caller sends it at once.
const requestTimeout = 10 * time.Second

// serve answers one caller. A caller of another user is declined; a
// request that does not arrive whole is closed without an answer (either
// way the caller runs the command itself).
func (h *walHelper) serve(conn *net.UnixConn) {
	defer conn.Close()
	h.busy.Add(1)
	// Only a call it ran keeps the helper from its idle exit: one that
	// declines every call (the server's environment changed since it
	// started) then stops, and with helper auto the next call starts one
	// with the new environment.
	var ran bool
	defer func() {
		if ran {
			h.lastCall.Store(time.Now().UnixNano())
		}
		h.busy.Add(-1)
	}()
	uid, pid, err := peercred.Of(conn)
	if err != nil || uid != os.Getuid() {
		// root is no stranger: check, run as root on the database host,
		// connects to see the helper is alive, every run.
		level := slog.LevelWarn
		if err == nil && uid == 0 {
			level = slog.LevelDebug
		}
		h.log.Log(context.Background(), level, "wal-helper: declined a caller of another user", "peer_uid", uid, "err", err)
		conn.Write(handoff.EncodeAnswer(declined("the caller is another user"), false))
		return
	}
	req, err := readRequest(conn)
	if err != nil {
		// A connection closed at once is a helper starting up checking
		// whether one already runs.
		if !errors.Is(err, io.EOF) {
			h.log.Warn("wal-helper: no request", "err", err)
		}
		return
	}
	// The call is cut off when the caller goes away (it sends nothing
	// after its request, so a read returns only then) or the helper stops.
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	go func() {
		conn.SetReadDeadline(time.Time{})
		conn.Read(make([]byte, 1))
		cancel()
	}()
	start := time.Now()
	exe := peercred.ExecutablesOf(pid)
	// Keepalives while the call waits its turn and runs: the caller gives
	// up on a helper that sends nothing (see handoff.Keepalive).
	stopKeepalive := keepAlive(conn, keepaliveEvery)
	defer stopKeepalive()
	a, ran, why := h.run(ctx, req, exe)
	stopKeepalive()
	if ctx.Err() != nil {
		// Cut off: no answer, so the caller (if still there) runs it.
		h.log.Warn("wal-helper: call cut off", "args", loggedArgs(req.Args[1:]), "elapsed", time.Since(start).Round(time.Millisecond))
		return
	}
	if ran {
		h.log.Info("wal-helper: ran", "args", loggedArgs(req.Args[1:]), "exit", a.Code, "elapsed", time.Since(start).Round(time.Millisecond))
	} else if why != "" {
		h.log.Warn("wal-helper: declined", "args", loggedArgs(req.Args[1:]), "reason", why)
	}
	conn.Write(handoff.EncodeAnswer(a, ran))
	if h.replaced() {
		// An upgrade: stop, so the supervisor starts the new binary
		// (the unit restarts it); meanwhile calls run in their own
		// processes.
		h.log.Warn("wal-helper: its binary was replaced; stopping so that the new one can be started", "started_as", h.binary, "running", exe.Self)
		h.stop()
	}
}

// keepaliveEvery is how often a helper tells a waiting caller it is still
// there (a variable for tests).
var keepaliveEvery = handoff.KeepaliveSeconds * time.Second

// keepAlive writes handoff.Keepalive to w every interval until the
// returned stop is called; stop waits for the writer, so an answer
// written after it never interleaves with a keepalive, and may be called
// more than once.
func keepAlive(w io.Writer, every time.Duration) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := io.WriteString(w, handoff.Keepalive); err != nil {
					return // the caller is gone; the call is cut off anyway
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-stopped
	}
}

// replaced says whether the path the helper was started as no longer
// names the file it runs: a new file installed under that name, a symlink
// switched to another version, or the file removed.
func (h *walHelper) replaced() bool {
	if h.binary == "" {
		return false // not known: never stop for it
	}
	installed, err1 := os.Stat(h.binary)
	running, err2 := os.Stat("/proc/self/exe")
	if err2 != nil {
		return false
	}
	return err1 != nil || !os.SameFile(installed, running)
}

// startedAs is the absolute path this process was started as (os.Args[0],
// looked up in PATH when it has no slash), or "" when it cannot be found
// or names another file than the one running.
func startedAs() string {
	p, err := exec.LookPath(os.Args[0])
	if err != nil {
		return ""
	}
	if p, err = filepath.Abs(p); err != nil {
		return ""
	}
	installed, err1 := os.Stat(p)
	running, err2 := os.Stat("/proc/self/exe")
	if err1 != nil || err2 != nil || !os.SameFile(installed, running) {
		return ""
	}
	return p
}

func readRequest(conn *net.UnixConn) (handoff.Request, error) {
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	var buf []byte
	chunk := make([]byte, 16<<10)
	for {
		n, err := conn.Read(chunk)
		buf = append(buf, chunk[:n]...)
		req, derr := handoff.DecodeRequest(buf)
		if !errors.Is(derr, handoff.ErrIncomplete) {
			return req, derr
		}
		if err != nil {
			return req, err
		}
		if len(buf) > 1<<20 {
			return req, handoff.ErrProtocol
		}
	}
}

// run runs a handed-off command line, or says why it will not (why is
// for the caller, empty when it should run silently).
func (h *walHelper) run(ctx context.Context, req handoff.Request, exe peercred.Executables) (a handoff.Answer, ran bool, why string) {
	decline := func(reason string) (handoff.Answer, bool, string) { return declined(reason), false, reason }
	if !sameDir(req.Dir, ".") {
		return decline("it serves another data directory than " + req.Dir)
	}
	if len(req.Args) < 2 || asksForHelpOrVersion(req.Args[1:]) {
		return handoff.Answer{}, false, ""
	}
	// A call from another walvault binary (a newer one installed since
	// the helper started, or another installation) runs that binary's
	// code, in its own process.
	if !exe.Same {
		return decline("the caller runs " + exe.Peer + ", the helper " + exe.Self)
	}
	h.calls.Lock()
	defer h.calls.Unlock()
	// Which command the line runs is read against every command, so that
	// another one, with a handed-off command's name among its arguments,
	// stays the caller's.
	args := normalizeArgs(h.whole, req.Args)
	name := commandName(h.whole, args)
	if !handoff.Handles(name) {
		return handoff.Answer{}, false, ""
	}
	var stderr bytes.Buffer
	app := helperApp(io.Discard, &stderr)
	if differ := handoff.EnvDiffering(handoff.EnvMap(req.Env), h.env, readsEnv(app.Command(name))); len(differ) > 0 {
		return decline("its environment differs in " + strings.Join(differ, ", "))
	}
	app.Metadata = map[string]any{helperKey: h}
	code := runApp(ctx, app, args, &stderr)
	return handoff.Answer{Code: code, Message: stderr.String()}, true, ""
}

// declined is the answer that leaves a call to its caller, saying why.
func declined(reason string) handoff.Answer {
	return handoff.Answer{Message: "walvault: wal-helper declined (" + reason + "); running the command in this process\n"}
}

// sameDir says whether two paths name the same directory.
func sameDir(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// readsEnv says whether cmd's run depends on an environment variable: one
// of its flags' (its settings, WALVAULT_CONFIG), or one the AWS SDK, Go's
// TLS or the home directory's ~/.aws supply.
func readsEnv(cmd *cli.Command) func(name string) bool {
	own := map[string]bool{}
	for _, f := range cmd.Flags {
		if e, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, name := range e.GetEnvVars() {
				own[name] = true
			}
		}
	}
	// helper only says whether a call in its own process starts a helper:
	// it changes nothing of a call a helper runs.
	delete(own, envName("helper"))
	return func(name string) bool {
		return own[name] || strings.HasPrefix(name, "AWS_") || name == "HOME" || strings.HasPrefix(name, "SSL_CERT_") || proxyVar(name)
	}
}

// proxyVar says whether name is a proxy variable Go's HTTP client (so the
// S3 client's) reads.
func proxyVar(name string) bool {
	switch strings.ToUpper(name) {
	case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY":
		return true
	}
	return false
}

// helperCallsRead says whether PostgreSQL's wal-push or wal-fetch calls
// read an environment variable: what check compares between the
// postmaster and a wal-helper.
func helperCallsRead() func(name string) bool {
	push, fetch := readsEnv(walPushCommand()), readsEnv(walFetchCommand())
	return func(name string) bool { return push(name) || fetch(name) }
}

// asksForHelpOrVersion finds urfave's help and version flags, which print
// to stdout: those calls run in the caller's process.
func asksForHelpOrVersion(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if isHelpFlag(a) || strings.HasPrefix(a, "-") && (name == "v" || name == "version") {
			return true
		}
	}
	return false
}

// helperOf is the wal-helper running c's command line, or nil in a
// process of its own.
func helperOf(c *cli.Context) *walHelper {
	h, _ := c.App.Metadata[helperKey].(*walHelper)
	return h
}

// backend is openBackend for a command the helper runs: the repository
// stays open between calls (its connections kept for the next), so
// Close on what it returns does nothing. It is opened under the helper's
// context and logger: its retries are logged by the helper.
func (h *walHelper) backend(cfg Config, callTimeout time.Duration) (storage.Backend, error) {
	k := keptKey{cfg: cfg, timeout: callTimeout}
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.backends[k]; ok {
		return keptBackend{b}, nil
	}
	b, err := openBackend(h.ctx, cfg, h.log, callTimeout)
	if err != nil || len(h.backends) >= maxKeptBackends {
		return b, err // opened for this call alone
	}
	h.backends[k] = b
	return keptBackend{b}, nil
}

// keptBackend is a backend the helper keeps open across calls.
type keptBackend struct{ storage.Backend }

func (keptBackend) Close() error              { return nil }
func (k keptBackend) Unwrap() storage.Backend { return k.Backend }

// loggedArgs is a call's arguments as the helper logs them: a value that
// is an age secret key (given to decrypt-with by mistake) or a URL with a
// user and password (an s3-endpoint) is withheld, as walvault's own
// messages withhold them.
func loggedArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		flag, value, isFlag := "", a, false
		if strings.HasPrefix(a, "-") {
			if f, v, ok := strings.Cut(a, "="); ok {
				flag, value, isFlag = f+"=", v, true
			}
		}
		switch u, err := url.Parse(value); {
		case strings.Contains(strings.ToUpper(value), "AGE-SECRET-KEY-"):
			value = "[an age secret key, not shown]"
		case err == nil && u.User != nil:
			value = u.Scheme + "://[not shown]@" + u.Host + u.EscapedPath()
		case err != nil:
			// A URL that does not parse (a '%' in a password) still
			// hides what lies between its scheme and an '@'.
			if scheme, rest, ok := strings.Cut(value, "://"); ok {
				if at := strings.LastIndex(rest, "@"); at >= 0 {
					value = scheme + "://[not shown]@" + rest[at+1:]
				}
			}
		}
		if isFlag {
			value = flag + value
		}
		out[i] = value
	}
	return out
}
