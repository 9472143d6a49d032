package restore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/walvault/walvault/crypt"
)

// Names in base.tar that extraction treats specially.
const (
	backupLabelName   = "backup_label"
	tablespaceMapName = "tablespace_map"
	pgControlName     = "global/pg_control"
	// pgControlPartial is where global/pg_control is written until the
	// restore is complete: without pg_control PostgreSQL refuses to start,
	// so a restore killed midway never leaves a directory that starts
	// (pgBackRest does the same).
	pgControlPartial = pgControlName + ".walvault-partial"
	pgTblspcDir      = "pg_tblspc"
)

// skippedNames are never written: PostgreSQL excludes them from base
// backups, and a running server's lock file must not appear in a restore.
var skippedNames = map[string]bool{"postmaster.pid": true, "postmaster.opts": true}

// maxTablespaceMap bounds the tablespace_map held in memory.
const maxTablespaceMap = 1 << 20

// tablespaceLinkPattern is compiled on first use: package initialisation
// runs in every walvault process, wal-push and wal-fetch included.
var tablespaceLinkPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^pg_tblspc/([0-9]+)$`) })

// errUnsafeEntry: the archive holds an entry that would write outside its
// target directory, or of a kind restore does not create.
var errUnsafeEntry = errors.New("unsafe archive entry")

// extractOptions says how to extract one archive.
type extractOptions struct {
	// base marks base.tar: pg_control is held back, tablespace_map is kept
	// in memory (the caller writes it, remapped), and pg_tblspc/<oid>
	// symlinks point at tablespaceLinks[oid].
	base            bool
	tablespaceLinks map[string]string
	// ids decrypt the archive's parts when they are encrypted.
	ids *crypt.Identities
	// verified says up to which raw offset of the stream the bytes are
	// proven (partStream.Verified); nil trusts each byte once read.
	verified func() int64
	// check, when set, checks every regular file against PostgreSQL's
	// backup_manifest as it is written; manifestPrefix is put before entry
	// names to get the manifest's path ("pg_tblspc/<oid>/" in a
	// tablespace archive).
	check          *manifestCheck
	manifestPrefix string
	// promoted, when set, is called after entries were made visible (a
	// test's observer).
	promoted func()
	// layer, when set, applies the archive onto what the earlier backups
	// of an incremental chain left in root (see layerApply).
	layer *layerApply
	// sums, in a chain's restore, records the CRC-32C of each file
	// written whole and found to match backup_manifest (see chainSums).
	sums *chainSums
}

// extractResult is what extraction saw.
type extractResult struct {
	files int
	bytes int64 // bytes of regular files
	// base.tar only:
	backupLabel   bool
	pgControl     bool
	tablespaceMap *heldFile // nil when base.tar has none
}

// heldFile is a small file kept in memory instead of being written.
type heldFile struct {
	data  []byte
	mode  fs.FileMode
	mtime time.Time
}

type dirEntry struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// extractTar writes the tar stream r into root. It refuses entries that are
// absolute, contain "..", or are symlinks pointing outside the root (except
// base.tar's pg_tblspc links, which it points at the restored tablespaces);
// os.Root keeps every write beneath the root even through symlinks.
//
// Nothing unverified is ever visible in root: files are written into a
// hidden staging directory (stagingDir) and moved into place, directories
// and symlinks created, only once every byte up to the entry's end is
// verified (opts.verified) and, with opts.check, the file matched
// backup_manifest. On failure the staging directory is removed; what was
// promoted is verified content the caller removes.
//
// Files get their mode and mtime; directories get theirs once all files
// are in. The stream is read to its end (so every part is verified).
// Nothing is fsynced here: the caller syncs the file system once at the end.
func extractTar(ctx context.Context, r io.Reader, root *os.Root, opts extractOptions) (res extractResult, err error) {
	st, err := newStager(root, opts.verified, opts.promoted)
	if err != nil {
		return res, err
	}
	st.layer = opts.layer
	defer func() {
		if cerr := st.close(); err == nil {
			err = cerr
		}
	}()
	var dirs []dirEntry
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read tar stream: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return res, err
		}
		if name == "." {
			continue // the target directory itself: restore sets its mode
		}
		if first, _, _ := strings.Cut(name, "/"); first == stagingDir {
			return res, fmt.Errorf("%w: %s has the name restore stages files under", errUnsafeEntry, hdr.Name)
		}
		perm := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			st.add(staged{name: name, kind: stagedDir}, cr.n)
			opts.layer.saw(name)
			dirs = append(dirs, dirEntry{name, perm, hdr.ModTime})
		case tar.TypeReg: // archive/tar reports the old TypeRegA as TypeReg
			checkName := opts.manifestPrefix + name
			switch {
			case opts.base && skippedNames[name]:
				continue
			case opts.base && name == tablespaceMapName:
				data, err := io.ReadAll(io.LimitReader(tr, maxTablespaceMap+1))
				if err != nil {
					return res, fmt.Errorf("read %s: %w", name, err)
				}
				if len(data) > maxTablespaceMap {
					return res, fmt.Errorf("%w: %s is larger than %d bytes", errUnsafeEntry, name, maxTablespaceMap)
				}
				if err := opts.check.whole(checkName, data); err != nil {
					return res, err
				}
				res.tablespaceMap = &heldFile{data: data, mode: perm, mtime: hdr.ModTime}
				continue
			case opts.base && name == backupLabelName:
				res.backupLabel = true
			case opts.base && name == pgControlName:
				res.pgControl = true
				name = pgControlPartial
			}
			e := staged{name: name, kind: stagedFile, perm: perm, mtime: hdr.ModTime}
			if target, ok := opts.layer.incrementalTarget(name); ok {
				e.kind, e.target = stagedIncremental, target
			}
			fc, err := opts.check.begin(checkName, hdr.Size)
			if err != nil {
				return res, err
			}
			// An incremental backup's files wait in memory while they
			// may: placing them rewrites what the chain left.
			if opts.layer != nil && st.canHold(hdr.Size) {
				if e.data, err = readChecked(tr, hdr, fc); err != nil {
					return res, fmt.Errorf("extract %s: %w", name, err)
				}
			} else if err := writeFile(st.stage, name, tr, hdr, perm, buf, fc); err != nil {
				return res, err
			}
			if err := fc.finish(); err != nil {
				return res, err
			}
			if e.kind != stagedIncremental {
				opts.sums.set(checkName, fc.verifiedSum())
			}
			st.add(e, cr.n)
			if e.kind == stagedIncremental {
				opts.layer.saw(e.target)
			} else {
				opts.layer.saw(name)
			}
			res.files++
			res.bytes += hdr.Size
		case tar.TypeSymlink:
			target, err := symlinkTarget(name, hdr.Linkname, opts)
			if err != nil {
				return res, err
			}
			st.add(staged{name: name, kind: stagedSymlink, target: target}, cr.n)
			opts.layer.saw(name)
		case tar.TypeLink:
			return res, fmt.Errorf("%w: %s is a hard link (to %s); PostgreSQL base backups have none", errUnsafeEntry, hdr.Name, hdr.Linkname)
		default:
			return res, fmt.Errorf("%w: %s has tar type %q (not a file, directory or symlink); PostgreSQL base backups have none", errUnsafeEntry, hdr.Name, hdr.Typeflag)
		}
		if err := st.promote(); err != nil {
			return res, err
		}
	}
	// Read to the end: the padding after the end marker belongs to the
	// last part, which is verified only once it is read.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return res, fmt.Errorf("read tar stream: %w", err)
	}
	if err := st.promoteAll(cr.n); err != nil {
		return res, err
	}
	// Directory modes and times last, deepest first: writing a file into
	// a directory changes its mtime, and a read-only mode would stop us.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := root.Chmod(d.name, d.mode); err != nil {
			return res, fmt.Errorf("chmod %s: %w", d.name, err)
		}
		if err := root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return res, fmt.Errorf("set the time of %s: %w", d.name, err)
		}
	}
	return res, nil
}

// countingReader counts the bytes read through it: the tar reader's
// position in the raw stream.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// entryName cleans a tar entry name into a relative slash path, refusing
// absolute names and any ".." element.
func entryName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: empty or NUL-containing name %q", errUnsafeEntry, name)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q is an absolute path", errUnsafeEntry, name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%w: %q contains \"..\"", errUnsafeEntry, name)
		}
	}
	return path.Clean(name), nil
}

// makeDir creates a directory (and missing parents), accepting one that
// already exists as a directory.
func makeDir(root *os.Root, name string) error {
	err := root.MkdirAll(name, 0o700)
	if err == nil {
		fi, err := root.Lstat(name)
		if err == nil && !fi.IsDir() {
			return fmt.Errorf("%w: directory %s already exists as a %v", errUnsafeEntry, name, fi.Mode().Type())
		}
		return nil
	}
	return fmt.Errorf("create directory %s: %w", name, err)
}

// writeFile creates name (never replacing anything) with the entry's
// content, mode and mtime; fc, when set, sees every byte written.
func writeFile(root *os.Root, name string, r io.Reader, hdr *tar.Header, perm fs.FileMode, buf []byte, fc *fileCheck) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if dir := path.Dir(name); dir != "." {
			if err := makeDir(root, dir); err != nil {
				return err
			}
		}
		f, err = root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s appears twice in the archive", errUnsafeEntry, name)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	// Hide ReadFrom so CopyBuffer uses buf (large writes) rather than
	// os.File's 32 KiB fallback.
	var w io.Writer = struct{ io.Writer }{f}
	if fc != nil {
		w = &checkedWriter{f: f, fc: fc}
	}
	n, err := io.CopyBuffer(w, r, buf)
	if err == nil && n != hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("extract %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if err := setTimes(f, root, name, hdr.ModTime); err != nil {
		f.Close()
		return fmt.Errorf("set the time of %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// readChecked reads an entry's content into memory; fc, when set, sees
// every byte.
func readChecked(r io.Reader, hdr *tar.Header, fc *fileCheck) ([]byte, error) {
	data := make([]byte, hdr.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, unexpectedEOF(err)
	}
	if fc != nil {
		fc.write(data)
	}
	return data, nil
}

// checkedWriter writes to a file and hands what was written to a check.
type checkedWriter struct {
	f  *os.File
	fc *fileCheck
}

func (w *checkedWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.fc.write(p[:n])
	return n, err
}

// symlinkTarget checks a symlink entry and returns what it is to point
// at: a target that stays inside the root, or, for base.tar's
// pg_tblspc/<oid> links (sent when no tablespace_map was asked for), the
// tablespace's restored location.
func symlinkTarget(name, target string, opts extractOptions) (string, error) {
	if m := tablespaceLinkPattern().FindStringSubmatch(name); opts.base && m != nil {
		loc, ok := opts.tablespaceLinks[m[1]]
		if !ok {
			return "", fmt.Errorf("base.tar links tablespace %s to %s, but the backup has no archive for that tablespace: the backup is incomplete", m[1], target)
		}
		return loc, nil
	}
	if target == "" || path.IsAbs(target) || !isLocal(path.Join(path.Dir(name), target)) {
		return "", fmt.Errorf("%w: symlink %s points to %s, outside the directory being restored", errUnsafeEntry, name, target)
	}
	return target, nil
}

// makeSymlink creates a symlink (and missing parents).
func makeSymlink(root *os.Root, name, target string) error {
	if dir := path.Dir(name); dir != "." {
		if err := makeDir(root, dir); err != nil {
			return err
		}
	}
	if err := root.Symlink(target, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s appears twice in the archive", errUnsafeEntry, name)
		}
		return fmt.Errorf("create symlink %s: %w", name, err)
	}
	return nil
}

// isLocal reports whether a cleaned slash path stays beneath its base.
func isLocal(p string) bool {
	return p != ".." && !strings.HasPrefix(p, "../") && !path.IsAbs(p)
}
