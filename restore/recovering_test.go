package restore

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRecovering(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	for _, d := range []string{filepath.Join(data, "pg_wal"), filepath.Join(root, "bare", "pg_wal"), filepath.Join(root, "elsewhere")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dest string
		want bool
	}{
		{filepath.Join(data, "pg_wal", "RECOVERYXLOG"), true},
		{filepath.Join(data, "pg_wal", "00000002.history"), true},
		{filepath.Join(root, "bare", "pg_wal", "RECOVERYXLOG"), false}, // no data directory around it
		{filepath.Join(root, "elsewhere", "000000010000000000000001"), false},
		{filepath.Join(data, "000000010000000000000001"), false}, // the data directory itself, not pg_wal
		{filepath.Join(data, "pg_wal", "sub", "RECOVERYXLOG"), false},
	}
	for _, tc := range tests {
		if got := Recovering(tc.dest); got != tc.want {
			t.Errorf("Recovering(%s) = %v, want %v", tc.dest, got, tc.want)
		}
	}
	// As restore_command gives it: %p relative to the data directory,
	// which is the working directory.
	t.Chdir(data)
	if !Recovering("pg_wal/RECOVERYXLOG") {
		t.Error("Recovering(pg_wal/RECOVERYXLOG) in the data directory = false, want true")
	}
	t.Chdir(root)
	if Recovering("pg_wal/RECOVERYXLOG") {
		t.Error("Recovering(pg_wal/RECOVERYXLOG) outside a data directory = true, want false")
	}
}

func TestInStandby(t *testing.T) {
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(data, "pg_wal", "RECOVERYXLOG")
	if InStandby(dest) {
		t.Error("InStandby without standby.signal = true, want false")
	}
	if err := os.WriteFile(filepath.Join(data, "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !InStandby(dest) {
		t.Error("InStandby with standby.signal = false, want true")
	}
	if InStandby(filepath.Join(data, "RECOVERYXLOG")) {
		t.Error("InStandby of a file outside pg_wal = true, want false")
	}
}
