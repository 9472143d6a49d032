package restore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Restoring an incremental backup (PostgreSQL 17 and later) means restoring
// its chain: the full backup first, then each incremental on it in order,
// each applied to the files as the backups before it left them. Whole files
// replace what is there; an INCREMENTAL.<name> file is merged into <name>
// block by block (applyIncremental); once the newest backup is in, whatever
// it does not hold is removed. The result is what pg_combinebackup makes of
// the same chain, written straight into the target: backup_label loses its
// INCREMENTAL FROM lines, and backup_manifest is rewritten for the
// reconstructed files (writeCombinedManifest), so pg_verifybackup checks
// the result as it checks pg_combinebackup's.
//
// One rule differs from pg_combinebackup's: a block an intermediate
// incremental cut off (at or past its truncation length) and no later
// backup carries stays zeros here, where pg_combinebackup would take it
// from a backup older than the cut. Such a block was never WAL-logged
// since the cut, so the server held it as the zeros of an extension.

// layer is one backup of a chain as restore applies it: its base.tar and
// the archives of the tablespaces the newest backup still holds, each
// going where the newest backup's plan puts it.
type layer struct {
	m    repository.BackupManifest
	base repository.BackupArchive
	tbs  []tablespacePlan
	// skipped are the oids of its tablespaces the newest backup no
	// longer holds, which are not restored.
	skipped []string
}

// manifestIgnore is ignore plus pg_tblspc/<oid> of each tablespace l
// skips: its backup_manifest lists their files, which are not restored.
func (l layer) manifestIgnore(ignore []string) []string {
	out := slices.Clone(ignore)
	for _, oid := range l.skipped {
		out = append(out, pgTblspcDir+"/"+oid)
	}
	return out
}

// planLayers plans every backup of chain (full backup first, the one
// restored last), given the newest backup's plan (planArchives).
func planLayers(chain []repository.BackupInfo, base repository.BackupArchive, tbs []tablespacePlan) ([]layer, error) {
	layers := make([]layer, len(chain))
	newest := len(chain) - 1
	layers[newest] = layer{m: *chain[newest].Manifest, base: base, tbs: tbs}
	for i, bi := range chain[:newest] {
		m := *bi.Manifest
		l := layer{m: m}
		haveBase := false
		for _, a := range m.Archives {
			if a.Name == baseArchive {
				if haveBase {
					return nil, fmt.Errorf("the manifest of backup %s lists %s twice: the manifest is damaged", m.ID, baseArchive)
				}
				l.base, haveBase = a, true
				continue
			}
			oid, ok := strings.CutSuffix(a.Name, ".tar")
			if !ok || !isDigits(oid) {
				return nil, fmt.Errorf("the manifest of backup %s lists archive %q: only base.tar and <oid>.tar are known; the manifest is damaged or from a newer walvault", m.ID, a.Name)
			}
			// A tablespace dropped before the newest backup is not
			// restored: nothing of it would remain.
			kept := false
			for _, t := range tbs {
				if t.oid == oid {
					t.archive = a
					l.tbs = append(l.tbs, t)
					kept = true
				}
			}
			if !kept {
				l.skipped = append(l.skipped, oid)
			}
		}
		if !haveBase {
			return nil, fmt.Errorf("the manifest of backup %s lists no %s: the manifest is damaged", m.ID, baseArchive)
		}
		if m.PGManifest.Key == "" {
			return nil, fmt.Errorf("backup %s, on which backup %s builds, has no PostgreSQL backup_manifest, so its restore could not be verified", m.ID, chain[newest].ID)
		}
		layers[i] = l
	}
	return layers, nil
}

// parts lists every object the restore of l reads.
func (l layer) parts() []repository.BackupPart {
	ps := append([]repository.BackupPart{l.m.PGManifest}, l.base.Parts...)
	for _, t := range l.tbs {
		ps = append(ps, t.archive.Parts...)
	}
	return ps
}

