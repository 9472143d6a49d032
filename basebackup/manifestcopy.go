package basebackup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
)

// In an encrypted repository a stored backup_manifest opens only with a
// secret key, and the host that runs backup-push holds public keys. An
// incremental backup must upload its parent's manifest in the clear, so
// backup-push keeps, where it runs, a plain copy of the backup_manifest of
// each backup it stores there; an incremental backup uploads the parent's
// copy once it has the size and keyed fingerprint the parent's record
// gives (the public keys suffice to compute that fingerprint).

// manifestCopiesKept is how many copies, the newest, stay per repository:
// the default parent is the newest backup, --parent may name an older one.
const manifestCopiesKept = 4

const manifestCopySuffix = ".backup_manifest"

// manifestCopies is one repository's directory of copies; the zero value
// keeps none.
type manifestCopies struct {
	dir string
	log *slog.Logger
}

// newManifestCopies is the directory under base for the repository at
// location (named by a hash of it: a location holds characters no file
// name should); base "" keeps none.
func newManifestCopies(base, location string, log *slog.Logger) manifestCopies {
	if base == "" {
		return manifestCopies{}
	}
	sum := sha256.Sum256([]byte(location))
	return manifestCopies{dir: filepath.Join(base, "manifests", hex.EncodeToString(sum[:8])), log: log}
}

func (c manifestCopies) path(id string) string {
	return filepath.Join(c.dir, id+manifestCopySuffix)
}

// create starts a copy of a backup_manifest on its way to the repository;
// nil when none is kept.
func (c manifestCopies) create() *manifestCopy {
	if c.dir == "" {
		return nil
	}
	w := &manifestCopy{c: c}
	if w.err = os.MkdirAll(c.dir, 0o700); w.err == nil {
		w.f, w.err = os.CreateTemp(c.dir, ".partial-*")
	}
	return w
}

// manifestCopy is a copy being written. Writing it never fails the backup:
// a failed copy costs the next incremental backup its parent, not this
// backup, so errors are kept for keep to report.
type manifestCopy struct {
	c   manifestCopies
	f   *os.File
	err error
}

func (w *manifestCopy) Write(p []byte) (int, error) {
	if w.err == nil {
		_, w.err = w.f.Write(p)
	}
	return len(p), nil
}

// keep names the copy after backup id, once the backup is recorded, and
// removes the copies older than the newest manifestCopiesKept. A failure
// is logged: the next incremental backup will say it has no parent copy.
func (w *manifestCopy) keep(id string) {
	if w == nil {
		return
	}
	if w.f != nil {
		if err := w.f.Close(); w.err == nil {
			w.err = err
		}
		if w.err == nil {
			w.err = os.Rename(w.f.Name(), w.c.path(id))
		}
	}
	if w.err == nil {
		w.f = nil // renamed: nothing to discard
		w.err = w.c.prune()
	}
	if w.err != nil {
		w.discard()
		w.c.log.Warn("could not keep a copy of the backup's backup_manifest, which the next incremental backup of this encrypted repository uploads: that one will need a full backup (or --fallback-full)",
			"backup_id", id, "dir", w.c.dir, "err", w.err)
	}
}

// discard removes an unfinished copy.
func (w *manifestCopy) discard() {
	if w != nil && w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
	}
}

// prune removes all but the newest manifestCopiesKept copies (backup ids
// sort by time).
func (c manifestCopies) prune() error {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), manifestCopySuffix); ok && repository.ValidateBackupID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids[:max(0, len(ids)-manifestCopiesKept)] {
		if err := os.Remove(c.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// open returns the copy of parent's backup_manifest, after checking it has
// the size and plaintext fingerprint parent's record gives, and the
// digest it has (for the upload to check again). A missing or different
// copy is an IncrementalImpossible refusal: a full backup is the way on.
func (c manifestCopies) open(parent *repository.BackupManifest, recipients *crypt.Recipients) (f *os.File, digest []byte, err error) {
	part := parent.PGManifest
	if c.dir == "" || recipients == nil {
		return nil, nil, impossible(fmt.Errorf("%w: parent backup %s is encrypted, and backup-push, holding only public keys, keeps no plain copy of its backup_manifest here (no cache directory: set HOME or XDG_CACHE_HOME): take a full backup", ErrRefused, parent.ID))
	}
	f, err = os.Open(c.path(parent.ID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, impossible(fmt.Errorf("%w: parent backup %s is encrypted, and backup-push, holding only public keys, uploads the plain copy of its backup_manifest it kept when it stored that backup, and %s has none (the backup was taken on another host or as another user, or it is older than the newest %d backups of this repository whose copies are kept here, or the copy was removed): take a full backup; incremental backups can build on it from this host",
			ErrRefused, parent.ID, c.dir, manifestCopiesKept))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("copy of the backup_manifest of parent backup %s: %w", parent.ID, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read the copy of the backup_manifest of parent backup %s: %w", parent.ID, err)
	}
	digest = h.Sum(nil)
	same, comparable := crypt.SameContent(recipients.FingerprintsOf(digest), part.Fingerprints)
	if n != part.RawSize || !same || !comparable {
		f.Close()
		why := "is not the one stored with the backup"
		if !comparable {
			why = "cannot be compared with the stored one: encrypt-to shares no key with that backup's"
		}
		return nil, nil, impossible(fmt.Errorf("%w: the copy of the backup_manifest of parent backup %s in %s %s: take a full backup", ErrRefused, parent.ID, c.path(parent.ID), why))
	}
	return f, digest, nil
}
