package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/walvault/walvault/pg"
)

// binaries are the PostgreSQL programs a drill runs.
type binaries struct {
	Dir      string
	Postgres string
	// Amcheck is pg_amcheck's path, "" when it is not installed there.
	Amcheck string
	Version string // as postgres --version prints it, e.g. "15.10"
	Major   int
}

// findBinaries finds the server programs of PostgreSQL major: in dir when
// given (the --pg-bin setting), else in /usr/lib/postgresql/<major>/bin,
// else in /usr/pgsql-<major>/bin, else in the directory `pg_config --bindir` names. A directory whose
// postgres is another major version is refused: a server of another
// version cannot start the restored cluster.
func findBinaries(ctx context.Context, dir string, major int) (binaries, error) {
	if dir != "" {
		bins, err := probeBinDir(ctx, dir)
		if err != nil {
			return binaries{}, fmt.Errorf("PostgreSQL programs in %s (--pg-bin): %w", dir, err)
		}
		if major > 0 && bins.Major != major {
			return binaries{}, fmt.Errorf("the PostgreSQL programs in %s (--pg-bin) are version %s, but the backup was taken from PostgreSQL %d, whose data directory only a PostgreSQL %d server can start: give --pg-bin PostgreSQL %d's bin directory (e.g. %s)",
				dir, bins.Version, major, major, major, pg.PackagedBinDirs(major)[0])
		}
		return bins, nil
	}
	if major <= 0 {
		return binaries{}, errors.New("the backup does not record its PostgreSQL version: give --pg-bin, the bin directory of the PostgreSQL version it was taken from")
	}
	var tried []string
	candidates := pg.PackagedBinDirs(major)
	if d, err := pgConfigBinDir(ctx); err == nil {
		candidates = append(candidates, d)
	} else {
		tried = append(tried, "pg_config --bindir ("+err.Error()+")")
	}
	for _, d := range candidates {
		bins, err := probeBinDir(ctx, d)
		if err == nil && bins.Major == major {
			return bins, nil
		}
		if err == nil {
			err = fmt.Errorf("version %s, not %d", bins.Version, major)
		}
		tried = append(tried, d+" ("+err.Error()+")")
	}
	return binaries{}, fmt.Errorf("no PostgreSQL %d server programs found, which the backup needs: tried %s; install PostgreSQL %d's server (Debian/Ubuntu: apt-get install postgresql-%d; RHEL and its kin: dnf install postgresql%d-server) or give --pg-bin DIR",
		major, strings.Join(tried, ", "), major, major, major)
}

// probeBinDir checks dir for an executable postgres and asks its version.
func probeBinDir(ctx context.Context, dir string) (binaries, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return binaries{}, err
	}
	b := binaries{Dir: abs, Postgres: filepath.Join(abs, "postgres")}
	fi, err := os.Stat(b.Postgres)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return binaries{}, errors.New("no postgres program there")
		}
		return binaries{}, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return binaries{}, fmt.Errorf("%s is not an executable file", b.Postgres)
	}
	b.Major, b.Version, err = pg.ProgramVersion(ctx, b.Postgres, 20*time.Second)
	if err != nil {
		return binaries{}, err
	}
	if p := filepath.Join(abs, "pg_amcheck"); isExecutable(p) {
		b.Amcheck = p
	}
	return b, nil
}

// pgConfigBinDir asks pg_config on PATH for its bin directory.
func pgConfigBinDir(ctx context.Context) (string, error) {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return "", errors.New("pg_config is not on PATH")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--bindir").Output()
	if err != nil {
		return "", fmt.Errorf("%s --bindir: %w", path, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("%s --bindir printed nothing", path)
	}
	return dir, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