// maxPresenceChecks bounds the metadata requests checkChainPresent has in
// flight.
const maxPresenceChecks = 8

// checkChainPresent proves, before anything is written, that every object
// the restore of layers reads is in b with the stored size its manifest
// records: a chain restore that found a part of its last backup missing
// only after writing the full backup would have wasted hours. Checksums
// are verified as the parts stream.
func checkChainPresent(ctx context.Context, b storage.Backend, layers []layer) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxPresenceChecks)
	for _, l := range layers {
		for _, p := range l.parts() {
			g.Go(func() error {
				info, err := b.Stat(gctx, p.Key)
				if errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("%w: part %s of backup %s is missing from %s (%w): the backup chain is damaged; nothing was written; restore another backup", ErrCorrupt, p.Key, l.m.ID, b.Location(), err)
				}
				if err != nil {
					return fmt.Errorf("look for part %s of backup %s in %s: %w", p.Key, l.m.ID, b.Location(), err)
				}
				if p.StoredSize > 0 && info.Size > 0 && info.Size != p.StoredSize {
					return fmt.Errorf("%w: part %s of backup %s in %s has %d bytes, the manifest says %d: the backup chain is damaged; nothing was written; restore another backup", ErrCorrupt, p.Key, l.m.ID, b.Location(), info.Size, p.StoredSize)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// chainNames records what the newest backup of a chain holds, as manifest
// paths (tablespace files under pg_tblspc/<oid>/, INCREMENTAL.<name> as
// <name>, global/pg_control under its partial name): everything else is
// removed once it is applied. Memory: about 16 bytes a name (64-bit
// hashes), plus 16 for each reconstructed file.
type chainNames struct {
	seed    maphash.Seed
	mu      sync.Mutex
	names   map[uint64]struct{}
	lengths map[uint64]int64 // reconstructed files: the length their incremental gave
}

func newChainNames() *chainNames {
	return &chainNames{seed: maphash.MakeSeed(), names: map[uint64]struct{}{}, lengths: map[uint64]int64{}}
}

func (c *chainNames) key(p string) uint64 { return maphash.String(c.seed, p) }

func (c *chainNames) has(p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.names[c.key(p)]
	return ok
}

// chainSums follows the CRC-32C of each file of a chain's restore as the
// layers write and patch it (manifest paths as keys, hashed as in
// chainNames), so that the combined backup_manifest need not read the
// reconstructed files back. A file is known from the moment one layer
// wrote it whole and its bytes matched that layer's backup_manifest, and
// stays known while incremental files patch it (see applyIncremental);
// one that shrank, or that was never checked as written, is not.
type chainSums struct {
	seed  maphash.Seed
	mu    sync.Mutex
	files map[uint64]fileSum
}

// fileSum is a file's length and CRC-32C, when known.
type fileSum struct {
	size  int64
	crc   uint32
	known bool
}

func newChainSums() *chainSums {
	return &chainSums{seed: maphash.MakeSeed(), files: map[uint64]fileSum{}}
}

// get returns what is known of the file at manifest path p (nothing on nil).
func (c *chainSums) get(p string) fileSum {
	if c == nil {
		return fileSum{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.files[maphash.String(c.seed, p)]
}

// set records the file at p as s says, known or not (nothing on nil).
func (c *chainSums) set(p string, s fileSum) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[maphash.String(c.seed, p)] = s
}

// layerApply applies one archive of an incremental backup onto what the
// chain's earlier backups left in the target.
type layerApply struct {
	// blockSize is the cluster's block size, from pg_control.
	blockSize int64
	// prefix is put before archive names to get manifest paths.
	prefix string
	// names, set for the chain's newest backup, records what it holds.
	names *chainNames
	// sums, when set, follows the CRC-32C of the files it patches.
	sums *chainSums
}

// forArchive is l for the archive whose manifest paths start with prefix.
func (l *layerApply) forArchive(prefix string) *layerApply {
	if l == nil {
		return nil
	}
	c := *l
	c.prefix = prefix
	return &c
}

// saw records an entry of the newest backup (nothing on nil).
func (l *layerApply) saw(name string) {
	if l == nil || l.names == nil {
		return
	}
	l.names.mu.Lock()
	l.names.names[l.names.key(l.prefix+name)] = struct{}{}
	l.names.mu.Unlock()
}

// incrementalTarget says whether name is an incremental file to apply and
// which file it reconstructs. Like pg_combinebackup, only names in the
// directories that hold relations count (base/*, global, tablespaces), so
// a user's file called INCREMENTAL.something elsewhere is a plain file.
func (l *layerApply) incrementalTarget(name string) (string, bool) {
	if l == nil {
		return "", false
	}
	target, ok := IncrementalTarget(name)
	if !ok {
		return "", false
	}
	dir := path.Dir(name)
	if l.prefix == "" && !strings.HasPrefix(dir, "base/") && dir != "global" && !strings.HasPrefix(dir, pgTblspcDir+"/") {
		return "", false
	}
	return target, true
}

// place makes a verified entry of an incremental backup visible: a file
// replaces the earlier backups' one, an incremental file is applied to it.
func (l *layerApply) place(s *stager, e staged) error {
	if e.kind == stagedIncremental {
		return l.apply(s, e)
	}
	fi, lerr := s.root.Lstat(e.name)
	exists := lerr == nil
	switch e.kind {
	case stagedDir:
		if exists && !fi.IsDir() {
			if err := s.root.Remove(e.name); err != nil {
				return fmt.Errorf("replace %s with a directory: %w", e.name, err)
			}
		}
		return makeDir(s.root, e.name)
	case stagedSymlink:
		if exists {
			if err := s.root.RemoveAll(e.name); err != nil {
				return fmt.Errorf("replace %s with a symlink: %w", e.name, err)
			}
		}
		return makeSymlink(s.root, e.name, e.target)
	}
	if exists && fi.IsDir() {
		if err := s.root.RemoveAll(e.name); err != nil {
			return fmt.Errorf("replace directory %s with a file: %w", e.name, err)
		}
	}
	if e.data != nil {
		return rewriteFile(s.root, e, exists && fi.Mode().IsRegular())
	}
	return s.moveIn(e)
}

// rewriteFile writes a held file's content over the regular file the
// chain left there (its inode reused: no new one, no rename), or creates
// it, replacing whatever else is there.
func rewriteFile(root *os.Root, e staged, regular bool) error {
	flags := os.O_WRONLY | os.O_TRUNC
	if !regular {
		if err := root.Remove(e.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replace %s: %w", e.name, err)
		}
		if dir := path.Dir(e.name); dir != "." {
			if err := makeDir(root, dir); err != nil {
				return err
			}
		}
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	}
	f, err := root.OpenFile(e.name, flags, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", e.name, err)
	}
	_, err = f.Write(e.data)
	if err == nil {
		err = f.Chmod(e.perm)
	}
	if err == nil {
		if err = setTimes(f, root, e.name, e.mtime); err != nil {
			err = fmt.Errorf("set the time: %w", err)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", e.name, err)
	}
	return nil
}

// apply merges the incremental file e, held in memory or staged as a
// file (removed once applied), into the file it reconstructs.
func (l *layerApply) apply(s *stager, e staged) error {
	from := stagingDir + "/" + e.name
	var r io.Reader
	var size int64
	if e.data != nil {
		r, size = bytes.NewReader(e.data), int64(len(e.data))
	} else {
		inc, err := s.root.Open(from)
		if err != nil {
			return err
		}
		defer inc.Close()
		fi, err := inc.Stat()
		if err != nil {
			return err
		}
		r, size = bufio.NewReaderSize(inc, 256<<10), fi.Size()
	}
	h, err := ReadIncrementalHeader(r, l.blockSize)
	if err != nil {
		return fmt.Errorf("%s: %w", e.name, err)
	}
	if h.FileSize() != size {
		return fmt.Errorf("%w: %s has %d bytes, its header accounts for %d with %d-byte blocks (pg_control's block size): the backup is damaged", ErrCorrupt, e.name, size, h.FileSize(), l.blockSize)
	}
	f, err := s.root.OpenFile(e.target, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s changes %s, which no earlier backup of the chain holds: the chain is inconsistent", ErrCorrupt, e.name, e.target)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", e.target, err)
	}
	err = l.applyTo(s.root, f, e, h, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("apply %s to %s: %w", e.name, e.target, err)
	}
	if l.names != nil {
		l.names.mu.Lock()
		l.names.lengths[l.names.key(l.prefix+e.target)] = h.Length()
		l.names.mu.Unlock()
	}
	if e.data != nil {
		return nil
	}
	return s.root.Remove(from)
}

// applyTo applies the incremental file e (header h, blocks in r) to f,
// its target opened under root, and gives f e's mode and time. Most of a
// layer's incremental files change nothing (no block, the same length)
// in a file whose mode and time are already e's: those cost a stat.
func (l *layerApply) applyTo(root *os.Root, f *os.File, e staged, h IncrementalHeader, r io.Reader) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var sum *fileSum
	if l.sums != nil {
		known := l.sums.get(l.prefix + e.target)
		if fi.Size() != known.size {
			known = fileSum{}
		}
		sum = &known
	}
	changed := len(h.Blocks) > 0 || fi.Size() != h.Length()
	if changed {
		if err := applyIncremental(f, h, r, sum); err != nil {
			return err
		}
	}
	if sum != nil {
		l.sums.set(l.prefix+e.target, *sum)
	}
	if fi.Mode().Perm() != e.perm {
		if err := f.Chmod(e.perm); err != nil {
			return err
		}
	}
	if changed || !fi.ModTime().Equal(e.mtime) {
		if err := setTimes(f, root, e.target, e.mtime); err != nil {
			return fmt.Errorf("set the time: %w", err)
		}
	}
	return nil
}

// floatFormatBytes is pg_control's floatFormat field, the double 1234567.0
// PostgreSQL stores to check the float format; blcksz and relseg_size
// follow it in every version with incremental backups.
var floatFormatBytes = binary.LittleEndian.AppendUint64(nil, math.Float64bits(1234567.0))

// controlBlockSize reads the cluster's block size from the restored
// pg_control (under its partial name), as PostgreSQL's tools take it
// from the control file.
func controlBlockSize(root *os.Root) (int64, error) {
	f, err := root.Open(pgControlPartial)
	if err != nil {
		return 0, fmt.Errorf("read the block size from %s: %w", pgControlName, err)
	}
	defer f.Close()
	var buf [512]byte // PG_CONTROL_MAX_SAFE_SIZE: the part that matters
	n, err := io.ReadFull(f, buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, fmt.Errorf("read %s: %w", pgControlName, err)
	}
	for off := 0; off+16 <= n; off += 8 {
		if !bytes.Equal(buf[off:off+8], floatFormatBytes) {
			continue
		}
		bs := binary.LittleEndian.Uint32(buf[off+8:])
		if bs < 1024 || bs > 32768 || bs&(bs-1) != 0 {
			break
		}
		return int64(bs), nil
	}
	return 0, fmt.Errorf("%w: %s holds no block size walvault can read (a little-endian PostgreSQL 17 or later control file was expected)", ErrCorrupt, pgControlName)
}

// maxBackupLabel bounds the backup_label read into memory.
const maxBackupLabel = 64 << 10

// backupLabelLines reads backup_label from root as lines.
func readBackupLabel(root *os.Root) ([]byte, error) {
	f, err := root.Open(backupLabelName)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", backupLabelName, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBackupLabel+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", backupLabelName, err)
	}
	if len(data) > maxBackupLabel {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, backupLabelName, maxBackupLabel)
	}
	return data, nil
}

// Lines of an incremental backup's backup_label naming its parent.
const (
	labelIncrementalLSN = "INCREMENTAL FROM LSN: "
	labelIncrementalTLI = "INCREMENTAL FROM TLI: "
)

// labelValue is the rest of the first line of label starting with key.
func labelValue(label []byte, key string) (string, bool) {
	for line := range strings.Lines(string(label)) {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimRight(v, "\r\n"), true
		}
	}
	return "", false
}

