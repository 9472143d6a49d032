package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/walvault/walvault/storage"
)

var _ storage.Uploads = (*Backend)(nil)

// ListUploads lists the temp files under prefix: a Put that a crash
// (kill -9, power loss) stopped before its rename leaves one, which List
// never shows and nothing else removes. Its Key is the temp file's own
// path under the root and Started its last write. Symbolic links are not
// followed here.
func (b *Backend) ListUploads(ctx context.Context, prefix string, fn func(storage.Upload) error) error {
	what := strconv.Quote(prefix)
	if err := b.checkRoot(); err != nil {
		return storage.OpError("list temp files", what, err)
	}
	err := filepath.WalkDir(b.root, func(path string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return classify(err)
		}
		rel, rerr := filepath.Rel(b.root, path)
		if rerr != nil || rel == "." {
			return nil
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() && key == "lost+found" {
			return filepath.SkipDir // the file system's, as List passes it over
		}
		if d.IsDir() {
			// Descend only where keys can start with prefix.
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), tempPrefix) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, ierr := d.Info()
		if ierr != nil {
			return nil // removed meanwhile
		}
		return fn(storage.Upload{Key: key, Started: info.ModTime()})
	})
	if err != nil {
		return storage.OpError("list temp files", what, err)
	}
	return nil
}

// AbortUpload removes a temp file ListUploads returned. It refuses any
// other name: only a temp file is ever removed this way.
func (b *Backend) AbortUpload(_ context.Context, u storage.Upload) error {
	name := u.Key[strings.LastIndex(u.Key, "/")+1:]
	if !strings.HasPrefix(name, tempPrefix) || strings.Contains(u.Key, "..") || strings.HasPrefix(u.Key, "/") {
		return storage.OpError("remove temp file", u.Key, storage.Permanent(fmt.Errorf("%q is not a temp file of this repository", u.Key)))
	}
	if err := os.Remove(filepath.Join(b.root, filepath.FromSlash(u.Key))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return storage.OpError("remove temp file", u.Key, classify(err))
	}
	return nil
}
