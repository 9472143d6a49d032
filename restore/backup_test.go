package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

const fixtureID = "20261125T100000Z"

// pgVerifyBackupBin is where the tests expect PostgreSQL 15's
// pg_verifybackup (Debian layout); tests that need it skip without it.
const pgVerifyBackupBin = "/usr/lib/postgresql/15/bin"

// restoreOpts are options for restoring the fixture into dataDir with the
// Go check (no pg_verifybackup in an empty PGBinDir).
func restoreOpts(t *testing.T, dataDir string) BackupOptions {
	owner, _ := testOwner(t)
	return BackupOptions{
		DataDir:        dataDir,
		Owner:          owner,
		RestoreCommand: `/usr/local/bin/walvault wal-fetch --config '/data dir/walvault.yaml' %f %p`,
		ConfigFile:     "walvault.yaml",
		ConfigYAML:     []byte("repo: file:///var/lib/walvault\n"),
		PGBinDir:       t.TempDir(),
		Now:            func() time.Time { return fixtureMTime.Add(time.Hour) },
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func TestRestoreBackupFixture(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	m := storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries(
		tarEntry{name: "postmaster.pid", body: []byte("12345\n")},
		tarEntry{name: "postmaster.opts", body: []byte("postgres\n")},
		tarEntry{name: "pg_wal/archive_status/", typ: tar.TypeDir},
	)}}})
	if len(m.Archives[0].Parts) < 3 {
		t.Fatalf("fixture base.tar has %d parts, want several", len(m.Archives[0].Parts))
	}
	ownerName, ownerUID := testOwner(t)

	for _, tc := range []struct {
		name         string
		pgBinDir     string
		verify       VerifyMode
		wantVerified string
	}{
		{"go check", "empty", "", "checked by walvault"},
		{"go reading pass", "empty", VerifyPGVerifyBackup, "checked by walvault: 6 files, 315615 bytes (no usable pg_verifybackup"},
		{"pg_verifybackup", pgVerifyBackupBin, "", "pg_verifybackup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "absent", "parent", "data"))
			opts.Verify = tc.verify
			if tc.pgBinDir != "empty" {
				if _, err := os.Stat(filepath.Join(tc.pgBinDir, pgVerifyBackup)); err != nil {
					t.Fatalf("no pg_verifybackup (%v): install PostgreSQL 15 (apt-get install -y postgresql-15; ./scripts/install-deps.sh does it)", err)
				}
				opts.PGBinDir = tc.pgBinDir
				opts.Verify = VerifyBoth
			}
			xid := "1234"
			opts.Target = Target{XID: xid, Action: "promote"}
			res, err := RestoreBackup(context.Background(), b, opts)
			if err != nil {
				t.Fatalf("RestoreBackup: %v", err)
			}
			if !strings.Contains(res.Verified, tc.wantVerified) {
				t.Errorf("Verified: got %q, want it to mention %q", res.Verified, tc.wantVerified)
			}
			if res.Backup.ID != fixtureID || res.Bytes != m.RawBytes {
				t.Errorf("result: got backup %s, %d bytes; want %s, %d", res.Backup.ID, res.Bytes, fixtureID, m.RawBytes)
			}
			dir := opts.DataDir
			fi, err := os.Stat(dir)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("data dir: got %v, %v; want mode 0700", fi, err)
			}
			for _, e := range baseEntries() {
				if e.typ != 0 {
					continue
				}
				if e.name == "postgresql.auto.conf" {
					continue
				}
				if got := readFile(t, filepath.Join(dir, e.name)); got != string(e.body) {
					t.Errorf("%s: got %d bytes, want %d (content differs)", e.name, len(got), len(e.body))
				}
			}
			fi, err = os.Stat(filepath.Join(dir, "base/1/PG_VERSION"))
			if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(fixtureMTime) {
				t.Errorf("base/1/PG_VERSION: got %v (mode %v, mtime %v), want mode 0640, mtime %v", err, fi.Mode().Perm(), fi.ModTime(), fixtureMTime)
			}
			if fi, err := os.Stat(filepath.Join(dir, "base")); err != nil || !fi.ModTime().Equal(fixtureMTime) {
				t.Errorf("directory base: mtime %v, err %v; want %v", fi.ModTime(), err, fixtureMTime)
			}
			for _, gone := range []string{"postmaster.pid", "postmaster.opts", pgControlPartial} {
				if _, err := os.Lstat(filepath.Join(dir, gone)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: got %v, want it absent", gone, err)
				}
			}
			if fi, err := os.Stat(filepath.Join(dir, "pg_wal/archive_status")); err != nil || !fi.IsDir() {
				t.Errorf("pg_wal/archive_status: %v, want a directory", err)
			}
			if got := readFile(t, filepath.Join(dir, recoverySignalName)); got != "" {
				t.Errorf("recovery.signal: got %q, want empty", got)
			}
			auto := readFile(t, filepath.Join(dir, autoConfName))
			for _, want := range []string{
				"work_mem = '8MB'\n",
				disabledPrefix + "recovery_target_time = '2020-01-01 00:00:00+00'\n",
				"# recovery settings written by walvault restore of backup " + fixtureID + " at 2026-11-25T11:00:00Z\n",
				`restore_command = '/usr/local/bin/walvault wal-fetch --config ''/data dir/walvault.yaml'' %f %p'` + "\n",
				"recovery_target_name = ''\nrecovery_target_xid = '1234'\nrecovery_target_inclusive = 'true'\nrecovery_target_timeline = 'latest'\nrecovery_target_action = 'promote'\nrecovery_min_apply_delay = '0'\n",
			} {
				if !strings.Contains(auto, want) {
					t.Errorf("postgresql.auto.conf lacks %q; got:\n%s", want, auto)
				}
			}
			if got := readFile(t, filepath.Join(dir, "walvault.yaml")); got != string(opts.ConfigYAML) {
				t.Errorf("config file: got %q, want %q", got, opts.ConfigYAML)
			}
			if got := readFile(t, filepath.Join(dir, pgManifestFile)); !strings.Contains(got, `"Path": "base/1/1259"`) {
				t.Errorf("backup_manifest was not restored: %.200q", got)
			}
			if ownerName != "" {
				err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					fi, err := os.Lstat(p)
					if err != nil {
						return err
					}
					if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != ownerUID {
						t.Errorf("%s: owned by uid %d, want %s (%d)", p, uid, ownerName, ownerUID)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			// The Go check agrees with the restore (and is what drills
			// can run on their own).
			if st, err := VerifyDataDir(context.Background(), dir, []string{"walvault.yaml"}); err != nil || st.Files == 0 {
				t.Errorf("VerifyDataDir on the restore: got %+v, %v; want success", st, err)
			}
		})
	}
}

