package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// chainBlock is the fixture cluster's block size: not PostgreSQL's
// default, so a restore that assumed 8192 would put every block wrong.
const chainBlock = 1024

// chainControl is a pg_control of the fixture cluster: the system
// identifier first, blcksz after floatFormat, as PostgreSQL lays it out.
func chainControl() []byte {
	c := make([]byte, 8192)
	binary.LittleEndian.PutUint64(c, fixtureSysID)
	binary.LittleEndian.PutUint64(c[160:], math.Float64bits(1234567.0))
	binary.LittleEndian.PutUint32(c[168:], chainBlock)
	binary.LittleEndian.PutUint32(c[172:], 131072)
	return c
}

// blocks is a file of chainBlock blocks, each filled with one byte of
// fills (0 for a zero block).
func blocks(fills string) []byte {
	var b []byte
	for i := 0; i < len(fills); i++ {
		c := fills[i]
		if c == '0' {
			c = 0
		}
		b = append(b, bytes.Repeat([]byte{c}, chainBlock)...)
	}
	return b
}

// incFile builds an INCREMENTAL file of chainBlock blocks carrying, in
// order, block nums[i] filled with fills[i].
func incFile(trunc uint32, nums []uint32, fills string) []byte {
	var b bytes.Buffer
	for _, v := range append([]uint32{incrementalMagic, uint32(len(nums)), trunc}, nums...) {
		binary.Write(&b, binary.LittleEndian, v)
	}
	if len(nums) > 0 && b.Len()%chainBlock != 0 {
		b.Write(make([]byte, chainBlock-b.Len()%chainBlock))
	}
	b.Write(blocks(fills))
	return b.Bytes()
}

func chainLabel(start, from string) []byte {
	l := "START WAL LOCATION: " + start + " (file 000000010000000000000002)\nCHECKPOINT LOCATION: " + start + "\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-25 10:00:00 UTC\nLABEL: fixture\nSTART TIMELINE: 1\n"
	if from != "" {
		l += labelIncrementalLSN + from + "\n" + labelIncrementalTLI + "1\n"
	}
	return []byte(l)
}

// chainFixture is a full backup and two incrementals on it, with what
// the restore of the second must produce.
type chainFixture struct {
	full, inc1, inc2 repository.BackupManifest
	want             map[string][]byte // regular files of the result
}

// chainTouched is the newest backup's time of a file it did not change.
var chainTouched = fixtureMTime.Add(90 * time.Minute)

const (
	chainFull = "20261125T090000Z"
	chainInc1 = "20261125T093000Z"
	chainInc2 = "20261125T100000Z"
)

