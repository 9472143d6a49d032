package basebackup

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestStreamRecordsStartBeforeFirstPart: the backup's folder shows, with
// its start record, while its first part is still being stored (retention
// keeps the WAL of a backup-push that may be running only once it sees
// the folder), and the record says where the backup began.
func TestStreamRecordsStartBeforeFirstPart(t *testing.T) {
	t.Parallel()
	data := randomBytes(int(MinPartSize / 2))
	w := script(backupHead(), []pgproto3.BackendMessage{newArchiveMsg("16406.tar", "/ts"), pgtest.CopyData('d', "ts"), newArchiveMsg("base.tar", ""), pgtest.CopyData('d', string(data))},
		[]pgproto3.BackendMessage{pgtest.CopyData('m', ""), pgtest.CopyData('d', "{}")}, backupTail())
	inner := mem.New()
	fb := storagetest.NewFault(inner)
	var id string
	fb.Before(storagetest.OpPut, storagetest.Contains("base.tar.00000"), func(ctx context.Context, key string) error {
		id, _, _ = repository.SplitBackupKey(key)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := inner.Stat(ctx, repository.BackupStartedKey(id)); err == nil {
				return nil
			}
		}
		return errors.New("the start record was not stored while the first part was")
	})
	opts, err := Options{PartSize: MinPartSize, Compression: repository.LZ4, Host: "db1", Log: slog.New(slog.DiscardHandler)}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream(t.Context(), w, "BASE_BACKUP", fb, opts, backupInfo{label: "l", sys: pg.SystemInfo{SystemID: "7000000000000000001", Timeline: 1}, settings: serverSettings{SegmentSize: 16 << 20, VersionNum: 150000}})
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	rc, _, err := inner.Get(t.Context(), repository.BackupStartedKey(m.ID))
	if err != nil {
		t.Fatalf("start record of backup %s: %v", m.ID, err)
	}
	defer rc.Close()
	raw, _ := io.ReadAll(rc)
	var rec repository.BackupStarted
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("start record %s: %v", raw, err)
	}
	if rec.ID != m.ID || rec.StartLSN != m.StartLSN || rec.SystemID != "7000000000000000001" || rec.Host != "db1" || !rec.Started.Equal(m.StartTime) {
		t.Errorf("start record %+v; want backup %s, start %s, system 7000000000000000001, host db1, started %v", rec, m.ID, m.StartLSN, m.StartTime)
	}
}

// TestPushRefusesWALDeletedMeanwhile: WAL the backup needs that arrived
// (the archiver reported it) but is no longer listed when the manifest is
// due, deleted meanwhile, fails the push and records nothing: backup-push
// never says done for a backup that cannot be restored.
func TestPushRefusesWALDeletedMeanwhile(t *testing.T) {
	t.Parallel()
	pg, b := archivingServer(t)
	// Listings of wal/ come from an empty store: every segment the
	// archiver stored looks deleted since.
	gone := walListedFrom{storagetest.NewFault(b), mem.New()}
	_, err := Push(ctxTimeout(t), gone, Options{ConnString: pg.ConnString(), Compression: repository.LZ4, PartSize: MinPartSize,
		Log: slog.New(slog.DiscardHandler), Progress: progress.New(io.Discard, progress.Options{})})
	if err == nil || !strings.Contains(err.Error(), "is not there any more") || !strings.Contains(err.Error(), "was not recorded") {
		t.Fatalf("Push whose WAL is gone before its manifest: %v; want a refusal naming the missing segment", err)
	}
	_ = b.List(t.Context(), repository.BackupsPrefix, func(oi storage.ObjectInfo) error {
		if _, name, _ := repository.SplitBackupKey(oi.Key); name == repository.BackupManifestName {
			t.Errorf("%s written: the backup counts although its WAL is gone", oi.Key)
		}
		return nil
	})
}

// TestPushSameSecondAsAnother: a backup whose id another backup-push took
// in the same second (its objects are conditional creates: one already
// there is the other's) fails saying so, and that the objects there are
// the other backup's, not its own incomplete parts (explore22b F4).
func TestPushSameSecondAsAnother(t *testing.T) {
	t.Parallel()
	pg, b := archivingServer(t)
	taken := storagetest.NewFault(b)
	taken.Fail(storagetest.OpPut, storagetest.Contains("/"+repository.BackupStartedName), storage.OpError("put", "x", storage.ErrExists))
	_, err := Push(ctxTimeout(t), taken, Options{ConnString: pg.ConnString(), Compression: repository.LZ4, PartSize: MinPartSize,
		Log: slog.New(slog.DiscardHandler), Progress: progress.New(io.Discard, progress.Options{})})
	if !errors.Is(err, storage.ErrExists) || !strings.Contains(err.Error(), "another backup-push started a backup in the same second") || strings.Contains(err.Error(), "show as incomplete") {
		t.Fatalf("Push whose id another push holds: %v; want the same-second refusal", err)
	}
}