// checkLabelLink checks, as pg_combinebackup does, that the backup_label
// l's archive left in root says it builds on parent (where parent
// started), and that a full backup's says nothing of the kind.
func checkLabelLink(root *os.Root, m repository.BackupManifest, parent *repository.BackupManifest) error {
	label, err := readBackupLabel(root)
	if err != nil {
		return err
	}
	from, ok := labelValue(label, labelIncrementalLSN)
	if parent == nil {
		if ok {
			return fmt.Errorf("%w: backup %s is recorded as a full backup, but its %s says it is incremental (from LSN %s): the repository is damaged", ErrCorrupt, m.ID, backupLabelName, from)
		}
		return nil
	}
	want, err1 := wal.ParseLSN(parent.StartLSN)
	got, err2 := wal.ParseLSN(from)
	if !ok || err1 != nil || err2 != nil || got != want {
		return fmt.Errorf("%w: backup %s builds on backup %s, which started at LSN %s, but its %s says it is incremental from LSN %q: the chain is inconsistent; restore another backup", ErrCorrupt, m.ID, parent.ID, parent.StartLSN, backupLabelName, from)
	}
	return nil
}

// rewriteBackupLabel drops the INCREMENTAL FROM lines from the restored
// backup_label, as pg_combinebackup does: PostgreSQL refuses to start
// from a backup_label that says it is incremental.
func rewriteBackupLabel(root *os.Root) error {
	label, err := readBackupLabel(root)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range strings.Lines(string(label)) {
		if !strings.HasPrefix(line, labelIncrementalLSN) && !strings.HasPrefix(line, labelIncrementalTLI) {
			out.WriteString(line)
		}
	}
	fi, err := root.Stat(backupLabelName)
	if err != nil {
		return err
	}
	if err := root.WriteFile(backupLabelName, out.Bytes(), fi.Mode().Perm()); err != nil {
		return fmt.Errorf("write %s: %w", backupLabelName, err)
	}
	return root.Chtimes(backupLabelName, fi.ModTime(), fi.ModTime())
}

