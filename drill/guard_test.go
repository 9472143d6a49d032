package drill

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/restore"
)

// TestScratchDir: what the drill names to wal-fetch --drill-scratch is its
// scratch directory, the one its data directory is in.
func TestScratchDir(t *testing.T) {
	s, err := newScratch(t.TempDir(), serverUser{name: "me"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.remove()
	if got := ScratchDir(s.dataDir); got != s.root {
		t.Fatalf("ScratchDir(%s) = %s, want %s", s.dataDir, got, s.root)
	}
}

// TestExitedEarlyReportsTheGuard: a server that exited during recovery
// because the drill guard refused a segment fails the drill with the
// guard's reason, as a failed check of its own; any other exit points to
// the server log.
func TestExitedEarlyReportsTheGuard(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dataDir, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &drill{rec: &Record{}, log: slog.New(slog.DiscardHandler)}
	srv := &server{dataDir: dataDir, done: make(chan struct{})}
	close(srv.done)
	if err := d.exitedEarly(srv); !strings.Contains(err.Error(), "exited before recovery finished") || len(d.rec.Checks) != 0 {
		t.Fatalf("no refusal: %v, checks %v", err, d.rec.Checks)
	}
	// A genuine refusal: the data directory is not in the scratch
	// directory named.
	_, refusal := restore.DrillGuard{Scratch: t.TempDir()}.Check("000000010000000000000003", filepath.Join(dataDir, "pg_wal", "RECOVERYXLOG"))
	if refusal == nil {
		t.Fatal("the guard did not refuse")
	}
	err := d.exitedEarly(srv)
	if err == nil || !strings.Contains(err.Error(), "recovery stopped: "+refusal.Error()) {
		t.Errorf("with a refusal: %v, want it to give the guard's reason %q", err, refusal)
	}
	if len(d.rec.Checks) != 1 || d.rec.Checks[0].Name != "WAL guard" || d.rec.Checks[0].Status != StatusFailed || d.rec.Checks[0].Detail != refusal.Error() {
		t.Errorf("checks: %+v, want the WAL guard failed with the reason", d.rec.Checks)
	}
}
