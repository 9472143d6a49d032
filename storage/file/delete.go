package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/walvault/walvault/storage"
)

// Delete removes key's object and fsyncs its directory. It never removes a
// directory, and leaves emptied directories in place.
func (b *Backend) Delete(ctx context.Context, key string) error {
	path, err := b.path(key)
	if err != nil {
		return storage.OpError("delete", key, err)
	}
	if err := ctx.Err(); err != nil {
		return storage.OpError("delete", key, err)
	}
	// unlink(2), unlike os.Remove, fails on a directory instead of
	// removing it when empty.
	if err := syscall.Unlink(path); err != nil {
		if err == syscall.EISDIR || (err == syscall.EPERM && isDir(path)) {
			return storage.OpError("delete", key, errKeyIsDir(path))
		}
		return storage.OpError("delete", key, b.notFoundOr(path, &os.PathError{Op: "unlink", Path: path, Err: err}))
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return storage.OpError("delete", key, classify(fmt.Errorf("object removed but the removal may not be durable: %w", err)))
	}
	return nil
}
