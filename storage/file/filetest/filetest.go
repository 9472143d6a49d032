package filetest

import (
	"testing"

	"github.com/walvault/walvault/storage/file"
)

// New returns a file backend in a fresh temp dir, and that dir.
func New(t testing.TB) (*file.Backend, string) {
	t.Helper()
	dir := t.TempDir()
	return At(t, dir), dir
}

// At returns a file backend rooted at dir, which must exist.
func At(t testing.TB, dir string) *file.Backend {
	t.Helper()
	b, err := file.New(dir)
	if err != nil {
		t.Fatalf("file.New(%q): got %v, want nil", dir, err)
	}
	return b
}
