package pg

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// programVersionPattern is compiled on first use: package initialisation
// runs in every walvault process, wal-push and wal-fetch included.
var programVersionPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\(PostgreSQL\) ([0-9]+)(\.[0-9]+)?`) })

// PackagedBinDirs are where PostgreSQL's packages put the programs of one
// major version: Debian and Ubuntu, then the PostgreSQL project's RPMs
// (RHEL, Rocky, Fedora).
func PackagedBinDirs(major int) []string {
	return []string{
		"/usr/lib/postgresql/" + strconv.Itoa(major) + "/bin",
		"/usr/pgsql-" + strconv.Itoa(major) + "/bin",
	}
}

// ProgramVersion runs `path --version` (postgres, pg_verifybackup, ...),
// waiting at most timeout, and reads the PostgreSQL version it prints: the
// major version and the version as printed ("15.10"). Which versions fit
// is the caller's rule.
func ProgramVersion(ctx context.Context, path string, timeout time.Duration) (major int, version string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0, "", fmt.Errorf("%s --version: %w", path, err)
	}
	m := programVersionPattern().FindStringSubmatch(string(out))
	if m == nil {
		return 0, "", fmt.Errorf("%s --version printed %q, not a PostgreSQL version", path, strings.TrimSpace(string(out)))
	}
	major, _ = strconv.Atoi(m[1])
	return major, m[1] + m[2], nil
}
