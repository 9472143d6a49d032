package restore

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSetTimes: a file's times are set through its descriptor, and through
// its name under the root where /proc is not there to do it.
func TestSetTimes(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := root.Mkdir("sub", 0o700); err != nil {
		t.Fatal(err)
	}
	for i, procDir := range []string{procFDDir, filepath.Join(dir, "no-proc") + "/"} {
		want := time.Date(2026, 11, 25, 10, 0, i, 500, time.UTC)
		t.Run(procDir, func(t *testing.T) {
			defer func(saved string) { procFDDir = saved }(procFDDir)
			procFDDir = procDir
			f, err := root.OpenFile("sub/f", os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := setTimes(f, root, "sub/f", want); err != nil {
				t.Fatal(err)
			}
			f.Close()
			fi, err := os.Stat(filepath.Join(dir, "sub", "f"))
			if err != nil || !fi.ModTime().Equal(want) {
				t.Errorf("mtime %v (%v), want %v", fi.ModTime(), err, want)
			}
		})
	}
}