// pruneToNewest removes from dir (the data directory, or a tablespace
// location whose manifest paths start with prefix) every entry the
// chain's newest backup does not hold: files of dropped relations,
// directories of dropped databases.
func pruneToNewest(ctx context.Context, root *os.Root, dir, prefix string, names *chainNames) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." || (prefix == "" && rel == pgManifestPartial) || names.has(prefix+rel) {
			return nil
		}
		if err := root.RemoveAll(rel); err != nil {
			return fmt.Errorf("remove %s, which the newest backup of the chain does not hold: %w", rel, err)
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}

// combinedManifestPartial is where writeCombinedManifest writes.
const combinedManifestPartial = "." + pgManifestFile + ".walvault-combined"

// writeCombinedManifest turns the newest backup's backup_manifest (at
// pgManifestPartial in root) into the manifest of the reconstructed data
// directory, as pg_combinebackup writes one: each INCREMENTAL.<name>
// entry becomes <name>, with the size and checksum (the entry's
// algorithm) of the reconstructed file, which must have the length its
// incremental file gave; backup_label's entry gets the rewritten file's;
// every other entry and the WAL ranges stay as the backup recorded them.
// tablespaces maps each tablespace oid to its restored location. A
// reconstructed file whose CRC-32C sums followed through the chain is not
// read (only its size and time are looked up); the others are read back.
// It returns how many files were reconstructed and how many of them read.
func writeCombinedManifest(ctx context.Context, root *os.Root, tablespaces map[string]*os.Root, names *chainNames, sums *chainSums) (st combinedStats, err error) {
	// A first pass for what precedes the files (version, system
	// identifier) and follows them (WAL ranges): the manifest is small
	// next to the files, which are read once, in the second pass.
	src, err := root.Open(pgManifestPartial)
	if err != nil {
		return st, err
	}
	defer src.Close()
	mh, err := readManifest(ctx, src, func(manifestFile) error { return nil })
	if err != nil {
		return st, err
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return st, err
	}
	out, err := root.OpenFile(combinedManifestPartial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return st, fmt.Errorf("write %s: %w", pgManifestFile, err)
	}
	defer out.Close()
	sum := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(out, sum), 256<<10)
	fmt.Fprintf(w, "{ \"PostgreSQL-Backup-Manifest-Version\": %s,\n", mh.version)
	if mh.systemID != "" {
		fmt.Fprintf(w, "\"System-Identifier\": %s,\n", mh.systemID)
	}
	w.WriteString("\"Files\": [")
	// locate is the root and name a manifest path is found under.
	locate := func(name string) (*os.Root, string) {
		if rest, ok := strings.CutPrefix(name, pgTblspcDir+"/"); ok {
			oid, rel, _ := strings.Cut(rest, "/")
			if tr := tablespaces[oid]; tr != nil {
				return tr, rel
			}
		}
		return root, name
	}
	open := func(name string) (*os.File, error) {
		r, rel := locate(name)
		return r.Open(rel)
	}
	buf := make([]byte, 1<<20)
	first := true
	_, err = readManifest(ctx, src, func(mf manifestFile) error {
		p, err := mf.cleanPath()
		if err != nil {
			return err
		}
		if target, ok := combinedTarget(p); ok {
			names.mu.Lock()
			want, ok := names.lengths[names.key(target)]
			names.mu.Unlock()
			if !ok {
				return fmt.Errorf("%w: %s lists %s, which the newest backup of the chain did not carry", ErrVerify, pgManifestFile, p)
			}
			mf.setPath(target)
			if sum := sums.get(target); sum.known && sum.size == want && strings.EqualFold(mf.Algorithm, "CRC32C") {
				r, rel := locate(target)
				if err := fillFromSum(&mf, r, rel, sum); err != nil {
					return err
				}
			} else {
				if err := fillFromFile(&mf, open, target, want, buf); err != nil {
					return err
				}
				st.Read++
			}
			st.Files++
			st.Bytes += mf.Size
		} else if p == backupLabelName {
			if err := fillFromFile(&mf, open, p, -1, buf); err != nil {
				return err
			}
		}
		if first {
			w.WriteString("\n")
			first = false
		} else {
			w.WriteString(",\n")
		}
		return writeManifestEntry(w, mf)
	})
	if err != nil {
		return st, err
	}
	w.WriteString("\n],\n")
	if len(mh.walRanges) > 0 {
		w.WriteString("\"WAL-Ranges\": ")
		w.Write(mh.walRanges)
		w.WriteString(",\n")
	}
	if err := w.Flush(); err != nil {
		return st, fmt.Errorf("write %s: %w", pgManifestFile, err)
	}
	// The checksum covers everything before its own line.
	if _, err := fmt.Fprintf(out, "\"Manifest-Checksum\": \"%x\"}\n", sum.Sum(nil)); err != nil {
		return st, fmt.Errorf("write %s: %w", pgManifestFile, err)
	}
	if err := out.Close(); err != nil {
		return st, fmt.Errorf("write %s: %w", pgManifestFile, err)
	}
	src.Close()
	if err := root.Rename(combinedManifestPartial, pgManifestPartial); err != nil {
		return st, fmt.Errorf("put the combined %s in place: %w", pgManifestFile, err)
	}
	return st, nil
}

