//go:build unix

package osuser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCanSearch(t *testing.T) {
	root := t.TempDir()
	open := filepath.Join(root, "open", "deeper")
	closed := filepath.Join(root, "closed", "deeper")
	for _, d := range []string{open, closed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(closed), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// A uid and gid that own nothing here: only the "other" bits count.
	const nobody = 65534
	if err := CanSearch(open, nobody, nobody, "nobody"); err != nil && !strings.Contains(err.Error(), os.TempDir()) {
		t.Fatalf("open path: %v", err)
	}
	err := CanSearch(closed, nobody, nobody, "nobody")
	if err == nil || !strings.Contains(err.Error(), filepath.Dir(closed)) || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("closed path: got %v, want an error naming %s", err, filepath.Dir(closed))
	}
}
