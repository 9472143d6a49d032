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

// syncDirs flushes the file systems holding dirs, one syncfs per file
// system: the data directory and its tablespaces usually share one.
func syncDirs(dirs []string) error {
	done := map[uint64]bool{}
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("syncfs %s: %w", d, err)
		}
		if done[st.Dev] {
			continue
		}
		if err := syncTree(d); err != nil {
			return err
		}
		done[st.Dev] = true
	}
	return nil
}
