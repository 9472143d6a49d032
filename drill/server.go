package drill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scratch is the drill's private directory:
//
//	walvault-drill-XXXXXX/   0700, the server user's
//	    data/                the restored cluster (RestoreBackup creates it)
//	    tablespaces/<oid>/   the backup's tablespaces (RestoreBackup creates them)
//	    sock/                unix_socket_directories, 0700
//	    pg_hba.conf          hba_file: local connections only, trust
//	    postgres.log         the server's stderr
type scratch struct {
	root        string
	dataDir     string
	tablespaces string
	sockDir     string
	// ownSock is a socket directory made outside root because root's path
	// is too long for a unix socket; removed with it.
	ownSock string
	hbaFile string
	logFile string
}

// maxSocketPath is the longest unix socket path (sun_path holds 108 bytes
// with the terminating NUL).
const maxSocketPath = 107

// drillHBA lets only local (unix socket) connections in, without a
// password: the socket directory is private to the server user (and root),
// and nothing reaches the server over TCP.
const drillHBA = "# written by walvault drill: unix socket connections only\nlocal all all trust\n"

// newScratch creates the scratch directory under parent for u.
func newScratch(parent string, u serverUser) (s *scratch, err error) {
	if parent == "" {
		parent = os.TempDir()
	}
	parent, err = filepath.Abs(parent)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(parent)
	if err != nil {
		return nil, fmt.Errorf("cannot create the scratch directory in %s: %w (give --scratch-dir an existing directory with room for the restored cluster)", parent, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("cannot create the scratch directory in %s: not a directory (give --scratch-dir an existing directory with room for the restored cluster)", parent)
	}
	if err := u.canReach(parent); err != nil {
		return nil, fmt.Errorf("cannot use %s for the scratch directory: %w; choose another --scratch-dir, or make it searchable (chmod o+x)", parent, err)
	}
	root, err := os.MkdirTemp(parent, "walvault-drill-")
	if err != nil {
		return nil, fmt.Errorf("cannot create the scratch directory in %s: %w (give --scratch-dir a writable directory with room for the restored cluster)", parent, err)
	}
	s = &scratch{
		root:        root,
		dataDir:     filepath.Join(root, "data"),
		tablespaces: filepath.Join(root, "tablespaces"),
		sockDir:     filepath.Join(root, "sock"),
		hbaFile:     filepath.Join(root, "pg_hba.conf"),
		logFile:     filepath.Join(root, "postgres.log"),
	}
	defer func() {
		if err != nil {
			s.remove()
		}
	}()
	if err := u.chown(root); err != nil {
		return nil, fmt.Errorf("give the scratch directory %s to %s: %w", root, u.name, err)
	}
	if len(filepath.Join(s.sockDir, ".s.PGSQL.65535")) > maxSocketPath {
		dir, err := os.MkdirTemp("", "wvdrill-")
		if err != nil {
			return nil, fmt.Errorf("create a socket directory: %w", err)
		}
		s.ownSock, s.sockDir = dir, dir
		if len(filepath.Join(s.sockDir, ".s.PGSQL.65535")) > maxSocketPath {
			return nil, fmt.Errorf("the unix socket path under %s would be too long: set TMPDIR to a short path such as /tmp", dir)
		}
	} else if err := os.Mkdir(s.sockDir, 0o700); err != nil {
		return nil, err
	}
	if err := u.chown(s.sockDir); err != nil {
		return nil, err
	}
	for name, body := range map[string]string{s.hbaFile: drillHBA, s.logFile: ""} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			return nil, err
		}
		if err := u.chown(name); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// remove deletes the scratch directory, retrying briefly: a child of a
// killed server (a restore_command finishing) may still be writing.
func (s *scratch) remove() error {
	var err error
	for i := 0; i < 50; i++ {
		err = os.RemoveAll(s.root)
		if err == nil && s.ownSock != "" {
			err = os.RemoveAll(s.ownSock)
		}
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove the scratch directory %s: %w (remove it by hand)", s.root, err)
}

// logTail returns the last n lines of the server log.
func (s *scratch) logTail(n int) string {
	return tailFile(s.logFile, n, 64<<10)
}

// tailFile returns the last n lines among the last max bytes of path.
func tailFile(path string, n int, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(fi.Size()-max, io.SeekStart); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort finds a TCP port on 127.0.0.1 that was free a moment ago, or
// checks that the given one is.
func freePort(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if port != 0 {
			return 0, fmt.Errorf("port %d on 127.0.0.1 is in use (%v): give another --port, or none for a free one", port, err)
		}
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	got := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return got, nil
}

// server is the temporary postmaster, a child process of walvault.
type server struct {
	cmd  *exec.Cmd
	port int
	done chan struct{} // closed once the postmaster has exited
	err  error         // its exit status, set before done is closed
	log  *slog.Logger
	// waits are how long stop waits after each step (fast shutdown,
	// immediate shutdown, SIGKILL).
	waits [3]time.Duration

	// dataDir is where the drill guard notes why it stopped recovery
	// (restore.DrillGuardRefusal).
	dataDir string
}

// startServer starts postgres -D dataDir with settings ("name=value", on
// its command line, where they beat every configuration file) as u, its
// output appended to logFile.
func startServer(bins binaries, s *scratch, u serverUser, port int, settings []string, env []string, log *slog.Logger) (*server, error) {
	args := []string{"-D", s.dataDir}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	logf, err := os.OpenFile(s.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bins.Postgres, args...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	cmd.Dir = s.root
	cmd.SysProcAttr = u.procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s as %s: %w", bins.Postgres, u.name, err)
	}
	srv := watch(cmd, log)
	srv.port, srv.dataDir = port, s.dataDir
	log.Info("started the temporary server", "pid", cmd.Process.Pid, "port", port, "socket_dir", s.sockDir, "log", s.logFile)
	return srv, nil
}

// watch follows a started postmaster until it exits.
func watch(cmd *exec.Cmd, log *slog.Logger) *server {
	srv := &server{cmd: cmd, done: make(chan struct{}), log: log, waits: [3]time.Duration{fastStopWait, immediateStopWait, killWait}}
	go func() {
		srv.err = cmd.Wait()
		close(srv.done)
	}()
	return srv
}

// exited reports whether the postmaster is gone.
func (srv *server) exited() bool {
	select {
	case <-srv.done:
		return true
	default:
		return false
	}
}

// Shutdown deadlines: a fast shutdown writes a checkpoint, which on a big
// freshly recovered cluster takes a while; an immediate one does not.
const (
	fastStopWait      = 60 * time.Second
	immediateStopWait = 15 * time.Second
	killWait          = 10 * time.Second
)

// stop shuts the server down however it has to: fast shutdown, then
// immediate shutdown, then SIGKILL to its whole process group. It returns
// once the postmaster has exited, or an error if even that failed.
func (srv *server) stop() error {
	steps := []struct {
		what   string
		signal func() error
		wait   time.Duration
	}{
		{"fast shutdown", func() error { return srv.cmd.Process.Signal(fastShutdown()) }, srv.waits[0]},
		{"immediate shutdown", func() error { return srv.cmd.Process.Signal(immediateShutdown()) }, srv.waits[1]},
		{"SIGKILL", func() error { return killGroup(srv.cmd.Process.Pid) }, srv.waits[2]},
	}
	for _, st := range steps {
		if srv.exited() {
			break
		}
		if err := st.signal(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			srv.log.Warn("stopping the temporary server", "step", st.what, "error", err)
		}
		select {
		case <-srv.done:
		case <-time.After(st.wait):
			srv.log.Warn("the temporary server did not stop in time", "step", st.what, "waited", st.wait)
		}
	}
	if !srv.exited() {
		return fmt.Errorf("the temporary server (pid %d) did not stop even after SIGKILL", srv.cmd.Process.Pid)
	}
	// Children of a postmaster that was killed notice its death on their
	// own; a SIGKILL to the group makes sure none is left (a no-op when
	// the group is gone).
	_ = killGroup(srv.cmd.Process.Pid)
	return nil
}

// exitError describes how the postmaster ended.
func (srv *server) exitError() string {
	if srv.err == nil {
		return "exit status 0"
	}
	return srv.err.Error()
}

// serverSettings are the settings on the server's command line. They win
// over postgresql.conf and postgresql.auto.conf, so the restored cluster's
// own configuration (an archive_command that pushes to this very
// repository, a primary_conninfo to production, a synchronous standby that
// would make every commit wait) cannot act during the drill.
func serverSettings(s *scratch, port, major int, extra []string) []string {
	set := []string{
		"listen_addresses=127.0.0.1",
		"port=" + strconv.Itoa(port),
		"unix_socket_directories=" + s.sockDir,
		"unix_socket_permissions=0700",
		"hba_file=" + s.hbaFile,
		"ssl=off",
		"cluster_name=walvault-drill",
		"logging_collector=off",
		"log_destination=stderr",
		"hot_standby=on",
	}
	set = append(set, safetySettings(major)...)
	return append(set, extra...)
}

// safetySettings keep a restored cluster from archiving, streaming or
// waiting for a synchronous standby. They go on the command line and, for
// a kept scratch directory someone may start by hand, into
// postgresql.auto.conf.
func safetySettings(major int) []string {
	s := []string{
		"archive_mode=off",
		"archive_command=",
		"primary_conninfo=",
		"primary_slot_name=",
		"synchronous_standby_names=",
	}
	if major >= 15 {
		s = append(s, "archive_library=")
	}
	return s
}

// appendSafetySettings adds safetySettings to postgresql.auto.conf (read
// last of the configuration files, so they win there too).
func appendSafetySettings(dataDir string, major int) error {
	var b bytes.Buffer
	b.WriteString("\n# walvault drill: this is a restore drill's scratch copy; it must never archive into the repository or connect to a primary\n")
	for _, kv := range safetySettings(major) {
		name, value, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "%s = '%s'\n", name, strings.ReplaceAll(value, "'", "''"))
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("write the drill's safety settings: %w", err)
	}
	_, err = f.Write(b.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the drill's safety settings: %w", err)
	}
	return nil
}

// ensureConfigFile creates an empty postgresql.conf when the backup has
// none (Debian keeps it in /etc/postgresql): the server refuses to start
// without one.
func ensureConfigFile(dataDir string, u serverUser) error {
	p := filepath.Join(dataDir, "postgresql.conf")
	if _, err := os.Lstat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.WriteFile(p, []byte("# written by walvault drill: the backup has no postgresql.conf\n"), 0o600); err != nil {
		return err
	}
	return u.chown(p)
}