// combinedTarget says whether the manifest path p is an incremental file
// pg_combinebackup reconstructs, and the path of the file it becomes.
func combinedTarget(p string) (string, bool) {
	if rest, ok := strings.CutPrefix(p, pgTblspcDir+"/"); ok {
		if _, rel, ok := strings.Cut(rest, "/"); ok {
			l := layerApply{prefix: "x"} // a tablespace: every directory counts
			if _, ok := l.incrementalTarget(rel); ok {
				t, _ := IncrementalTarget(p)
				return t, true
			}
		}
		return "", false
	}
	return (&layerApply{}).incrementalTarget(p)
}

// setPath renames the entry, keeping its encoding.
func (mf *manifestFile) setPath(p string) {
	if mf.EncodedPath != "" {
		mf.EncodedPath = hex.EncodeToString([]byte(p))
		return
	}
	mf.Path = p
}

// combinedStats counts the files writeCombinedManifest reconstructed, their
// bytes, and how many of them it read back for their checksums.
type combinedStats struct {
	VerifyStats
	Read int
}

// fillFromSum sets mf's size, time and checksum from the restored file
// name under r, whose length and CRC-32C sum followed through the chain.
func fillFromSum(mf *manifestFile, r *os.Root, name string, sum fileSum) error {
	fi, err := r.Stat(name)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if fi.Size() != sum.size {
		return fmt.Errorf("%w: %s has %d bytes, its incremental files made %d", ErrVerify, name, fi.Size(), sum.size)
	}
	mf.Checksum = hex.EncodeToString(binary.LittleEndian.AppendUint32(nil, sum.crc))
	mf.setStat(fi)
	return nil
}