// storeChain stores the chain; tamper, when set, damages the parts of one
// backup (see fixture.tamper).
func storeChain(t *testing.T, b storage.Backend, tamperID string, tamper func(string, int, []byte) []byte) chainFixture {
	t.Helper()
	repotest.PutWAL(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Log: 0, Seg: 2}}, repository.LZ4), repository.LZ4, []byte("segment"), nil)
	type layerDef struct {
		id, start, parent string
		entries           []tarEntry
	}
	dir := func(n string) tarEntry { return tarEntry{name: n, typ: tar.TypeDir} }
	file := func(n string, body []byte) tarEntry { return tarEntry{name: n, body: body} }
	defs := []layerDef{
		{id: chainFull, start: "0/200028", entries: []tarEntry{
			file("backup_label", chainLabel("0/200028", "")),
			file("PG_VERSION", []byte("17\n")),
			file("postgresql.auto.conf", []byte("# auto\n")),
			dir("global/"),
			file("global/1262", blocks("xyz")),
			dir("base/"), dir("base/1/"),
			file("base/1/PG_VERSION", []byte("17\n")),
			file("base/1/16384", blocks("abcdef")),
			file("base/1/16400", blocks("q")), // dropped before inc1
			file("base/1/16600", blocks("abc")),
			file("base/1/16700", blocks("mn")),
			file("base/1/16800", blocks("gh")),
			dir("base/5/"), file("base/5/1", blocks("r")), // a dropped database
			dir("pg_wal/"), dir("pg_tblspc/"),
			file("global/pg_control", chainControl()),
		}},
		{id: chainInc1, start: "0/200100", parent: chainFull, entries: []tarEntry{
			file("backup_label", chainLabel("0/200100", "0/200028")),
			file("PG_VERSION", []byte("17\n")),
			file("postgresql.auto.conf", []byte("# auto 1\n")),
			dir("global/"),
			file("global/INCREMENTAL.1262", incFile(3, nil, "")),
			dir("base/"), dir("base/1/"),
			file("base/1/PG_VERSION", []byte("17\n")),
			// cut to 4 blocks, block 1 and 5 carried: block 4 is zeros
			file("base/1/INCREMENTAL.16384", incFile(4, []uint32{5, 1}, "CB")),
			// never cut: their CRC-32C follows the blocks (16800 sent whole)
			file("base/1/INCREMENTAL.16600", incFile(3, []uint32{1, 5}, "XY")),
			file("base/1/INCREMENTAL.16700", incFile(2, nil, "")),
			file("base/1/16800", blocks("ijk")),
			dir("pg_wal/"), dir("pg_tblspc/"),
			file("global/pg_control", chainControl()),
		}},
		{id: chainInc2, start: "0/200200", parent: chainInc1, entries: []tarEntry{
			file("backup_label", chainLabel("0/200200", "0/200100")),
			file("PG_VERSION", []byte("17\n")),
			file("postgresql.auto.conf", []byte("# auto 2\n")),
			file("INCREMENTAL.conf", []byte("not a relation\n")), // outside base/ and global: a plain file
			dir("global/"),
			file("global/INCREMENTAL.1262", incFile(2, nil, "")), // truncated to 2 blocks
			dir("base/"), dir("base/1/"),
			file("base/1/PG_VERSION", []byte("17\n")),
			// cut to 3 blocks, blocks 0 and 7 carried
			file("base/1/INCREMENTAL.16384", incFile(3, []uint32{0, 7}, "DE")),
			file("base/1/INCREMENTAL.16600", incFile(6, []uint32{0, 6}, "ZW")),
			// unchanged, but touched since (its time and mode still apply)
			{name: "base/1/INCREMENTAL.16700", body: incFile(2, nil, ""), mtime: chainTouched, mode: 0o640},
			file("base/1/INCREMENTAL.16800", incFile(3, []uint32{2}, "L")),
			file("base/1/16500", blocks("n")), // created after inc1
			dir("pg_wal/"), dir("pg_tblspc/"),
			file("global/pg_control", chainControl()),
		}},
	}
	var out []repository.BackupManifest
	for i, d := range defs {
		var tm func(string, int, []byte) []byte
		if d.id == tamperID {
			tm = tamper
		}
		out = append(out, storeChainBackup(t, b, i, d.id, d.start, d.parent, []fixtureArchive{{name: baseArchive, entries: d.entries}}, tm, nil))
	}
	return chainFixture{full: out[0], inc1: out[1], inc2: out[2], want: map[string][]byte{
		"backup_label":         chainLabel("0/200200", ""),
		"PG_VERSION":           []byte("17\n"),
		"postgresql.auto.conf": nil, // rewritten by restore
		"INCREMENTAL.conf":     []byte("not a relation\n"),
		"global/1262":          blocks("xy"),
		"global/pg_control":    chainControl(),
		"base/1/PG_VERSION":    []byte("17\n"),
		"base/1/16384":         blocks("DBc0000E"),
		"base/1/16500":         blocks("n"),
		"base/1/16600":         blocks("ZXc00YW"),
		"base/1/16700":         blocks("mn"),
		"base/1/16800":         blocks("ijL"),
		"backup_manifest":      nil, // the combined one, checked below
		"walvault.yaml":        nil,
		"recovery.signal":      nil,
	}}
}

