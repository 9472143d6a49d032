package handoff

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeHelper listens on a socket and, for each caller, reads its request
// and then does what answer does with the connection.
func fakeHelper(t *testing.T, answer func(c net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "helper.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1<<16)
				var got []byte
				for {
					n, err := c.Read(buf)
					got = append(got, buf[:n]...)
					if _, derr := DecodeRequest(got); derr == nil || err != nil {
						break
					}
				}
				answer(c)
			}()
		}
	}()
	return sock
}

// TestAskGivesUpOnASilentHelper: a helper that takes the request and then
// sends nothing (stopped with SIGSTOP, or stuck) is given up on after the
// silence, saying so, and the caller runs the command itself; one that
// keeps the call alive with keepalives is waited for, however long.
func TestAskGivesUpOnASilentHelper(t *testing.T) {
	saved := silence
	silence = 1
	t.Cleanup(func() { silence = saved })
	req := Request{Dir: "/", Args: []string{"walvault", "wal-push", "p"}}

	stuck := fakeHelper(t, func(c net.Conn) { time.Sleep(10 * time.Second) })
	start := time.Now()
	a, ok := Ask(stuck, req)
	if ok || a.Message != silentMessage || time.Since(start) > 5*time.Second {
		t.Fatalf("a silent helper: %+v ok=%v after %v; want the silent fallback after about 1s", a, ok, time.Since(start))
	}
	// The next calls must not wait out the silence again.
	if _, err := os.Stat(stuck); !os.IsNotExist(err) {
		t.Fatalf("the silent helper's socket after the fallback: %v; want it removed", err)
	}

	slow := fakeHelper(t, func(c net.Conn) {
		for range 6 { // 1.8s in all, longer than the silence
			c.Write([]byte(Keepalive))
			time.Sleep(300 * time.Millisecond)
		}
		c.Write(EncodeAnswer(Answer{Code: 0, Message: "archived\n"}, true))
	})
	a, ok = Ask(slow, req)
	if !ok || a.Code != 0 || !strings.Contains(a.Message, "archived") {
		t.Fatalf("a helper keeping the call alive: %+v ok=%v; want its answer", a, ok)
	}
	if _, err := os.Stat(slow); err != nil {
		t.Fatalf("the socket of a helper that kept the call alive: %v; want it kept", err)
	}
}

// TestForgetHelperSparesAReplacement: the socket a silent helper left is
// removed only while it is the file the caller found; one a new helper
// put in its place since is left alone.
func TestForgetHelperSparesAReplacement(t *testing.T) { testForgetHelper(t, forgetHelper) }

func testForgetHelper(t *testing.T, forget func(string, os.FileInfo)) {
	path := filepath.Join(t.TempDir(), "helper.sock")
	write := func() os.FileInfo {
		t.Helper()
		os.Remove(path)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	silent := write()
	// A new file at the same path: keep the old inode alive, so
	// the new one cannot reuse its number.
	keep := path + ".old"
	if err := os.Link(path, keep); err != nil {
		t.Fatal(err)
	}
	write()
	forget(path, silent)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a replacement's socket after forgetting the silent one: %v; want it kept", err)
	}
	os.Remove(keep)
	forget(path, write())
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the silent helper's own socket: %v; want it removed", err)
	}
}
