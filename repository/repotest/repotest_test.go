package repotest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// read returns key's body, decompressed with c, and its metadata.
func read(t *testing.T, b storage.Backend, key string, c repository.Compression) ([]byte, map[string]string) {
	t.Helper()
	rc, info, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, err := c.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data, info.Metadata
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// TestWriteBackup: the backup is cut into parts of PartSize, each stored
// compressed under its key with the checksum of what backup-push would
// have stored (also when Tamper changed what was stored), and walvault's
// manifest, as read back, lists them with their sizes; with RawSums, the
// checksum of the raw bytes, as older walvaults wrote it.
func TestWriteBackup(t *testing.T) {
	ctx := context.Background()
	const segSize = wal.MinSegmentSize
	b := repotest.New(t, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", time.Now()))
	seg := wal.Segment{Timeline: 1, Seg: 2}
	key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: seg}, repository.LZ4)
	body := bytes.Repeat([]byte("wal "), segSize/4)
	repotest.PutWAL(t, b, key, repository.LZ4, body, map[string]string{repository.MetaPushedAt: "x"})
	if got, meta := read(t, b, key, repository.LZ4); !bytes.Equal(got, body) || meta[repository.MetaRawSize] != "1048576" || meta[repository.MetaPushedAt] != "x" ||
		meta[repository.MetaSHA256] != sum(body) {
		t.Errorf("PutWAL: read back %d bytes, metadata %v", len(got), meta)
	}

	tar := []byte("0123456789abcdefghij")
	m := repotest.WriteBackup(t, b, repotest.Backup{
		Manifest: repository.BackupManifest{FormatVersion: repository.FormatVersion, ID: "20261125T103000Z", SystemID: "7", WALSegmentSize: segSize,
			StartTimeline: 1, StopTimeline: 1, StartWAL: seg.String(), StopWAL: seg.String()},
		Archives: []repotest.Archive{{Name: "base.tar", Data: bytes.Clone(tar)}},
		PartSize: 8,
		Tamper: func(archive string, seq int, raw []byte) []byte {
			if seq == 1 {
				raw[0] = 'X'
			}
			return raw
		},
	})
	parts := m.Archives[0].Parts
	if len(parts) != 3 || m.RawBytes != int64(len(tar)) || m.PGManifest.Key != "backups/20261125T103000Z/backup_manifest" {
		t.Fatalf("manifest: %d parts, %d raw bytes, pg manifest %q; want 3 parts of 20 bytes", len(parts), m.RawBytes, m.PGManifest.Key)
	}
	for i, want := range []string{"01234567", "X9abcdef", "ghij"} {
		p := parts[i]
		raw := tar[i*8 : min(i*8+8, len(tar))]
		got, _ := read(t, b, p.Key, p.Compression)
		if p.Key != repository.BackupPartKey(m.ID, "base.tar", i, repository.LZ4) || string(got) != want ||
			p.StoredSHA256 != sum(repotest.Compress(t, repository.LZ4, raw)) || p.SHA256 != "" || p.RawSize != int64(len(raw)) {
			t.Errorf("part %d: %+v holds %q, want %q with the checksum of %q compressed", i, p, got, want, raw)
		}
	}
	if m.FormatVersion != repository.StoredSumFormatVersion {
		t.Errorf("manifest with stored sums: format %d, want %d", m.FormatVersion, repository.StoredSumFormatVersion)
	}
	old := repotest.WriteBackup(t, repotest.New(t, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", time.Now())), repotest.Backup{
		Manifest: repository.BackupManifest{FormatVersion: repository.FormatVersion, ID: "20261125T113000Z", SystemID: "7", WALSegmentSize: segSize,
			StartTimeline: 1, StopTimeline: 1, StartWAL: seg.String(), StopWAL: seg.String()},
		Archives: []repotest.Archive{{Name: "base.tar", Data: bytes.Clone(tar)}},
		RawSums:  true,
	})
	if p := old.Archives[0].Parts[0]; p.SHA256 != sum(tar) || p.StoredSHA256 != "" || old.PGManifest.SHA256 != sum([]byte("{}")) || old.FormatVersion != repository.FormatVersion {
		t.Errorf("RawSums: part %+v, backup_manifest %+v, format %d; want raw sums only, format %d", p, old.PGManifest, old.FormatVersion, repository.FormatVersion)
	}
	if pgm, _ := read(t, b, m.PGManifest.Key, repository.None); string(pgm) != "{}" {
		t.Errorf("backup_manifest: got %q, want {}", pgm)
	}
	stored, err := repository.LoadBackupManifest(ctx, b, m.ID)
	if err != nil || !reflect.DeepEqual(stored, m) {
		t.Errorf("stored manifest: got %+v, %v; want %+v", stored, err, m)
	}
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{WALObjects: true})
	if err != nil || len(inv.Backups) != 1 || inv.Backups[0].Status() != repository.StatusDone {
		t.Errorf("inventory: %+v, %v; want one DONE backup", inv, err)
	}
}