// storeChainBackup stores backup id of a chain fixture, the n-th (its
// times follow n), as PostgreSQL 17 makes it: archives, and a
// backup_manifest of their files with CRC-32C checksums, which edit, when
// set, changes. It builds on parent unless that is "".
func storeChainBackup(t *testing.T, b storage.Backend, n int, id, start, parent string, archives []fixtureArchive, tamper func(string, int, []byte) []byte, edit func([]manifestEntry) []manifestEntry) repository.BackupManifest {
	t.Helper()
	stop := fixtureMTime.Add(time.Duration(n-2) * 30 * time.Minute)
	m := repository.BackupManifest{
		FormatVersion: repository.FormatVersion, ID: id, Label: "fixture", SystemID: fmt.Sprint(uint64(fixtureSysID)),
		PGVersion: 170002, WALSegmentSize: fixtureSegSize,
		StartTimeline: 1, StartLSN: start, StopTimeline: 1, StopLSN: "0/200300",
		StartWAL: "000000010000000000000002", StopWAL: "000000010000000000000002",
		StartTime: stop.Add(-time.Minute), StopTime: stop, Host: "fixture", Walvault: "test",
	}
	if parent != "" {
		m.Type, m.Parent, m.FormatVersion = repository.BackupIncremental, parent, repository.IncrementalFormatVersion
	}
	bk := repotest.Backup{Manifest: m, PartSize: 4 << 10, Tamper: tamper}
	for _, fa := range archives {
		bk.Archives = append(bk.Archives, repotest.Archive{Name: fa.name, TablespaceOID: fa.oid, TablespaceLocation: fa.location, Data: buildTar(t, fa.entries)})
	}
	files := crc32cEntries(manifestFiles(archives))
	if edit != nil {
		files = edit(files)
	}
	bk.PGManifest = pgManifestV(files, fixtureSysID)
	return repotest.WriteBackup(t, b, bk)
}

// crc32cEntries sets every entry's checksum algorithm to CRC-32C, the one
// backup-push asks PostgreSQL for.
func crc32cEntries(files []manifestEntry) []manifestEntry {
	for i := range files {
		files[i].alg = "CRC32C"
	}
	return files
}

// TestRestoreChain restores a full backup and two incrementals: blocks
// land where the incremental files put them (with pg_control's block
// size), truncation lengths cut, files and directories the newest backup
// lacks are gone, backup_label is that of a combined backup, and the
// combined backup_manifest checks the result (the Go check of
// pg_verifybackup -n).
func TestRestoreChain(t *testing.T) {
	t.Parallel()
	for _, mode := range []VerifyMode{VerifyStream, VerifyPGVerifyBackup} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			testRestoreChain(t, mode)
		})
	}
}

// TestRestoreChainStagedFiles is TestRestoreChain with every file of the
// incremental backups staged as a file, as the ones too large to hold in
// memory are. Not parallel: the switch is the package's.
func TestRestoreChainStagedFiles(t *testing.T) {
	stageEveryFile.Store(true)
	defer stageEveryFile.Store(false)
	testRestoreChain(t, VerifyStream)
}

