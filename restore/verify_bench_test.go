package restore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRestoreVerification restores one synthetic backup (about 230
// MiB raw in 64 MiB lz4 parts: 8 relation files of 24 MiB and 400 small
// ones, bytes as compressible as table pages, a CRC-32C backup_manifest
// as PostgreSQL writes by default) from an in-memory repository into a
// directory on disk, the three ways --verify allows, alternating within
// each iteration (in a rotating order) so all three see the same machine
// load:
//
//	stream-s          --verify=stream: each file checked as it is written
//	readpass-go-s     the old path: extract, then walvault's own reading pass
//	readpass-pgvb-s   the old path with pg_verifybackup -n (PostgreSQL 15) as the reading pass
//
// and the ratios stream/readpass-go and stream/readpass-pgvb. Every restore
// includes the part sha256 checks, staging and one syncfs. Run:
//
//	go test -run '^$' -bench RestoreVerification -benchtime 6x ./restore/
func BenchmarkRestoreVerification(b *testing.B) {
	if _, err := os.Stat(filepath.Join(pgVerifyBackupBin, pgVerifyBackup)); err != nil {
		b.Fatalf("no pg_verifybackup (%v): install PostgreSQL 15 (apt-get install -y postgresql-15; ./scripts/install-deps.sh does it)", err)
	}
	rnd := rand.New(rand.NewPCG(7, 8))
	page := func(n int) []byte {
		p := make([]byte, n)
		rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(p)
		for i := range p {
			p[i] &= 0x0F // about as compressible as table pages under lz4
		}
		return p
	}
	var extra []tarEntry
	for i := range 8 {
		extra = append(extra, tarEntry{name: fmt.Sprintf("base/1/%d", 16384+i), body: page(24<<20 + i)})
	}
	for i := range 400 {
		extra = append(extra, tarEntry{name: fmt.Sprintf("base/1/%d", 20000+i), body: page(8<<10 + rnd.IntN(160<<10))})
	}
	repo := newFixtureRepo(b)
	m := storeFixture(b, repo, fixture{id: fixtureID, partSize: 64 << 20, editManifest: crc32cEverywhere,
		archives: []fixtureArchive{{name: baseArchive, entries: baseEntries(extra...)}}})
	owner, _ := testOwner(b)
	emptyBin := b.TempDir()
	work := b.TempDir()
	modes := []struct {
		metric string
		verify VerifyMode
		bin    string
	}{
		{"stream-s", VerifyStream, emptyBin},
		{"readpass-go-s", VerifyPGVerifyBackup, emptyBin},
		{"readpass-pgvb-s", VerifyPGVerifyBackup, pgVerifyBackupBin},
	}
	total := make([]time.Duration, len(modes))
	b.SetBytes(m.RawBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range modes {
			k := (i + j) % len(modes) // each mode in each position in turn
			mode := modes[k]
			dir := filepath.Join(work, fmt.Sprintf("data-%d-%d", i, k))
			start := time.Now()
			_, err := RestoreBackup(context.Background(), repo, BackupOptions{
				DataDir: dir, Owner: owner, Verify: mode.verify, PGBinDir: mode.bin,
				Now: func() time.Time { return fixtureMTime.Add(time.Hour) },
			})
			total[k] += time.Since(start)
			if err != nil {
				b.Fatalf("restore with --verify=%s: %v", mode.verify, err)
			}
			b.StopTimer()
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	for k, mode := range modes {
		b.ReportMetric(total[k].Seconds()/float64(b.N), mode.metric)
	}
	b.ReportMetric(float64(total[0])/float64(total[1]), "stream/readpass-go")
	b.ReportMetric(float64(total[0])/float64(total[2]), "stream/readpass-pgvb")
}
