package restore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncTree makes everything written beneath dir durable with one syncfs(2)
// of the file system holding it, instead of an fsync per file: restore
// writes thousands of files without syncing any, then flushes them (data,
// inodes and directory entries) in a single call. syncfs also flushes other
// dirty data of that file system, the price of not tracking every file;
// PostgreSQL's recovery_init_sync_method=syncfs makes the same trade. Since
// Linux 5.8 it reports write-back errors.
func syncTree(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}