func testRestoreChain(t *testing.T, mode VerifyMode) {
	b := newFixtureRepo(t)
	f := storeChain(t, b, "", nil)
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Verify = mode
	res, err := RestoreBackup(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	if res.Backup.ID != chainInc2 || res.Bytes != f.full.RawBytes+f.inc1.RawBytes+f.inc2.RawBytes {
		t.Errorf("result: backup %s, %d bytes; want %s and the chain's raw bytes", res.Backup.ID, res.Bytes, chainInc2)
	}
	got := map[string][]byte{}
	err = filepath.WalkDir(opts.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(opts.DataDir, p)
		got[rel], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range f.want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s is missing from the restore", name)
			continue
		}
		if body != nil && !bytes.Equal(g, body) {
			t.Errorf("%s: got %d bytes %s, want %d bytes %s", name, len(g), describeBlocks(g), len(body), describeBlocks(body))
		}
	}
	for name := range got {
		if _, ok := f.want[name]; !ok {
			t.Errorf("%s is in the restore, but not in the newest backup", name)
		}
	}
	for _, gone := range []string{"base/5", "base/1/16400"} {
		if _, err := os.Lstat(filepath.Join(opts.DataDir, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want it removed", gone, err)
		}
	}
	for name, want := range map[string]time.Time{"base/1/16384": fixtureMTime, "base/1/16600": fixtureMTime, "base/1/16700": chainTouched} {
		if fi, err := os.Stat(filepath.Join(opts.DataDir, name)); err != nil || !fi.ModTime().Equal(want) {
			t.Errorf("%s: %v, mtime %v; want the incremental entry's %v", name, err, fi.ModTime(), want)
		}
	}
	if fi, err := os.Stat(filepath.Join(opts.DataDir, "base/1/16700")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("base/1/16700: %v, mode %v; want the incremental entry's 0640", err, fi.Mode().Perm())
	}
	man := readFile(t, filepath.Join(opts.DataDir, pgManifestFile))
	if strings.Contains(man, incrementalPrefix+"1") || !strings.Contains(man, `"Path": "base/1/16384", "Size": 8192,`) || !strings.Contains(man, `"System-Identifier": 7300000000000000042`) {
		t.Errorf("backup_manifest is not the combined one:\n%s", man)
	}
	if st, err := VerifyDataDir(context.Background(), opts.DataDir, []string{"walvault.yaml"}); err != nil || st.Files != 11 {
		t.Errorf("VerifyDataDir on the combined restore: %+v, %v; want 11 files checked", st, err)
	}
	// Checked as written, the files never cut shorter get their
	// checksums without being read back; unchecked, every one is read.
	computed, read := 3, 2
	if !mode.stream() {
		computed, read = 0, 5
	}
	if want := fmt.Sprintf("5 files reconstructed from incremental ones, each as long as its incremental file says, listed with their checksums in a combined backup_manifest (%d computed from the blocks the chain changed, %d read back)", computed, read); !strings.Contains(res.Verified, want) {
		t.Errorf("Verified: %q, want it to say %q", res.Verified, want)
	}
}

// describeBlocks shows a file of chainBlock blocks by their first bytes.
func describeBlocks(b []byte) string {
	var s []byte
	for i := 0; i < len(b); i += chainBlock {
		c := b[i]
		if c == 0 {
			c = '0'
		}
		s = append(s, c)
	}
	return string(s)
}

// TestRestoreChainRefusesDamage: a corrupted part of the middle backup,
// a missing part of the newest or a broken link between the backups is
// refused, and the target is left as it was.
func TestRestoreChainRefusesDamage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		tamper  string
		breakIt func(t *testing.T, b storage.Backend, f chainFixture)
		// gone, when set, names a part deleted after the catalog listed it.
		gone    func(f chainFixture) string
		wantErr error
		want    string
	}{
		{
			name:   "corrupted part in the middle",
			tamper: chainInc1, wantErr: ErrCorrupt, want: "part " + repository.BackupPartKey(chainInc1, baseArchive, 1, repository.LZ4) + " of backup " + chainInc1,
		},
		{
			// The listing shows it: the catalog calls the backup DAMAGED.
			name: "missing part of the newest",
			breakIt: func(t *testing.T, b storage.Backend, f chainFixture) {
				parts := f.inc2.Archives[0].Parts
				if err := b.Delete(context.Background(), parts[len(parts)-1].Key); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: repository.ErrNoBackup, want: chainInc2 + " is DAMAGED: part ",
		},
		{
			name: "part of the newest gone after the listing",
			gone: func(f chainFixture) string {
				parts := f.inc2.Archives[0].Parts
				return parts[len(parts)-1].Key
			},
			wantErr: storage.ErrNotFound, want: "of backup " + chainInc2 + " is missing",
		},
		{
			// A parent with a damaged part breaks the chain of its children.
			name: "part of the middle truncated",
			breakIt: func(t *testing.T, b storage.Backend, f chainFixture) {
				key := f.inc1.Archives[0].Parts[0].Key
				if err := b.Put(context.Background(), key, strings.NewReader("short"), storage.PutOptions{Size: 5}); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: repository.ErrBrokenChain, want: "builds on " + chainInc1 + ", which is DAMAGED: part ",
		},
		{
			name: "parent deleted",
			breakIt: func(t *testing.T, b storage.Backend, f chainFixture) {
				if err := b.Delete(context.Background(), repository.BackupManifestKey(chainInc1)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: repository.ErrBrokenChain, want: "builds on " + chainInc1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newFixtureRepo(t)
			flip := func(_ string, seq int, raw []byte) []byte {
				if seq == 1 {
					raw[len(raw)/2] ^= 0xFF
				}
				return raw
			}
			f := storeChain(t, b, tc.tamper, flip)
			if tc.breakIt != nil {
				tc.breakIt(t, b, f)
			}
			var rb storage.Backend = b
			if tc.gone != nil {
				rb = goneAfterListing(t, b, tc.gone(f))
			}
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			opts.BackupRef = chainInc2
			_, err := RestoreBackup(context.Background(), rb, opts)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RestoreBackup: got %v, want an error wrapping %v that mentions %q", err, tc.wantErr, tc.want)
			}
			assertLeftAsBefore(t, opts.DataDir, false, 0)
		})
	}
}

// The tablespace chain fixture: tablespace tsKept is in both backups,
// tsDropped only in the full one (dropped before the incremental).
const (
	tsKept    = "16385"
	tsDropped = "16386"
	tsVersion = "PG_17_202406281/"
)

// storeTablespaceChain stores a full backup with tablespaces tsKept (at
// keptLoc) and tsDropped (at droppedLoc), and an incremental on it taken
// once tsDropped was dropped. editFull, when set, changes the files the
// full backup's backup_manifest lists. It returns what the restore puts
// in tsKept's location.
func storeTablespaceChain(t *testing.T, b storage.Backend, keptLoc, droppedLoc string, editFull func([]manifestEntry) []manifestEntry) map[string][]byte {
	t.Helper()
	repotest.PutWAL(t, b, repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Log: 0, Seg: 2}}, repository.LZ4), repository.LZ4, []byte("segment"), nil)
	dir := func(n string) tarEntry { return tarEntry{name: n, typ: tar.TypeDir} }
	file := func(n string, body []byte) tarEntry { return tarEntry{name: n, body: body} }
	base := func(label []byte, tsMap []tablespaceMapEntry, files ...tarEntry) []tarEntry {
		e := []tarEntry{
			file("backup_label", label),
			file("PG_VERSION", []byte("17\n")),
			file(tablespaceMapName, formatTablespaceMap(tsMap)),
			dir("global/"), dir("base/"), dir("base/1/"),
			file("base/1/PG_VERSION", []byte("17\n")),
			dir("pg_wal/"), dir("pg_tblspc/"),
		}
		return append(append(e, files...), file("global/pg_control", chainControl()))
	}
	tablespace := func(oid, loc string, files ...tarEntry) fixtureArchive {
		var n uint32
		fmt.Sscan(oid, &n)
		return fixtureArchive{name: oid + ".tar", oid: n, location: loc, entries: append([]tarEntry{dir(tsVersion), dir(tsVersion + "5/")}, files...)}
	}
	storeChainBackup(t, b, 0, chainFull, "0/200028", "", []fixtureArchive{
		{name: baseArchive, entries: base(chainLabel("0/200028", ""), []tablespaceMapEntry{{tsKept, keptLoc}, {tsDropped, droppedLoc}},
			file("global/1262", blocks("xyz")))},
		tablespace(tsKept, keptLoc, file(tsVersion+"5/16390", blocks("abc")), file(tsVersion+"5/16391", blocks("k"))),
		tablespace(tsDropped, droppedLoc, file(tsVersion+"5/16400", blocks("pq"))),
	}, nil, editFull)
	storeChainBackup(t, b, 1, chainInc1, "0/200100", chainFull, []fixtureArchive{
		{name: baseArchive, entries: base(chainLabel("0/200100", "0/200028"), []tablespaceMapEntry{{tsKept, keptLoc}},
			file("global/INCREMENTAL.1262", incFile(3, nil, "")))},
		tablespace(tsKept, keptLoc, file(tsVersion+"5/INCREMENTAL.16390", incFile(3, []uint32{1}, "B")), file(tsVersion+"5/INCREMENTAL.16391", incFile(1, nil, ""))),
	}, nil, nil)
	return map[string][]byte{tsVersion + "5/16390": blocks("aBc"), tsVersion + "5/16391": blocks("k")}
}