func TestRestoreBackupTablespaces(t *testing.T) {
	t.Parallel()
	tsEntries := []tarEntry{
		{name: "PG_15_202209061/", typ: tar.TypeDir},
		{name: "PG_15_202209061/5/", typ: tar.TypeDir},
		{name: "PG_15_202209061/5/16390", body: bytes.Repeat([]byte("tablespace row "), 5000)},
	}
	for _, tc := range []struct {
		name     string
		withMap  bool
		pgBinDir string
	}{
		{"tablespace_map, go check", true, ""},
		{"tablespace_map, pg_verifybackup", true, pgVerifyBackupBin},
		{"pg_tblspc symlink, go check", false, ""},
		{"pg_tblspc symlink, pg_verifybackup", false, pgVerifyBackupBin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newFixtureRepo(t)
			// The old location is in use (the source cluster runs on
			// this host): a backslash tests tablespace_map's escaping.
			oldLoc := filepath.Join(t.TempDir(), `old tablespace\x`)
			mkdirWith(t, oldLoc, "PG_15_202209061")
			extra := tarEntry{name: "pg_tblspc/16385", typ: tar.TypeSymlink, linkname: oldLoc}
			if tc.withMap {
				extra = tarEntry{name: tablespaceMapName, body: formatTablespaceMap([]tablespaceMapEntry{{"16385", oldLoc}})}
			}
			storeFixture(t, b, fixture{id: fixtureID, partSize: 16 << 10, archives: []fixtureArchive{
				{name: baseArchive, entries: baseEntries(extra)},
				{name: "16385.tar", oid: 16385, location: oldLoc, entries: tsEntries},
			}})
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			if tc.pgBinDir != "" {
				if _, err := os.Stat(filepath.Join(tc.pgBinDir, pgVerifyBackup)); err != nil {
					t.Fatalf("no pg_verifybackup (%v): install PostgreSQL 15 (apt-get install -y postgresql-15; ./scripts/install-deps.sh does it)", err)
				}
				opts.PGBinDir = tc.pgBinDir
				opts.Verify = VerifyBoth
			}
			newLoc := filepath.Join(t.TempDir(), "new ts")
			if err := os.Mkdir(newLoc, 0o755); err != nil {
				t.Fatal(err)
			}

			// Unmapped, the tablespace would go to its old location.
			if _, err := RestoreBackup(context.Background(), b, opts); err == nil || !strings.Contains(err.Error(), "--tablespace-mapping") {
				t.Fatalf("restore without mapping: got %v, want an error suggesting --tablespace-mapping", err)
			}
			opts.TablespaceMapping = map[string]string{"/srv/nonexistent": newLoc}
			if _, err := RestoreBackup(context.Background(), b, opts); err == nil || !strings.Contains(err.Error(), "matches no tablespace") {
				t.Fatalf("restore with a mapping matching nothing: got %v, want an error", err)
			}
			if _, err := os.Stat(opts.DataDir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("refused restores created the data directory: %v", err)
			}

			opts.TablespaceMapping = map[string]string{oldLoc: newLoc}
			res, err := RestoreBackup(context.Background(), b, opts)
			if err != nil {
				t.Fatalf("RestoreBackup: %v", err)
			}
			if tc.pgBinDir != "" && !strings.Contains(res.Verified, "pg_verifybackup") {
				t.Errorf("Verified: got %q, want pg_verifybackup", res.Verified)
			}
			link, err := os.Readlink(filepath.Join(opts.DataDir, "pg_tblspc/16385"))
			if err != nil || link != newLoc {
				t.Errorf("pg_tblspc/16385: got %q, %v; want a link to %s", link, err, newLoc)
			}
			if got := readFile(t, filepath.Join(newLoc, "PG_15_202209061/5/16390")); got != string(tsEntries[2].body) {
				t.Errorf("tablespace file: got %d bytes, want %d", len(got), len(tsEntries[2].body))
			}
			if fi, err := os.Stat(newLoc); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("tablespace location: got %v, %v; want mode 0700", fi, err)
			}
			if tc.withMap {
				got, err := parseTablespaceMap([]byte(readFile(t, filepath.Join(opts.DataDir, tablespaceMapName))))
				if err != nil || !slices.Equal(got, []tablespaceMapEntry{{"16385", newLoc}}) {
					t.Errorf("tablespace_map: got %q, %v; want 16385 at %s", got, err, newLoc)
				}
			}
		})
	}
}

