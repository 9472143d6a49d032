//go:build linux

package file

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// linkNoReplace moves the file tmp to path only if path does not exist, in
// one atomic step: renameat2(RENAME_NOREPLACE). Filesystems without it
// (EINVAL, ENOSYS, ENOTSUP) fall back to link(2), which is just as atomic, and
// then remove tmp. If path exists, the error satisfies errors.Is(err,
// os.ErrExist) and tmp is left for the caller to remove.
func linkNoReplace(tmp, path string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTSUP) {
		return linkThenRemove(tmp, path)
	}
	return &os.LinkError{Op: "renameat2", Old: tmp, New: path, Err: err}
}
