package restore

import (
	"archive/tar"
	"context"
	"path/filepath"
	"testing"

	"github.com/walvault/walvault/repository"
)

// TestRestoreBackupMixedCodecs: each part is decoded by the codec its
// manifest entry records, whatever the compression setting: a backup
// whose parts are zstd, lz4 and uncompressed in turn restores to the same
// files, checked against PostgreSQL's manifest.
func TestRestoreBackupMixedCodecs(t *testing.T) {
	t.Parallel()
	cycle := []repository.Compression{repository.Zstd, repository.LZ4, repository.None}
	for _, tc := range []struct {
		name  string
		codec func(string, int) repository.Compression
	}{
		{"zstd", func(string, int) repository.Compression { return repository.Zstd }},
		{"mixed", func(_ string, seq int) repository.Compression { return cycle[seq%len(cycle)] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newFixtureRepo(t)
			m := storeFixture(t, b, fixture{id: fixtureID, compression: tc.codec, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries(
				tarEntry{name: "pg_wal/archive_status/", typ: tar.TypeDir},
			)}}})
			seen := map[repository.Compression]bool{}
			for i, p := range m.Archives[0].Parts {
				seen[p.Compression] = true
				if want := tc.codec(baseArchive, i); p.Compression != want || p.Key != repository.BackupPartKey(fixtureID, baseArchive, i, want) {
					t.Fatalf("part %d: %s in %s, want %s", i, p.Key, p.Compression, want)
				}
			}
			if tc.name == "mixed" && len(seen) != len(cycle) {
				t.Fatalf("fixture parts use %v, want all of %v", seen, cycle)
			}
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			res, err := RestoreBackup(context.Background(), b, opts)
			if err != nil {
				t.Fatalf("RestoreBackup: %v", err)
			}
			if res.Bytes != m.RawBytes {
				t.Errorf("restored %d bytes, want %d", res.Bytes, m.RawBytes)
			}
			for _, e := range baseEntries() {
				if e.typ != 0 || e.name == "postgresql.auto.conf" {
					continue
				}
				if got := readFile(t, filepath.Join(opts.DataDir, e.name)); got != string(e.body) {
					t.Errorf("%s: restored content differs", e.name)
				}
			}
		})
	}
}
