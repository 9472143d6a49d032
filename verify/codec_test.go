package verify

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/wal"
)

// TestMixedCodecsFull: segments and a backup stored in zstd beside the
// fixture's lz4 ones are read by their own codec with --full: healthy; a
// zstd segment replaced by a valid zstd frame of other bytes is found by
// its checksum.
func TestMixedCodecsFull(t *testing.T) {
	f := newFixture(t)
	var zstdKeys []string
	for n := uint32(7); n <= 8; n++ {
		s := wal.Segment{Timeline: 1, Seg: n}
		key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}, repository.Zstd)
		repotest.PutWAL(t, f.b, key, repository.Zstd, segmentBody(n), nil)
		zstdKeys = append(zstdKeys, key)
	}
	const id = "20261125T113000Z"
	m := repository.BackupManifest{
		FormatVersion: repository.FormatVersion, ID: id, SystemID: testSysID, PGVersion: 150010,
		WALSegmentSize: testSegSize, StartTimeline: 1, StopTimeline: 1,
		StartWAL: wal.Segment{Timeline: 1, Seg: 6}.String(), StopWAL: wal.Segment{Timeline: 1, Seg: 7}.String(),
	}
	part := bytes.Repeat([]byte(fmt.Sprintf("%s tar part ", id)), 5000)
	m = repotest.WriteBackup(t, f.b, repotest.Backup{
		Manifest: m, PartSize: len(part) / 2,
		Archives:    []repotest.Archive{{Name: "base.tar", Data: part}},
		PGManifest:  []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`),
		Compression: func(string, int) repository.Compression { return repository.Zstd },
	})
	if c := m.Archives[0].Parts[0].Compression; c != repository.Zstd {
		t.Fatalf("fixture part in %s, want zstd", c)
	}

	r := run(t, f.b, true)
	if !r.OK || len(r.Problems) != 0 || len(r.Warnings) != 0 {
		t.Fatalf("a healthy mixed repository: problems %v, warnings %v\n%s", kinds(r.Problems), kinds(r.Warnings), text(t, r))
	}
	if r.Summary.WALObjects != 8 || r.Summary.Backups != 2 || r.Summary.ObjectsRead != 8+3+3 {
		t.Errorf("summary = %+v, want 8 WAL objects, 2 backups, 14 objects read", r.Summary)
	}

	other := segmentBody(8)
	other[1000] ^= 0xFF
	f.rewrite(t, zstdKeys[1], repotest.Compress(t, repository.Zstd, other))
	wantOnly(t, run(t, f.b, true), KindWALChecksum, zstdKeys[1])
}
