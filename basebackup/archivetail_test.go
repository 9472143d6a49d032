package basebackup

import (
	"bytes"
	"context"
	"errors"
	"io"
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

// partAfterManifest lets a Put of base.tar's part return only once the
// Put of backup_manifest has begun, or after a while (noting then that
// the manifest waited for the part).
type partAfterManifest struct {
	storage.Backend
	once     sync.Once
	manifest chan struct{} // closed when backup_manifest's Put begins
	serial   bool
}

func (b *partAfterManifest) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	switch {
	case strings.HasSuffix(key, "/backup_manifest"):
		b.once.Do(func() { close(b.manifest) })
	case strings.Contains(key, "/base.tar."):
		select {
		case <-b.manifest:
		case <-time.After(2 * time.Second):
			b.serial = true
		}
	}
	return b.Backend.Put(ctx, key, r, opts)
}

// streamTwoArchives streams a backup of a tablespace archive and base.tar,
// then backup_manifest, into b.
func streamTwoArchives(t *testing.T, b storage.Backend) (repository.BackupManifest, error) {
	t.Helper()
	w := script(backupHead(), []pgproto3.BackendMessage{
		newArchiveMsg("16406.tar", "/ts"), pgtest.CopyData('d', "abc"),
		newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "0123456789"),
		pgtest.CopyData('m', ""), pgtest.CopyData('d', "{}"),
	}, backupTail())
	opts, err := Options{PartSize: MinPartSize, Compression: repository.LZ4,
		Progress: progress.New(&bytes.Buffer{}, progress.Options{})}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	info := backupInfo{label: "walvault x", sys: pg.SystemInfo{SystemID: "7000000000000000001", Timeline: 1},
		settings: serverSettings{SegmentSize: 16 << 20, VersionNum: 150000}}
	return stream(t.Context(), w, "BASE_BACKUP", b, opts, info)
}

// TestArchiveTailBesideManifest: the last Put of an archive ends (over a
// network: its last requests and the multipart completion) while
// PostgreSQL's backup_manifest is read and stored, not before; the backup
// still records every archive, in order, with every part. (Not parallel: its upload goroutines would
// show in the parallel tests' ourGoroutines checks.)
func TestArchiveTailBesideManifest(t *testing.T) {
	b := &partAfterManifest{Backend: mem.New(), manifest: make(chan struct{})}
	m, err := streamTwoArchives(t, b)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if b.serial {
		t.Error("backup_manifest was stored only after base.tar's last Put returned: one round trip more in series than needed")
	}
	if len(m.Archives) != 2 || m.Archives[0].Name != "16406.tar" || m.Archives[0].RawSize() != 3 || m.Archives[1].Name != "base.tar" ||
		len(m.Archives[1].Parts) != 1 || m.Archives[1].RawSize() != 10 || m.PGManifest.Key == "" {
		t.Fatalf("manifest records archives %+v and backup_manifest %q; want 16406.tar (3 bytes), then base.tar's one part of 10 bytes, and backup_manifest", m.Archives, m.PGManifest.Key)
	}
	for _, k := range []string{m.Archives[0].Parts[0].Key, m.Archives[1].Parts[0].Key, m.PGManifest.Key} {
		if _, err := b.Stat(t.Context(), k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
}

// failPart fails the Put of base.tar's part once backup_manifest's Put
// has begun: the archive's tail fails after its stream was read.
type failPart struct {
	partAfterManifest
}

var errPartLost = errors.New("part lost")

func (b *failPart) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	if err := b.partAfterManifest.Put(ctx, key, r, opts); err != nil || !strings.Contains(key, "/base.tar.") {
		return err
	}
	return errPartLost
}

// TestArchiveTailFails: an archive whose last Put fails after its stream
// was read fails the backup, even with backup_manifest stored meanwhile.
func TestArchiveTailFails(t *testing.T) {
	b := &failPart{partAfterManifest{Backend: mem.New(), manifest: make(chan struct{})}}
	if _, err := streamTwoArchives(t, b); !errors.Is(err, errPartLost) {
		t.Fatalf("stream with base.tar's last Put failing: %v, want its error", err)
	}
}