// assertEmptyOrAbsent checks what a failed restore left.
func assertLeftAsBefore(t *testing.T, dir string, existed bool, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(dir)
	if !existed {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after a failed restore: got %v, want it absent", dir, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s after a failed restore: %v, want it kept", dir, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 || fi.Mode().Perm() != mode {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s after a failed restore: got mode %v and %q, want mode %v and empty", dir, fi.Mode().Perm(), names, mode)
	}
}

func TestRestoreBackupFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	partKey := func(archive string, seq int) string {
		return repository.BackupPartKey(fixtureID, archive, seq, repository.LZ4)
	}
	flip := func(archive string, seq int) func(string, int, []byte) []byte {
		return func(a string, s int, raw []byte) []byte {
			if a == archive && (s == seq || seq < 0) {
				raw[len(raw)/2] ^= 0xFF
			}
			return raw
		}
	}
	lastPart := -1 // the tamper function sees every part; -1 marks "all"
	tsArchive := fixtureArchive{name: "16385.tar", oid: 16385, location: "/srv/ts", entries: []tarEntry{
		{name: "PG_15_202209061/", typ: tar.TypeDir},
		{name: "PG_15_202209061/1/", typ: tar.TypeDir},
		{name: "PG_15_202209061/1/16390", body: bytes.Repeat([]byte("x"), 40<<10)},
	}}
	withMap := baseEntries(tarEntry{name: tablespaceMapName, body: []byte("16385 /srv/ts\n")})
	tests := []struct {
		name      string
		fixture   fixture
		breakRepo func(t *testing.T, b storage.Backend, m repository.BackupManifest)
		// gone, when set, names a part deleted after the catalog listed it.
		gone       func(m repository.BackupManifest) string
		dataExists bool
		tsExists   bool
		wantErr    error
		wantMsg    string
	}{
		{
			name:    "tampered last part of base.tar, data dir absent",
			fixture: fixture{archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}, tamper: flip(baseArchive, lastPart)},
			wantErr: ErrCorrupt, wantMsg: "base.tar.",
		},
		{
			name:       "tampered first part, data dir empty",
			fixture:    fixture{archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}, tamper: flip(baseArchive, 0)},
			dataExists: true,
			wantErr:    ErrCorrupt, wantMsg: partKey(baseArchive, 0),
		},
		{
			name:       "tampered tablespace part",
			fixture:    fixture{archives: []fixtureArchive{{name: baseArchive, entries: withMap}, tsArchive}, tamper: flip("16385.tar", 0)},
			dataExists: true, tsExists: true,
			wantErr: ErrCorrupt, wantMsg: partKey("16385.tar", 0),
		},
		{
			// The tar reader fails first; the checksum still names the part.
			name: "tampered tar header",
			fixture: fixture{archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}, tamper: func(a string, s int, raw []byte) []byte {
				if s == 0 {
					raw[0] ^= 0xFF
				}
				return raw
			}},
			wantErr: ErrCorrupt, wantMsg: partKey(baseArchive, 0) + " of backup " + fixtureID + " from mem://",
		},
		{
			// The listing shows it: the catalog has no DONE backup left.
			name:    "missing part",
			fixture: fixture{archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}},
			breakRepo: func(t *testing.T, b storage.Backend, m repository.BackupManifest) {
				parts := m.Archives[0].Parts
				if err := b.Delete(context.Background(), parts[len(parts)-1].Key); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: repository.ErrNoBackup, wantMsg: "no backup is DONE",
		},
		{
			name:    "part gone after the listing",
			fixture: fixture{archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}},
			gone: func(m repository.BackupManifest) string {
				parts := m.Archives[0].Parts
				return parts[len(parts)-1].Key
			},
			wantErr: storage.ErrNotFound, wantMsg: "is missing",
		},
		{
			name:    "lz4 garbage",
			fixture: fixture{archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}},
			breakRepo: func(t *testing.T, b storage.Backend, m repository.BackupManifest) {
				p := m.Archives[0].Parts[1]
				if err := b.Delete(context.Background(), p.Key); err != nil {
					t.Fatal(err)
				}
				garbage := bytes.Repeat([]byte{0x55}, int(p.StoredSize))
				if err := b.Put(context.Background(), p.Key, bytes.NewReader(garbage), storage.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrCorrupt, wantMsg: partKey(baseArchive, 1),
		},
		{
			name: "restored files do not match backup_manifest",
			fixture: fixture{archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}, editManifest: func(f []manifestEntry) []manifestEntry {
				for i := range f {
					if f[i].path == "base/1/1259" {
						f[i].body = []byte("something else")
					}
				}
				return f
			}},
			tsExists: true,
			wantErr:  ErrVerify, wantMsg: "base/1/1259",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newFixtureRepo(t)
			tc.fixture.id = fixtureID
			m := storeFixture(t, b, tc.fixture)
			if tc.breakRepo != nil {
				tc.breakRepo(t, b, m)
			}
			var rb storage.Backend = b
			if tc.gone != nil {
				rb = goneAfterListing(t, b, tc.gone(m))
			}
			parent := t.TempDir()
			opts := restoreOpts(t, filepath.Join(parent, "data"))
			if tc.dataExists {
				if err := os.Mkdir(opts.DataDir, 0o750); err != nil {
					t.Fatal(err)
				}
			}
			ts := filepath.Join(parent, "ts")
			if tc.tsExists {
				if err := os.Mkdir(ts, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			opts.TablespaceMapping = map[string]string{}
			if len(tc.fixture.archives) > 1 {
				opts.TablespaceMapping["/srv/ts"] = ts
			}
			_, err := RestoreBackup(context.Background(), rb, opts)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("RestoreBackup: got %v, want an error wrapping %v that mentions %q", err, tc.wantErr, tc.wantMsg)
			}
			assertLeftAsBefore(t, opts.DataDir, tc.dataExists, 0o750)
			assertLeftAsBefore(t, ts, tc.tsExists, 0o755)
		})
	}
}

