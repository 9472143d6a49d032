package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/walvault/walvault/storage"
)

const (
	// tempPrefix starts every temp file's name. List skips such names and
	// keys may not use them, so a crash never exposes a partial object.
	tempPrefix = ".tmp-"
	// dirMode is the mode of directories Put creates (less the umask).
	dirMode = 0o750
	// fileMode is the mode of every stored object: objects are immutable.
	fileMode = 0o444
)

// Backend stores objects as files under a root directory. It is safe for
// concurrent use: it holds no mutable state.
type Backend struct {
	root string
	// rootInfo identifies the root directory as it was when New ran, so a
	// root that disappears or is replaced (an unmounted disk) is reported as
	// an error instead of making every key look missing.
	rootInfo os.FileInfo
	// owner is the root's owner and group, which every new file and
	// directory takes, whoever runs the command.
	owner owner
}

var _ storage.Backend = (*Backend)(nil)

// New returns a Backend rooted at root, which must be an existing directory:
// it is never created here (see the comment inside).
func New(root string) (*Backend, error) {
	if root == "" {
		return nil, errors.New("file storage: empty root directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("file storage: root %s: %w", root, err)
	}
	abs = filepath.Clean(abs)
	// The root is never created here: a repository on an unmounted disk
	// must not look like a new, empty one (wal-fetch would then answer
	// "not in the archive" and end recovery early).
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, storage.Permanent(fmt.Errorf("repository directory %s does not exist: create it (owned by the user PostgreSQL runs as) or fix the repository URL", abs))
	}
	if err != nil {
		return nil, fmt.Errorf("file storage: root %s: %w", abs, classify(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("file storage: root %s is not a directory", abs)
	}
	return &Backend{root: abs, rootInfo: fi, owner: ownerOf(fi)}, nil
}

// Location returns "file://" followed by the root directory.
func (b *Backend) Location() string { return "file://" + b.root }

// Close does nothing: the backend holds no resources.
func (b *Backend) Close() error { return nil }

// path checks key and returns the file that holds it. A bad key is a
// permanent error: no retry can make it valid.
func (b *Backend) path(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", storage.Permanent(err)
	}
	for _, part := range strings.Split(key, "/") {
		if strings.HasPrefix(part, tempPrefix) {
			return "", storage.Permanent(fmt.Errorf("invalid key %q: an element starting with %q is reserved for temp files", key, tempPrefix))
		}
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

// checkRoot reports an error when the root directory is no longer the one New
// opened. It runs before a missing file is reported as storage.ErrNotFound:
// "not found" must be an authoritative answer, and a missing or replaced root
// (an unmounted disk, a deleted repository) is not one.
func (b *Backend) checkRoot() error {
	fi, err := os.Stat(b.root)
	if err != nil {
		return fmt.Errorf("repository root %s is unavailable (is the disk mounted?): %w", b.root, classify(err))
	}
	if !os.SameFile(fi, b.rootInfo) {
		return fmt.Errorf("repository root %s is no longer the directory that was opened (was a disk unmounted or the directory replaced?)", b.root)
	}
	return nil
}

// notFoundOr turns a missing file at path into storage.ErrNotFound, and
// classifies every other error. "Not found" must be authoritative, so a
// missing file is reported as not found only when the root is still the one
// New opened and no dangling symbolic link (a disk mounted elsewhere and now
// missing) lies between the root and path.
func (b *Backend) notFoundOr(path string, err error) error {
	if !errors.Is(err, os.ErrNotExist) {
		return classify(err)
	}
	if err := b.checkRoot(); err != nil {
		return err
	}
	// Find the nearest existing element of path; the rest is missing.
	for p := path; p != b.root && strings.HasPrefix(p, b.root); p = filepath.Dir(p) {
		fi, lerr := os.Lstat(p)
		if errors.Is(lerr, os.ErrNotExist) {
			continue
		}
		if lerr != nil {
			return classify(lerr)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if _, serr := os.Stat(p); serr != nil {
				return fmt.Errorf("symbolic link %s leads to a missing target (is a disk unmounted?): %w", p, classify(serr))
			}
		}
		break
	}
	return storage.ErrNotFound
}

// errKeyIsDir says a key's path is a directory: other keys live under
// key + "/", and a path cannot be a file as well.
func errKeyIsDir(path string) error {
	return fmt.Errorf("%s is a directory holding other keys, not an object file (this backend cannot store both a key and keys under it)", path)
}

// isDir reports whether path is a directory (not following a symlink).
func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}
