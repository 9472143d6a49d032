package restore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/walvault/walvault/internal/osuser"
)

// ErrNotEmpty: a target directory exists and is not empty; restore never
// writes into one.
var ErrNotEmpty = errors.New("target directory is not empty")

// targetDir is a directory restore writes into (the data directory or a
// tablespace location) and how to undo that.
type targetDir struct {
	path     string // absolute, clean
	what     string // "data directory", "tablespace 16385 location"
	existed  bool
	origMode fs.FileMode
	// found is the existing directory as checkTargetDir saw it: create and
	// clean act on it only while the path still leads there.
	found fs.FileInfo
	// tookOver: restore, as root, took the existing directory from
	// origUID:origGID until its end (see create).
	tookOver         bool
	origUID, origGID int
	// planted: entries appeared in the existing directory after it was
	// checked; they are not restore's to remove.
	planted  bool
	created  string // topmost directory restore created ("" if none)
	prepared bool   // restore has written (or may have written) into it
}

// checkTargetDir makes sure path is absent or an empty directory, without
// changing anything.
func checkTargetDir(path, what string) (*targetDir, error) {
	d := &targetDir{path: path, what: what}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s %s exists and is not a directory; give a new or empty directory", ErrNotEmpty, what, path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(entries) > 0 {
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		hint := "give a new or empty directory; restore never writes into a non-empty one"
		switch {
		case slices.Contains(names, "postmaster.pid"):
			hint = "it holds postmaster.pid: a PostgreSQL server may be running on it. Never restore over a live cluster; give a new or empty directory"
		case slices.Contains(names, stagingDir):
			hint = "it holds an interrupted walvault restore (" + stagingDir + "); remove the directory's contents and restore again"
		case slices.Contains(names, "PG_VERSION") && slices.Contains(names, "global") && isFile(filepath.Join(path, pgControlPartial)):
			hint = "it holds an interrupted walvault restore (global/" + filepath.Base(pgControlPartial) + "); remove the directory's contents and restore again"
		case slices.Contains(names, "PG_VERSION"):
			hint = "it holds a PostgreSQL data directory; move it aside (or remove it) first, or restore elsewhere"
		case slices.Contains(names, "lost+found"):
			hint = "it holds lost+found, so it is probably a mount point; restore into a subdirectory of it"
		}
		shown := names
		if len(shown) > 5 {
			shown = append(shown[:5:5], "...")
		}
		return nil, fmt.Errorf("%w: %s %s contains %d entries (%s): %s", ErrNotEmpty, what, path, len(names), strings.Join(shown, ", "), hint)
	}
	d.existed, d.origMode, d.found = true, fi.Mode().Perm(), fi
	return d, nil
}

func isFile(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}

// create makes the directory (mode 0700, parents 0755 as needed) or sets an
// existing empty one to 0700. As root, restore also takes an existing one
// over until the end hands everything to the cluster's owner: whoever
// owns it could otherwise set its mode back and put files of their own in
// (a pg_hba.conf) that the end would hand over as restored. It is checked
// empty again once taken.
func (d *targetDir) create() error {
	d.prepared = true
	if d.existed {
		return d.takeExisting()
	}
	top := d.path
	for p := filepath.Dir(d.path); p != filepath.Dir(p); p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
	}
	if err := os.MkdirAll(filepath.Dir(d.path), 0o755); err != nil {
		return fmt.Errorf("create the parent of %s %s: %w", d.what, d.path, err)
	}
	if top != d.path {
		d.created = top
	}
	if err := os.Mkdir(d.path, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Someone else made it meanwhile: not ours to clean.
			d.prepared = false
			return fmt.Errorf("%w: %s %s appeared while restore was starting", ErrNotEmpty, d.what, d.path)
		}
		return fmt.Errorf("create %s %s: %w", d.what, d.path, err)
	}
	d.created = top
	return nil
}

// openFound opens the existing directory and makes sure it is still the
// one checkTargetDir saw: another user who owned it, or may rename in its
// parent, could have put a link to another directory at its name meanwhile
// (explore24f F3), which restore must neither write into nor chmod.
func (d *targetDir) openFound() (*os.File, error) {
	f, err := os.Open(d.path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", d.what, d.path, err)
	}
	fi, err := f.Stat()
	if err == nil && !os.SameFile(fi, d.found) {
		err = errors.New("it is no longer the directory restore checked (replaced, or a link put at its name, since): find out who did")
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s %s: %w", d.what, d.path, err)
	}
	return f, nil
}

