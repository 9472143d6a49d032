package check

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/walvault/walvault/internal/handoff"
	"github.com/walvault/walvault/pg"
)

// local is what check can see of the server on this host: its data
// directory, when it exists here and is the same cluster (pg_control's
// system identifier matches the server's), and the postmaster's
// environment. Reading either needs to run on the database host as root or
// as the server's OS user; otherwise the checks that need it say what they
// could not check.
type local struct {
	dataDir string
	// why says why the data directory is not usable here ("" when it is).
	why string
	// env holds the postmaster's WALVAULT_REPO and WALVAULT_CONFIG (no
	// other variable is kept: the environment may hold credentials), nil
	// when it could not be read.
	env    map[string]string
	envErr error
	// envNames are the names of every variable in the postmaster's
	// environment (values are not kept).
	envNames []string
}

// envKept are the only variables read from the server's environment.
var envKept = []string{"WALVAULT_REPO", "WALVAULT_CONFIG"}

// localServer finds the server's data directory on this host.
func (c *checker) localServer() *local {
	if c.loc != nil {
		return c.loc
	}
	l := &local{}
	c.loc = l
	dd := c.srv.settings["data_directory"]
	switch {
	case c.srv.connErr != nil:
		l.why = "PostgreSQL is unreachable"
		return l
	case dd.err != nil:
		l.why = fmt.Sprintf("cannot read data_directory: %v", dd.err)
		return l
	case c.srv.sysID == "":
		l.why = "the server's system identifier is unknown"
		return l
	}
	l.dataDir = dd.value
	sysID, err := pg.ControlSystemID(l.dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		l.why = fmt.Sprintf("the data directory %s is not on this host (run check on the database host)", l.dataDir)
		return l
	case errors.Is(err, os.ErrPermission):
		l.why = fmt.Sprintf("no permission to read %s (run check as root or as the server's OS user)", l.dataDir)
		return l
	case err != nil:
		l.why = fmt.Sprintf("cannot read %s: %v", l.dataDir, err)
		return l
	case sysID != c.srv.sysID:
		l.why = fmt.Sprintf("%s on this host belongs to another cluster (system identifier %s, the server's is %s): run check on the database host", l.dataDir, sysID, c.srv.sysID)
		return l
	}
	l.env, l.envNames, l.envErr = postmasterEnv(l.dataDir)
	return l
}

// postmasterEnv reads WALVAULT_REPO and WALVAULT_CONFIG from the running
// postmaster's environment, which archive_command inherits, and the names
// of all its variables.
func postmasterEnv(dataDir string) (map[string]string, []string, error) {
	env, err := postmasterEnviron(dataDir)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	return keptOnly(env), names, nil
}

// keptOnly picks envKept out of an environment.
func keptOnly(env map[string]string) map[string]string {
	kept := map[string]string{}
	for _, k := range envKept {
		if v, ok := env[k]; ok {
			kept[k] = v
		}
	}
	return kept
}

// postmasterEnviron is the running postmaster's whole environment: the
// postmaster's pid is the first line of postmaster.pid, and the process
// must have the data directory as its working directory (so a stale pid
// file cannot name another process).
func postmasterEnviron(dataDir string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("postmaster.pid does not start with a process id")
	}
	cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
	if err != nil {
		return nil, err
	}
	if !sameDir(cwd, dataDir) {
		return nil, fmt.Errorf("process %d is not the postmaster of %s", pid, dataDir)
	}
	return procEnviron(pid)
}

// procEnviron is a process's whole environment (/proc/PID/environ). Its
// values stay in memory: they may hold credentials.
func procEnviron(pid int) (map[string]string, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		return nil, err
	}
	return parseEnviron(raw), nil
}

// parseEnviron reads a NUL-separated environment block.
func parseEnviron(raw []byte) map[string]string {
	return handoff.EnvMap(strings.Split(string(raw), "\x00"))
}

func sameDir(a, b string) bool {
	ea, err1 := filepath.EvalSymlinks(a)
	eb, err2 := filepath.EvalSymlinks(b)
	if err1 != nil || err2 != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return ea == eb
}
