package pg

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestControlSystemID(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 296)
	binary.NativeEndian.PutUint64(b, 7312345678901234567)
	if err := os.WriteFile(filepath.Join(dir, "global", "pg_control"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ControlSystemID(dir); err != nil || got != "7312345678901234567" {
		t.Fatalf("ControlSystemID = %q, %v", got, err)
	}
	if _, err := ControlSystemID(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing data directory: %v, want not exist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("17\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := DataDirMajor(dir); got != 17 {
		t.Fatalf("DataDirMajor = %d, want 17", got)
	}
}