// takeExisting prepares an existing empty directory through a descriptor
// of the very one checked (see create).
func (d *targetDir) takeExisting() error {
	f, err := d.openFound()
	if err != nil {
		d.prepared = false // not ours to clean
		return err
	}
	defer f.Close()
	if os.Geteuid() == 0 {
		if uid, gid, ok := osuser.OwnerGroup(d.found); ok && uid != 0 {
			if err := f.Chown(0, 0); err != nil {
				return fmt.Errorf("%s %s: take it over while restoring: %w", d.what, d.path, err)
			}
			d.tookOver, d.origUID, d.origGID = true, uid, gid
		}
	}
	if err := f.Chmod(0o700); err != nil {
		return fmt.Errorf("%s %s: %w", d.what, d.path, err)
	}
	entries, err := f.ReadDir(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s %s: %w", d.what, d.path, err)
	}
	if len(entries) > 0 {
		d.planted = true
		return fmt.Errorf("%w: %s %s: %s appeared in it while restore was starting; find out who put it there (the directory's owner may), empty it and restore again",
			ErrNotEmpty, d.what, d.path, entries[0].Name())
	}
	return nil
}

// keepGroupAccess gives the restored directories group read access (mode
// 0750) when the backed-up cluster had it (initdb -g: PostgreSQL creates
// every directory 0750, and reads the data directory's mode to decide):
// the backup's directories keep their modes, but create made the top ones
// 0700, which would silently take away what the DBA chose.
func keepGroupAccess(root *os.Root, dirs []*targetDir) error {
	fi, err := root.Lstat("global")
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o070 != 0o050 {
		return nil // no group access (or no global/, which the restore's own checks report)
	}
	for _, d := range dirs {
		if err := os.Chmod(d.path, 0o750); err != nil {
			return fmt.Errorf("%s %s: give it group access as the backed-up cluster had: %w", d.what, d.path, err)
		}
	}
	return nil
}

// clean undoes create and everything written since: a directory restore
// created is removed (with the parents it created); one that existed empty
// is emptied and gets its mode back.
func (d *targetDir) clean() error {
	if !d.prepared {
		return nil
	}
	if d.created != "" {
		return os.RemoveAll(d.created)
	}
	if !d.existed {
		return nil
	}
	f, err := d.openFound()
	if err != nil {
		return err
	}
	defer f.Close()
	var first error
	if !d.planted {
		entries, err := f.ReadDir(-1)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(d.path, e.Name())); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := f.Chmod(d.origMode); err != nil && first == nil {
		first = err
	}
	if d.tookOver {
		if err := f.Chown(d.origUID, d.origGID); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// owner is the OS user restored files are handed to.
type owner struct {
	name     string
	uid, gid int
}

// resolveOwner looks up who should own the restored files. Only root can
// give files away: as root the default is "postgres"; as anyone else the
// files stay the caller's, and naming another user is an error.
func resolveOwner(name string) (*owner, error) {
	euid := os.Geteuid()
	if name == "" {
		if euid != 0 {
			return nil, nil
		}
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("owner of the restored files: %w; the data directory must belong to the user PostgreSQL runs as (create it, or name it with the owner setting)", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("owner %s has a non-numeric uid/gid %q/%q", name, u.Uid, u.Gid)
	}
	if uid == 0 {
		return nil, fmt.Errorf("owner %s is root: PostgreSQL refuses to run as root; name the user it runs as", name)
	}
	if euid != 0 {
		if uid == euid {
			return nil, nil
		}
		return nil, fmt.Errorf("only root can give the restored files to %s; run restore as %s (or as root)", name, name)
	}
	return &owner{name: name, uid: uid, gid: gid}, nil
}

// chownTree hands dir and everything beneath it to o, symlinks themselves
// (never their targets), but for dir itself: a tablespace location given
// as a link to a directory is handed over where it leads too.
func chownTree(dir string, o *owner) error {
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if err := os.Lchown(dir, o.uid, o.gid); err != nil {
			return fmt.Errorf("give %s to %s: %w", dir, o.name, err)
		}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return fmt.Errorf("give %s to %s: %w", dir, o.name, err)
		}
		dir = real
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, o.uid, o.gid); err != nil {
			return fmt.Errorf("give %s to %s: %w", p, o.name, err)
		}
		return nil
	})
}