func TestRestoreBackupRefuses(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	storeFixture(t, b, fixture{id: "20261125T110000Z", stopTime: fixtureMTime.Add(time.Hour), skipWAL: true, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	future := fixtureMTime.Add(2 * time.Hour)
	before := fixtureMTime.Add(-time.Hour)
	farLSN := wal.LSN(0x5_0000_0000)
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) // prepares the data directory
		edit    func(o *BackupOptions)
		wantErr error
		wantMsg string
		// keep: the data directory must hold exactly these after the
		// refusal (nil: it must not exist).
		keep []string
	}{
		{
			name:    "non-empty data directory",
			setup:   func(t *testing.T, dir string) { mkdirWith(t, dir, "precious") },
			wantErr: ErrNotEmpty, wantMsg: "precious", keep: []string{"precious"},
		},
		{
			name:    "live cluster",
			setup:   func(t *testing.T, dir string) { mkdirWith(t, dir, "PG_VERSION", "postmaster.pid", "base") },
			wantErr: ErrNotEmpty, wantMsg: "server may be running", keep: []string{"PG_VERSION", "base", "postmaster.pid"},
		},
		{
			name:    "interrupted restore",
			setup:   func(t *testing.T, dir string) { mkdirWith(t, dir, stagingDir, "PG_VERSION") },
			wantErr: ErrNotEmpty, wantMsg: "interrupted walvault restore (" + stagingDir + ")", keep: []string{stagingDir, "PG_VERSION"},
		},
		{
			name: "data directory is a file",
			setup: func(t *testing.T, dir string) {
				if err := os.WriteFile(dir, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotEmpty, wantMsg: "not a directory",
		},
		{
			name:    "target in the future",
			edit:    func(o *BackupOptions) { o.Target = Target{Time: &future} },
			wantMsg: "in the future",
		},
		{
			name:    "target before every backup",
			edit:    func(o *BackupOptions) { o.Target = Target{Time: &before} },
			wantErr: repository.ErrNoBackup, wantMsg: "earlier than every backup",
		},
		{
			name:    "lsn beyond the archive",
			edit:    func(o *BackupOptions) { o.Target = Target{LSN: &farLSN} },
			wantMsg: "beyond the archive",
		},
		{
			name:    "backup waiting for WAL",
			edit:    func(o *BackupOptions) { o.BackupRef = "20261125T110000Z" },
			wantErr: repository.ErrNoBackup, wantMsg: "WAITING_FOR_WALS",
		},
		{
			name:    "unknown backup",
			edit:    func(o *BackupOptions) { o.BackupRef = "20201125T110000Z" },
			wantErr: repository.ErrNoBackup, wantMsg: "does not exist",
		},
		{
			name:    "config file clashes with a backed-up file",
			edit:    func(o *BackupOptions) { o.ConfigFile = "PG_VERSION" },
			wantMsg: "would replace a file of the backup",
		},
		{
			name:    "config file outside the data directory",
			edit:    func(o *BackupOptions) { o.ConfigFile = "../walvault.yaml" },
			wantMsg: "relative to the data directory",
		},
		{
			name:    "restore_command with a line break",
			edit:    func(o *BackupOptions) { o.RestoreCommand = "walvault wal-fetch %f %p\nrecovery_target = 'immediate'" },
			wantMsg: "line break",
		},
		{
			name:    "invalid target",
			edit:    func(o *BackupOptions) { o.Target = Target{XID: "12a"} },
			wantMsg: "invalid recovery target xid",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			opts := restoreOpts(t, dir)
			if tc.edit != nil {
				tc.edit(&opts)
			}
			_, err := RestoreBackup(context.Background(), b, opts)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("RestoreBackup: got %v, want an error (wrapping %v) mentioning %q", err, tc.wantErr, tc.wantMsg)
			}
			fi, statErr := os.Stat(dir)
			switch {
			case tc.keep == nil && tc.setup == nil:
				if !errors.Is(statErr, fs.ErrNotExist) {
					t.Errorf("data directory after the refusal: %v, want it absent", statErr)
				}
			case tc.keep != nil:
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				if !slices.Equal(names, tc.keep) || fi.Mode().Perm() != 0o755 {
					t.Errorf("data directory after the refusal: got %q, mode %v; want exactly %q, mode 0755, untouched", names, fi.Mode().Perm(), tc.keep)
				}
			}
		})
	}
}

