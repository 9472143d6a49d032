package verify

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/wal"
)

// TestStoredSumFull: --full checks a part's stored sha256 over the bytes
// read from storage. A flipped byte that still decodes (compression none,
// or an lz4 frame made of the flipped bytes, its own checksum valid, the
// same size) is found by that sum alone; a backup written before stored
// sums is checked on its raw sha256, and found damaged the same way.
func TestStoredSumFull(t *testing.T) {
	for _, c := range []repository.Compression{repository.None, repository.LZ4} {
		for _, rawSums := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s raw sums %v", c, rawSums), func(t *testing.T) {
				f := newFixture(t)
				const id = "20261125T113000Z"
				m := repository.BackupManifest{
					FormatVersion: repository.FormatVersion, ID: id, SystemID: testSysID, PGVersion: 150010,
					WALSegmentSize: testSegSize, StartTimeline: 1, StopTimeline: 1,
					StartWAL: wal.Segment{Timeline: 1, Seg: 5}.String(), StopWAL: wal.Segment{Timeline: 1, Seg: 6}.String(),
				}
				// Random bytes: lz4 stores them as they are, so a flipped
				// byte keeps the stored size and only a sum can tell.
				raw := make([]byte, 60000)
				rand.NewChaCha8([32]byte{7}).Read(raw)
				m = repotest.WriteBackup(t, f.b, repotest.Backup{
					Manifest: m, Archives: []repotest.Archive{{Name: "base.tar", Data: raw}},
					PGManifest:  []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`),
					Compression: func(string, int) repository.Compression { return c },
					RawSums:     rawSums,
				})
				part := m.Archives[0].Parts[0]
				if rawSums != (part.StoredSHA256 == "") || rawSums == (part.SHA256 == "") {
					t.Fatalf("fixture part %+v: want only the %s sum", part, map[bool]string{true: "raw", false: "stored"}[rawSums])
				}
				if r := run(t, f.b, true); !r.OK || len(r.Problems) != 0 {
					t.Fatalf("healthy: problems %v\n%s", kinds(r.Problems), text(t, r))
				}

				flipped := bytes.Clone(raw)
				flipped[len(flipped)/2] ^= 0x01
				body := repotest.Compress(t, c, flipped)
				if int64(len(body)) != part.StoredSize {
					t.Fatalf("flipped part stores as %d bytes, the original as %d: the size check would find it first", len(body), part.StoredSize)
				}
				f.rewrite(t, part.Key, body)
				got := wantOnly(t, run(t, f.b, true), KindPartChecksum, part.Key)
				if !strings.Contains(got.Detail, "sha256") {
					t.Errorf("finding %q does not name the sha256 mismatch", got.Detail)
				}
			})
		}
	}
}
