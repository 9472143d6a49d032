package basebackup

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
)

// checkpointingWire is a server that answers BASE_BACKUP only after its
// checkpoint: the first Receive runs checkpoint first.
type checkpointingWire struct {
	pg.Wire
	once       sync.Once
	checkpoint func()
}

func (w *checkpointingWire) Receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	w.once.Do(w.checkpoint)
	return w.Wire.Receive(ctx)
}

// TestIDFromBackupStart: a spread checkpoint holds the start response back
// for minutes; the backup's id and start time are those of the moment
// PostgreSQL started the backup, not of the command's start, and nothing
// is stored under an earlier id. The wait is said, with its kind. (Not
// parallel: its upload goroutines would show in the parallel tests'
// ourGoroutines checks.)
func TestIDFromBackupStart(t *testing.T) {
	asked := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	var mu sync.Mutex
	now := asked
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	b := mem.New()
	var logs bytes.Buffer
	stored := -1
	w := &checkpointingWire{
		Wire: script(backupHead(), []pgproto3.BackendMessage{
			newArchiveMsg("16406.tar", "/ts"), pgtest.CopyData('d', "abc"),
			newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "0123456789"),
			pgtest.CopyData('m', ""), pgtest.CopyData('d', "{}"),
		}, backupTail()),
		checkpoint: func() {
			stored = countObjects(t, b)
			mu.Lock()
			now = now.Add(4*time.Minute + 30*time.Second)
			mu.Unlock()
		},
	}
	log := slog.New(slog.NewTextHandler(&logs, nil))
	opts, err := Options{Checkpoint: "spread", PartSize: MinPartSize, Compression: repository.LZ4, Log: log, Now: clock,
		Progress: progress.New(&bytes.Buffer{}, progress.Options{})}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	info := backupInfo{label: "walvault " + repository.NewBackupID(asked), sys: pg.SystemInfo{SystemID: "7000000000000000001", Timeline: 1},
		settings: serverSettings{SegmentSize: 16 << 20, VersionNum: 150000}}
	m, err := stream(t.Context(), w, "BASE_BACKUP", b, opts, info)
	if err != nil {
		t.Fatalf("stream: %v\n%s", err, logs.String())
	}
	started := asked.Add(4*time.Minute + 30*time.Second)
	if m.ID != "20261125T103430Z" || !m.StartTime.Equal(started) {
		t.Errorf("id %s, start time %s; want 20261125T103430Z and %s (when PostgreSQL started the backup, after the checkpoint)", m.ID, m.StartTime, started)
	}
	if stored != 0 {
		t.Errorf("%d objects stored before PostgreSQL started the backup, want none", stored)
	}
	_ = b.List(t.Context(), "", func(oi storage.ObjectInfo) error {
		if !strings.HasPrefix(oi.Key, repository.BackupPrefix(m.ID)) {
			t.Errorf("%s stored outside the backup's folder %s", oi.Key, repository.BackupPrefix(m.ID))
		}
		return nil
	})
	out := logs.String()
	wait := strings.Index(out, "waiting for PostgreSQL to start the backup after a spread checkpoint")
	began := strings.Index(out, `msg="backup started" backup_id=20261125T103430Z start_time=2026-11-25T10:34:30Z`)
	if wait < 0 || began < wait {
		t.Errorf("log does not say it waits for a spread checkpoint, then that the backup started with its id and time:\n%s", out)
	}
}

func countObjects(t *testing.T, b storage.Backend) int {
	n := 0
	if err := b.List(t.Context(), "", func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTimesInServersClock: this host's clock is five minutes ahead of the
// server's (the server's is behind). A backup's id, start and stop are
// the server's time, which recovery targets use, the stop the latest it
// can be (explore23c F3: a restore to a time before the backup picked it).
func TestTimesInServersClock(t *testing.T) {
	here := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	b := mem.New()
	w := script(backupHead(), []pgproto3.BackendMessage{
		newArchiveMsg("16406.tar", "/ts"), pgtest.CopyData('d', "abc"),
		newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "0123456789"),
		pgtest.CopyData('m', ""), pgtest.CopyData('d', "{}"),
	}, backupTail())
	opts, err := Options{PartSize: MinPartSize, Compression: repository.LZ4, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return here },
		Progress: progress.New(&bytes.Buffer{}, progress.Options{})}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	info := backupInfo{sys: pg.SystemInfo{SystemID: "7000000000000000001", Timeline: 1},
		settings: serverSettings{SegmentSize: 16 << 20, VersionNum: 150000, ClockOffset: -5 * time.Minute, ClockUncertainty: 2 * time.Millisecond}}
	m, err := stream(t.Context(), w, "BASE_BACKUP", b, opts, info)
	if err != nil {
		t.Fatal(err)
	}
	server := here.Add(-5 * time.Minute)
	if m.ID != "20261125T102500Z" || !m.StartTime.Equal(server) || !m.StopTime.Equal(server.Add(2*time.Millisecond)) {
		t.Errorf("id %s, times %s to %s; want 20261125T102500Z, %s to %s (the server's clock, the stop at its latest)", m.ID, m.StartTime, m.StopTime, server, server.Add(2*time.Millisecond))
	}
}
