package check

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/handoff"
)

// TestMain lets a copy of this test binary stand in for a wal-helper
// (TestCheckWALHelperBinary): with WALVAULT_TEST_LISTEN set it listens on
// that socket until killed, and runs no test.
func TestMain(m *testing.M) {
	if sock := os.Getenv("WALVAULT_TEST_LISTEN"); sock != "" {
		l, err := net.Listen("unix", sock)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for {
			conn, err := l.Accept()
			if err != nil {
				os.Exit(2)
			}
			conn.Close()
		}
	}
	os.Exit(m.Run())
}

// TestCheckWALHelperBinary: check's wal-helper line says when the helper
// runs another file than check's own binary, and when its file has been
// replaced since it started; it says neither for a helper of the same
// file.
func TestCheckWALHelperBinary(t *testing.T) {
	c, dataDir := localChecker(t, filepath.Dir(handoff.SocketPath))
	sock := filepath.Join(dataDir, handoff.SocketPath)

	// A helper of the same file: this process.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	if r := one(t, c.checkWALHelper()); !r.OK || strings.Contains(r.Detail, " but ") {
		t.Errorf("a helper running this binary: %+v, want OK without a but", r)
	}
	l.Close()
	os.Remove(sock)

	// Another installation: a copy of this binary elsewhere.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "walvault")
	if err := os.WriteFile(other, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(other)
	cmd.Env = append(os.Environ(), "WALVAULT_TEST_LISTEN="+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if conn, err := net.Dial("unix", sock); err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stand-in helper did not listen within 10s")
		}
	}
	r := one(t, c.checkWALHelper())
	if !r.OK || !strings.Contains(r.Detail, "it runs "+other+", not this walvault") {
		t.Errorf("a helper running another installation's binary: %+v, want it named", r)
	}

	// Upgraded: a new file renamed over the helper's, as installers do.
	if err := os.WriteFile(other+".new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other+".new", other); err != nil {
		t.Fatal(err)
	}
	r = one(t, c.checkWALHelper())
	if !r.OK || !strings.Contains(r.Detail, "it runs "+other+" (deleted), a file since replaced or removed") {
		t.Errorf("a helper whose binary was replaced: %+v, want that said", r)
	}
}

// localChecker is a checker that runs on the database host of a data
// directory with pg_control and the directories dirs.
func localChecker(t *testing.T, dirs ...string) (*checker, string) {
	t.Helper()
	dataDir := t.TempDir()
	for _, d := range append([]string{"global"}, dirs...) {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	control := make([]byte, 296)
	binary.NativeEndian.PutUint64(control, 7312345678901234567) // testSysID
	if err := os.WriteFile(filepath.Join(dataDir, "global", "pg_control"), control, 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := newChecker(t)
	c.srv.settings["data_directory"] = setting{value: dataDir}
	return c, dataDir
}
