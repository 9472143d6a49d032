package basebackup

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
)

// newRepo makes an empty file:// repository in a directory the server user
// owns (walvault runs as that user inside archive_command).
func newRepo(t *testing.T) (storage.Backend, string) {
	t.Helper()
	dir := filepath.Join(testenv.UserDir(t), "repo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, dir)
	return filetest.At(t, dir), "file://" + dir
}

// archivingServer starts PostgreSQL 15 whose archive_command is walvault
// pushing to a new file repository, and waits until a first segment (and so
// walvault.json) has reached it.
func archivingServer(t *testing.T) (*testenv.Postgres, storage.Backend) {
	t.Helper()
	return archivingServerThen(t, "")
}

// archivingServerThen is archivingServer whose archive_command runs then
// (a shell command list, e.g. " && sleep 4") after wal-push.
func archivingServerThen(t *testing.T, then string) (*testenv.Postgres, storage.Backend) {
	t.Helper()
	bin := testenv.BuildWalvault(t)
	b, url := newRepo(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		ArchiveCommand: bin + " wal-push %p" + then,
		Env:            []string{"WALVAULT_REPO=" + url},
	})
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	return pg, b
}

// recordingWire passes messages through and notes their kinds.
type recordingWire struct {
	pg.Wire
	kinds []string
}

func (r *recordingWire) Receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	msg, err := r.Wire.Receive(ctx)
	if err != nil {
		return msg, err
	}
	kind := strings.TrimPrefix(fmt.Sprintf("%T", msg), "*pgproto3.")
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		kind += " " + string(m.Data[:1])
	case *pgproto3.CommandComplete:
		kind += " " + string(m.CommandTag)
	}
	// Runs of the same kind collapse into one entry marked "+".
	if n := len(r.kinds); n > 0 && strings.TrimSuffix(r.kinds[n-1], "+") == kind {
		r.kinds[n-1] = kind + "+"
	} else {
		r.kinds = append(r.kinds, kind)
	}
	return msg, err
}

// testProtocolOrder records what PostgreSQL 15 sends for BASE_BACKUP and
// checks it against what protocol.go expects. The server has one tablespace
// besides the data directory.
func testProtocolOrder(t *testing.T, srv *testenv.Postgres) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cfg, err := pg.ParseConfig(srv.ConnString(), "walvault")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pg.Open(ctx, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rec := &recordingWire{Wire: conn}
	cmd, err := baseBackupCommand("protocol order", true, true)
	if err != nil {
		t.Fatal(err)
	}
	var archives, notices []string
	var start backupStart
	end, err := runBaseBackup(ctx, rec, cmd, backupHandlers{
		start: func(s backupStart) error { start = s; return nil },
		archive: func(name, location string, r io.Reader) error {
			archives = append(archives, name+"@"+location)
			_, err := io.Copy(io.Discard, r)
			return err
		},
		manifest: func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err },
		notice:   func(n *pgconn.Notice) { notices = append(notices, n.Severity+": "+n.Message) },
	})
	if err != nil {
		t.Fatalf("runBaseBackup: %v", err)
	}
	t.Logf("PostgreSQL 15 sent: %s", strings.Join(rec.kinds, ", "))
	t.Logf("notices: %q", notices)
	t.Logf("start %s on timeline %d, tablespaces %+v; archives %v; end %s on timeline %d",
		start.LSN, start.Timeline, start.Tablespaces, archives, end.LSN, end.Timeline)

	// Progress messages ('p') come at least after each archive; data ('d')
	// comes in runs.
	want := []string{
		"RowDescription", "DataRow", "CommandComplete SELECT", // start position
		"RowDescription", "DataRow+", "CommandComplete SELECT", // tablespaces
		"CopyOutResponse",
		"CopyData n", "CopyData d+", "CopyData p", // the tablespace's archive
		"CopyData n", "CopyData d+", "CopyData p", // base.tar
		"CopyData m", "CopyData d+", // backup_manifest
		"CopyDone",
		"RowDescription", "DataRow", "CommandComplete SELECT", // end position
		"CommandComplete BASE_BACKUP", "ReadyForQuery",
	}
	got := withoutInnerProgress(rec.kinds)
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("message order:\ngot  %s\nwant %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	if len(start.Tablespaces) != 2 || start.Tablespaces[1].OID != 0 || start.Tablespaces[0].OID == 0 {
		t.Errorf("tablespaces: got %+v, want the tablespace first and the data directory (oid 0) last", start.Tablespaces)
	}
	if end.LSN <= start.LSN || end.Timeline != start.Timeline {
		t.Errorf("end %s/%d, start %s/%d: want the end after the start on the same timeline", end.LSN, end.Timeline, start.LSN, start.Timeline)
	}
}

// withoutInnerProgress drops notices and progress reports that fall inside
// a run of data (the server sends them once a second, so where they land
// varies) and merges the data runs they split.
func withoutInnerProgress(kinds []string) []string {
	var out []string
	for i, k := range kinds {
		base := strings.TrimSuffix(k, "+")
		if base == "NoticeResponse" {
			continue
		}
		if base == "CopyData p" && i > 0 && i+1 < len(kinds) &&
			strings.HasPrefix(kinds[i-1], "CopyData d") && strings.HasPrefix(kinds[i+1], "CopyData d") {
			continue
		}
		if base == "CopyData d" && len(out) > 0 && strings.HasPrefix(out[len(out)-1], "CopyData d") {
			out[len(out)-1] = "CopyData d+"
			continue
		}
		out = append(out, k)
	}
	return out
}

// TestLastReplayedCommit: on a primary, PostgreSQL answers the query with
// NULL (nothing replayed): no time, and no error; a query PostgreSQL
// refused would be one. On a standby the time raises a backup's stop
// (TestMajors takes backups from standbys).
func TestLastReplayedCommit(t *testing.T) {
	srv := testenv.StartPostgres(t, testenv.PostgresOptions{})
	cfg, err := pg.ParseConfig(srv.ConnString(), "walvault")
	if err != nil {
		t.Fatal(err)
	}
	if at, ok, err := lastReplayedCommit(t.Context(), cfg, 10*time.Second); err != nil || ok {
		t.Errorf("on a primary: %v, %v, %v; want no time and no error", at, ok, err)
	}
}
