package restore

import (
	"bytes"
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

const pgVerifyBackup = "pg_verifybackup"

// pgVerifyBackupTool is a pg_verifybackup that can check the backup.
type pgVerifyBackupTool struct {
	path  string
	major int
}

// findPGVerifyBackup looks for a pg_verifybackup at least as new as the
// backup's PostgreSQL major version: in binDir when set, else in
// the packages' directories of the backup's major (pg.PackagedBinDirs) and
// then on PATH. When none fits it says why, and the Go check is used.
func findPGVerifyBackup(ctx context.Context, binDir string, major int) (pgVerifyBackupTool, string) {
	var candidates []string
	if binDir != "" {
		candidates = []string{filepath.Join(binDir, pgVerifyBackup)}
	} else {
		for _, d := range pg.PackagedBinDirs(major) {
			candidates = append(candidates, filepath.Join(d, pgVerifyBackup))
		}
		if p, err := exec.LookPath(pgVerifyBackup); err == nil {
			candidates = append(candidates, p)
		}
	}
	var why []string
	for _, c := range candidates {
		fi, err := os.Stat(c)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			why = append(why, c+" not found")
			continue
		}
		v, _, err := pg.ProgramVersion(ctx, c, 30*time.Second)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if v < major {
			why = append(why, fmt.Sprintf("%s is from PostgreSQL %d, older than the backup's %d", c, v, major))
			continue
		}
		return pgVerifyBackupTool{path: c, major: v}, ""
	}
	return pgVerifyBackupTool{}, strings.Join(why, "; ")
}

// maxToolOutput bounds how much of pg_verifybackup's output an error quotes.
const maxToolOutput = 4 << 10

// run checks dataDir with `pg_verifybackup -n -q`, ignoring the given
// relative paths on top of its defaults.
func (t pgVerifyBackupTool) run(ctx context.Context, dataDir string, ignore []string) error {
	args := []string{"--no-parse-wal", "--quiet"}
	for _, ig := range ignore {
		args = append(args, "--ignore="+ig)
	}
	args = append(args, dataDir)
	cmd := exec.CommandContext(ctx, t.path, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(out.String())
	if len(msg) > maxToolOutput {
		msg = msg[:maxToolOutput] + "\n..."
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%w: %s %s: %v:\n%s", ErrVerify, t.path, strings.Join(args, " "), err, msg)
	}
	return fmt.Errorf("run %s: %w", t.path, err)
}
