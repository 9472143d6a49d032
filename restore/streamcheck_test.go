package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// crc32cEverywhere lists every file with PostgreSQL's default algorithm.
func crc32cEverywhere(f []manifestEntry) []manifestEntry {
	for i := range f {
		f[i].alg = "CRC32C"
	}
	return f
}

// TestRestoreStreamCheckRefuses: with the default --verify=stream (and no
// second reading pass at all), each way the files can disagree with
// backup_manifest fails the restore and leaves nothing behind.
func TestRestoreStreamCheckRefuses(t *testing.T) {
	t.Parallel()
	edit := func(fn func(f []manifestEntry) []manifestEntry) func([]manifestEntry) []manifestEntry {
		return func(f []manifestEntry) []manifestEntry { return fn(crc32cEverywhere(f)) }
	}
	tests := []struct {
		name    string
		fixture fixture
		wantMsg string
	}{
		{
			name: "bytes differ from the manifest's CRC-32C",
			fixture: fixture{editManifest: edit(func(f []manifestEntry) []manifestEntry {
				for i := range f {
					if f[i].path == "base/1/1259" {
						f[i].body = bytes.Clone(f[i].body)
						f[i].body[1000] ^= 0x01 // same size, one bit off
					}
				}
				return f
			})},
			wantMsg: "base/1/1259 has CRC32C checksum",
		},
		{
			name: "bytes differ from the manifest's SHA-512",
			fixture: fixture{editManifest: func(f []manifestEntry) []manifestEntry {
				for i := range f {
					f[i].alg = "SHA512"
					if f[i].path == "PG_VERSION" {
						f[i].body = []byte("16\n")
					}
				}
				return f
			}},
			wantMsg: "PG_VERSION has SHA512 checksum",
		},
		{
			name: "file missing from the backup",
			fixture: fixture{editManifest: edit(func(f []manifestEntry) []manifestEntry {
				return append(f, manifestEntry{path: "base/1/16999", body: []byte("lost"), alg: "CRC32C"})
			})},
			wantMsg: "not in the backup: base/1/16999",
		},
		{
			name: "extra file in the backup",
			fixture: fixture{editManifest: edit(func(f []manifestEntry) []manifestEntry {
				var out []manifestEntry
				for _, e := range f {
					if e.path != "base/1/PG_VERSION" {
						out = append(out, e)
					}
				}
				return out
			})},
			wantMsg: "base/1/PG_VERSION is in the backup but not in backup_manifest",
		},
		{
			name: "checksum algorithm walvault cannot compute",
			fixture: fixture{editManifest: edit(func(f []manifestEntry) []manifestEntry {
				f[0].alg, f[0].sum = "MD5", "00112233445566778899aabbccddeeff"
				return f
			})},
			wantMsg: `checksum algorithm "MD5", which walvault cannot compute`,
		},
		{
			name:    "version 2 manifest of another cluster than the backup",
			fixture: fixture{manifestSysID: fixtureSysID + 1, editManifest: crc32cEverywhere},
			wantMsg: "is for the cluster with system identifier 7300000000000000043",
		},
		{
			// baseEntries' pg_control holds no system identifier.
			name:    "version 2 manifest of another cluster than pg_control",
			fixture: fixture{manifestSysID: fixtureSysID, editManifest: crc32cEverywhere},
			wantMsg: "global/pg_control has system identifier",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newFixtureRepo(t)
			tc.fixture.id = fixtureID
			tc.fixture.archives = []fixtureArchive{{name: baseArchive, entries: baseEntries()}}
			storeFixture(t, b, tc.fixture)
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			opts.Verify = VerifyStream
			opts.PGBinDir = pgVerifyBackupBin // present, and never run
			_, err := RestoreBackup(context.Background(), b, opts)
			if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("RestoreBackup: got %v, want ErrVerify mentioning %q", err, tc.wantMsg)
			}
			assertLeftAsBefore(t, opts.DataDir, false, 0)
		})
	}
}

// TestRestoreManifestV2: a version 2 manifest (PostgreSQL 17 and later,
// which pg_verifybackup 15 cannot read) is checked as the files are
// written, its System-Identifier against pg_control's.
func TestRestoreManifestV2(t *testing.T) {
	t.Parallel()
	control := bytes.Repeat([]byte{0xC0}, 8192)
	binary.NativeEndian.PutUint64(control, fixtureSysID)
	entries := baseEntries()
	for i := range entries {
		if entries[i].name == pgControlName {
			entries[i].body = control
		}
	}
	tsEntries := []tarEntry{{name: "PG_18_202506291/5/16390", body: bytes.Repeat([]byte("tablespace row "), 5000)}}
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, manifestSysID: fixtureSysID, editManifest: crc32cEverywhere, archives: []fixtureArchive{
		{name: baseArchive, entries: append(entries, tarEntry{name: tablespaceMapName, body: []byte("16385 /srv/ts\n")})},
		{name: "16385.tar", oid: 16385, location: "/srv/ts", entries: tsEntries},
	}})
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	ts := filepath.Join(t.TempDir(), "ts")
	opts.TablespaceMapping = map[string]string{"/srv/ts": ts}
	res, err := RestoreBackup(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	// backup_label, PG_VERSION, postgresql.conf, pg_control, base/1/1259,
	// base/1/PG_VERSION, tablespace_map and the tablespace's file;
	// postgresql.auto.conf is ignored, as by pg_verifybackup.
	if !strings.Contains(res.Verified, "as the files were written: 8 files") {
		t.Errorf("Verified: got %q, want the streamed check of 8 files", res.Verified)
	}
	if got := readFile(t, filepath.Join(ts, "PG_18_202506291/5/16390")); got != string(tsEntries[0].body) {
		t.Errorf("tablespace file: %d bytes, want %d", len(got), len(tsEntries[0].body))
	}
	if _, err := os.Lstat(filepath.Join(ts, stagingDir)); err == nil {
		t.Errorf("staging directory left in the tablespace")
	}
	// The reading check agrees.
	if _, err := VerifyDataDir(context.Background(), opts.DataDir, []string{"walvault.yaml", tablespaceMapName}); err != nil {
		t.Errorf("VerifyDataDir on the restore: %v", err)
	}
}
