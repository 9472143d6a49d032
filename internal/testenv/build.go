package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const modulePath = "github.com/walvault/walvault"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BuildWalvault returns the absolute path of a walvault binary that the
// server user can execute, for archive_command and restore_command.
//
// With WALVAULT_BIN set it checks and returns that binary. Otherwise it
// builds ./cmd/walvault of this module (found by walking up from the
// working directory to go.mod) with the go command on PATH, once per test
// binary; a failed build fails every test that asks. Binaries land in
// $TMPDIR/walvault-testbin-<uid>/walvault-<sha256 prefix>, mode 0755, so
// test binaries running at the same time share them instead of piling up
// copies; binaries unused for a day are removed there.
func BuildWalvault(t testing.TB) string {
	t.Helper()
	u := mustServerUser(t)
	if p := os.Getenv("WALVAULT_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err == nil {
			err = checkExecutable(u, abs)
		}
		if err != nil {
			t.Fatalf("testenv: WALVAULT_BIN=%s: %v", p, err)
		}
		return abs
	}
	buildOnce.Do(func() { buildPath, buildErr = buildWalvault(u) })
	if buildErr != nil {
		t.Fatalf("testenv: building walvault: %v", buildErr)
	}
	return buildPath
}

// checkExecutable says whether the server user can run path.
func checkExecutable(u serverUser, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if !u.switched {
		if fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", path)
		}
		return nil
	}
	if err := u.canSearch(filepath.Dir(path)); err != nil {
		return err
	}
	return u.hasPerm(path, 1)
}

// ModuleRoot walks up from the working directory to the directory holding
// walvault's go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == modulePath {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func buildWalvault(u serverUser) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is not on PATH: %v", err)
	}
	cache, err := binCache(u)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cache, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "walvault")
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/walvault")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/walvault in %s: %v\n%s", root, err, b)
	}
	sum, err := fileSHA256(out)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(cache, "walvault-"+sum[:16])
	if isFile(final) {
		now := time.Now()
		_ = os.Chtimes(final, now, now) // keep it from being pruned
	} else if err := os.Rename(out, final); err != nil {
		return "", err
	}
	pruneBinCache(cache, final)
	if err := checkExecutable(u, final); err != nil {
		return "", err
	}
	return final, nil
}

// binCache is $TMPDIR/walvault-testbin-<euid>, 0755, owned by us and
// writable by nobody else (it is in a shared directory, so check rather
// than trust a directory someone may have made first).
func binCache(u serverUser) (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("walvault-testbin-%d", os.Geteuid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("%s is not a directory owned by uid %d and writable only by it; remove it", dir, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o755 {
		if err := os.Chmod(dir, 0o755); err != nil {
			return "", err
		}
	}
	if err := u.canSearch(dir); err != nil {
		return "", fmt.Errorf("the server user cannot reach %s: %v; point TMPDIR at a directory everyone can search, such as /tmp", dir, err)
	}
	return dir, nil
}

// pruneBinCache removes binaries (and stale build dirs) untouched for a day.
func pruneBinCache(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if p == keep || err != nil || time.Since(fi.ModTime()) < 24*time.Hour {
			continue
		}
		if strings.HasPrefix(e.Name(), "walvault-") || strings.HasPrefix(e.Name(), "build-") {
			os.RemoveAll(p)
		}
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
