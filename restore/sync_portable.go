//go:build !unix

package restore

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncTree makes everything written beneath dir durable by syncing each
// regular file: there is no syncfs(2) or sync(2) here.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// syncDirs flushes everything once: sync(2) covers every file system.
func syncDirs(dirs []string) error {
	if len(dirs) > 0 {
		return syncTree(dirs[0])
	}
	return nil
}
