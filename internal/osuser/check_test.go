//go:build unix

package osuser

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheckPicksTheModeClass(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	for _, c := range []struct {
		name     string
		uid, gid int
		bit      os.FileMode
		denied   bool
	}{
		{"owner reads", uid, gid, Read, false},
		{"owner writes", uid, gid, Write, false},
		{"owner cannot execute", uid, gid, Search, true},
		{"group reads", -1, gid, Read, false},
		{"group cannot write", -1, gid, Write, true},
		{"other cannot read", -1, -1, Read, true},
	} {
		d, err := Check(p, c.uid, c.gid, c.bit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (d != nil) != c.denied {
			t.Errorf("%s: got denial %+v, want denied=%v", c.name, d, c.denied)
		}
		if d != nil && (d.Mode != 0o640 || int(d.UID) != uid) {
			t.Errorf("%s: denial %+v, want mode 0640 and owner %d", c.name, d, uid)
		}
	}
}
