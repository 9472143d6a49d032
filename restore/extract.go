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
// os.Root keeps every write beneath the root even through symlinks. Files
// get their mode and mtime; directories get theirs once all files are in.
// Nothing is fsynced here: the caller syncs the file system once at the end.
func extractTar(ctx context.Context, r io.Reader, root *os.Root, opts extractOptions) (extractResult, error) {
	var res extractResult
	var dirs []dirEntry
	tr := tar.NewReader(r)
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
		perm := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := makeDir(root, name); err != nil {
				return res, err
			}
			dirs = append(dirs, dirEntry{name, perm, hdr.ModTime})
		case tar.TypeReg: // archive/tar reports the old TypeRegA as TypeReg
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
				res.tablespaceMap = &heldFile{data: data, mode: perm, mtime: hdr.ModTime}
				continue
			case opts.base && name == backupLabelName:
				res.backupLabel = true
			case opts.base && name == pgControlName:
				res.pgControl = true
				name = pgControlPartial
			}
			if err := writeFile(root, name, tr, hdr, perm, buf); err != nil {
				return res, err
			}
			res.files++
			res.bytes += hdr.Size
		case tar.TypeSymlink:
			if err := makeSymlink(root, name, hdr.Linkname, opts); err != nil {
				return res, err
			}
		case tar.TypeLink:
			return res, fmt.Errorf("%w: %s is a hard link (to %s); PostgreSQL base backups have none", errUnsafeEntry, hdr.Name, hdr.Linkname)
		default:
			return res, fmt.Errorf("%w: %s has tar type %q (not a file, directory or symlink); PostgreSQL base backups have none", errUnsafeEntry, hdr.Name, hdr.Typeflag)
		}
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
// content, mode and mtime.
func writeFile(root *os.Root, name string, r io.Reader, hdr *tar.Header, perm fs.FileMode, buf []byte) error {
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
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, r, buf)
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
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
		return fmt.Errorf("set the time of %s: %w", name, err)
	}
	return nil
}

// makeSymlink recreates a symlink that stays inside the root. In base.tar,
// pg_tblspc/<oid> links (sent when no tablespace_map was asked for) are
// pointed at the tablespace's restored location instead.
func makeSymlink(root *os.Root, name, target string, opts extractOptions) error {
	if m := tablespaceLinkPattern().FindStringSubmatch(name); opts.base && m != nil {
		loc, ok := opts.tablespaceLinks[m[1]]
		if !ok {
			return fmt.Errorf("base.tar links tablespace %s to %s, but the backup has no archive for that tablespace: the backup is incomplete", m[1], target)
		}
		target = loc
	} else if target == "" || path.IsAbs(target) || !isLocal(path.Join(path.Dir(name), target)) {
		return fmt.Errorf("%w: symlink %s points to %s, outside the directory being restored", errUnsafeEntry, name, target)
	}
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
