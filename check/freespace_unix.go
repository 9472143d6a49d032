//go:build unix

package check

import "golang.org/x/sys/unix"

// freeSpace returns the bytes available to unprivileged users and the size
// of the filesystem holding path.
func freeSpace(path string) (avail, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}