// TestRestoreChainDroppedTablespace: a chain whose incremental was taken
// after a tablespace of its full backup was dropped restores without that
// tablespace, which no backup_manifest check looks for; the files of the
// tablespace both backups hold are still checked against the full
// backup's manifest.
func TestRestoreChainDroppedTablespace(t *testing.T) {
	t.Parallel()
	keptPath := "pg_tblspc/" + tsKept + "/" + tsVersion + "5/"
	for _, tc := range []struct {
		name string
		edit func([]manifestEntry) []manifestEntry // of the full backup's manifest
		want string                                // "" for a restore that works
	}{
		{name: "restores"},
		{
			name: "kept tablespace's file missing",
			edit: func(files []manifestEntry) []manifestEntry {
				return append(files, manifestEntry{path: keptPath + "16392", body: blocks("m"), alg: "CRC32C"})
			},
			want: "1 files listed in backup_manifest are not in the backup: " + keptPath + "16392",
		},
		{
			name: "kept tablespace's file corrupt",
			edit: func(files []manifestEntry) []manifestEntry {
				for i := range files {
					if files[i].path == keptPath+"16390" {
						files[i].body = blocks("abd")
					}
				}
				return files
			},
			want: keptPath + "16390 has CRC32C checksum",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newFixtureRepo(t)
			keptLoc, droppedLoc := filepath.Join(t.TempDir(), "kept"), filepath.Join(t.TempDir(), "dropped")
			// The dropped tablespace's location holds something else now:
			// the restore must not touch it.
			mkdirWith(t, droppedLoc, "other")
			want := storeTablespaceChain(t, b, keptLoc, droppedLoc, tc.edit)
			opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
			opts.Verify = VerifyBoth // and the combined manifest, read back in Go
			newLoc := filepath.Join(t.TempDir(), "kept new")
			opts.TablespaceMapping = map[string]string{keptLoc: newLoc}
			res, err := RestoreBackup(context.Background(), b, opts)
			if entries, _ := os.ReadDir(droppedLoc); len(entries) != 1 || entries[0].Name() != "other" {
				t.Errorf("the dropped tablespace's location %s was changed: %v", droppedLoc, entries)
			}
			if tc.want != "" {
				if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("RestoreBackup: got %v, want an error wrapping %v that mentions %q", err, ErrVerify, tc.want)
				}
				assertLeftAsBefore(t, opts.DataDir, false, 0)
				assertLeftAsBefore(t, newLoc, false, 0)
				return
			}
			if err != nil {
				t.Fatalf("RestoreBackup: %v", err)
			}
			if !strings.Contains(res.Verified, "each backup_manifest of the chain's 2 backups checked") {
				t.Errorf("Verified: %q, want both backups checked as written", res.Verified)
			}
			for name, body := range want {
				if got, err := os.ReadFile(filepath.Join(newLoc, name)); err != nil || !bytes.Equal(got, body) {
					t.Errorf("%s in the kept tablespace: %s, %v; want %s", name, describeBlocks(got), err, describeBlocks(body))
				}
			}
			if entries, err := os.ReadDir(filepath.Join(opts.DataDir, pgTblspcDir)); err != nil || len(entries) != 1 || entries[0].Name() != tsKept {
				t.Errorf("%s: %v, %v; want only the link of tablespace %s", pgTblspcDir, entries, err, tsKept)
			}
			if got := readFile(t, filepath.Join(opts.DataDir, tablespaceMapName)); got != tsKept+" "+newLoc+"\n" {
				t.Errorf("%s: %q, want only tablespace %s at %s", tablespaceMapName, got, tsKept, newLoc)
			}
		})
	}
}

// TestControlBlockSize reads blcksz where PostgreSQL puts it, and refuses
// a control file without one.
func TestControlBlockSize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	os.MkdirAll(filepath.Join(dir, "global"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, pgControlPartial), chainControl(), 0o600); err != nil {
		t.Fatal(err)
	}
	if bs, err := controlBlockSize(root); err != nil || bs != chainBlock {
		t.Fatalf("controlBlockSize: %d, %v; want %d", bs, err, chainBlock)
	}
	if err := os.WriteFile(filepath.Join(dir, pgControlPartial), make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := controlBlockSize(root); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("controlBlockSize of zeros: %v, want ErrCorrupt", err)
	}
}