// mkdirWith makes dir (0755) holding the named empty files.
func mkdirWith(t *testing.T, dir string, names ...string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreBackupCancelled: an interrupted restore removes what it wrote.
func TestRestoreBackupCancelled(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	m := storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cb := storagetest.NewFault(b)
	cb.Before(storagetest.OpGet, storagetest.Key(m.Archives[0].Parts[2].Key), func(context.Context, string) error {
		cancel()
		return nil
	})
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	_, err := RestoreBackup(ctx, cb, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RestoreBackup with a cancelled context: got %v, want context.Canceled", err)
	}
	assertLeftAsBefore(t, opts.DataDir, false, 0)
}

// TestRestoreBackupReadsANamedBackupsRecordWhileListing: a restore of a
// named backup reads its record while backups/ is listed, a round trip
// less before the first part is asked for.
func TestRestoreBackupReadsANamedBackupsRecordWhileListing(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	m := storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	fb := storagetest.NewFault(b)
	reading := make(chan struct{})
	var once sync.Once
	fb.Before(storagetest.OpGet, storagetest.Key(repository.BackupManifestKey(m.ID)), func(context.Context, string) error {
		once.Do(func() { close(reading) })
		return nil
	})
	var overlapped atomic.Bool
	fb.Before(storagetest.OpList, storagetest.Key(repository.BackupsPrefix), func(context.Context, string) error {
		select {
		case <-reading:
			overlapped.Store(true)
		case <-time.After(300 * time.Millisecond):
		}
		return nil
	})
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.BackupRef = m.ID
	if _, err := RestoreBackup(context.Background(), fb, opts); err != nil {
		t.Fatalf("RestoreBackup %s: %v", m.ID, err)
	}
	if !overlapped.Load() {
		t.Errorf("the record of backup %s was not read while backups/ was listed", m.ID)
	}
}

// TestRestoreBackupWithoutConfigFile: a backup of a cluster that keeps
// postgresql.conf outside its data directory (Debian, Ubuntu) restores,
// and the result says the server needs a configuration before it can
// start; one with postgresql.conf says nothing of it (explore22d F2).
func TestRestoreBackupWithoutConfigFile(t *testing.T) {
	t.Parallel()
	for _, withConf := range []bool{true, false} {
		b := newFixtureRepo(t)
		var entries []tarEntry
		for _, e := range baseEntries() {
			if e.name != "postgresql.conf" || withConf {
				entries = append(entries, e)
			}
		}
		storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: entries}}})
		res, err := RestoreBackup(context.Background(), b, restoreOpts(t, filepath.Join(t.TempDir(), "data")))
		if err != nil {
			t.Fatalf("RestoreBackup (postgresql.conf in the backup: %v): %v", withConf, err)
		}
		if res.NoConfigFile == withConf || slices.Contains(res.Warnings, NoConfigFileWarning) == withConf {
			t.Errorf("postgresql.conf in the backup: %v; got NoConfigFile %v, warnings %q", withConf, res.NoConfigFile, res.Warnings)
		}
	}
}

// TestRestoreRefusesUnreadableOwnerFile: run as root, restore refuses,
// before anything is written, a file restore_command will read as the
// server's user (the S3 CA bundle) that user cannot read (explore22c F9).
// Not as root, nothing is handed to another user, and nothing is checked.
func TestRestoreRefusesUnreadableOwnerFile(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	storeFixture(t, b, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	ca := filepath.Join(t.TempDir(), "ca.pem") // a 0700 directory of this user's
	if err := os.WriteFile(ca, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	name, _ := testOwner(t)
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Owner, opts.OwnerReads = name, []string{ca}
	_, err := RestoreBackup(context.Background(), b, opts)
	switch {
	case os.Geteuid() == 0 && (err == nil || !strings.Contains(err.Error(), "restore_command reads "+ca)):
		t.Errorf("restore as root with a CA bundle %s cannot read: %v; want a refusal naming it", name, err)
	case os.Geteuid() == 0:
		if _, serr := os.Stat(opts.DataDir); !errors.Is(serr, fs.ErrNotExist) {
			t.Errorf("refused restore left %s: %v", opts.DataDir, serr)
		}
	case err != nil:
		t.Errorf("restore as the files' own user: %v", err)
	}
}