// setStat sets mf's size and time from the restored file's, as PostgreSQL
// writes them.
func (mf *manifestFile) setStat(fi fs.FileInfo) {
	mf.Size = fi.Size()
	mf.Modified = fi.ModTime().UTC().Format("2006-01-02 15:04:05 GMT")
}

// fillFromFile sets mf's size, time and checksum from the restored file
// name (a manifest path), which must have want bytes (unless want < 0).
func fillFromFile(mf *manifestFile, open func(string) (*os.File, error), name string, want int64, buf []byte) error {
	f, err := open(name)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if want >= 0 && fi.Size() != want {
		return fmt.Errorf("%w: %s was reconstructed with %d bytes, its incremental file says %d", ErrVerify, name, fi.Size(), want)
	}
	h, err := newManifestHash(mf.Algorithm)
	if err != nil {
		return fmt.Errorf("%w: %s: file %s: %w", ErrVerify, pgManifestFile, name, err)
	}
	if h != nil {
		n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if n != fi.Size() {
			return fmt.Errorf("%s changed size while being read", name)
		}
		mf.Checksum = hex.EncodeToString(h.Sum(nil))
	}
	mf.setStat(fi)
	return nil
}

// writeManifestEntry writes one file entry the way PostgreSQL does.
func writeManifestEntry(w *bufio.Writer, mf manifestFile) error {
	if mf.EncodedPath != "" {
		fmt.Fprintf(w, "{ \"Encoded-Path\": \"%s\", ", mf.EncodedPath)
	} else {
		p, err := jsonString(mf.Path)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "{ \"Path\": %s, ", p)
	}
	fmt.Fprintf(w, "\"Size\": %d, \"Last-Modified\": \"%s\"", mf.Size, mf.Modified)
	if alg := strings.ToUpper(mf.Algorithm); alg != "" && alg != "NONE" {
		fmt.Fprintf(w, ", \"Checksum-Algorithm\": \"%s\", \"Checksum\": \"%s\"", alg, mf.Checksum)
	}
	_, err := w.WriteString(" }")
	return err
}

// jsonString is s as a JSON string, with no HTML escaping.
func jsonString(s string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
