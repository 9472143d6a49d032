//go:build unix && !linux

package restore

import "syscall"

// syncTree makes everything written beneath dir durable. Without Linux's
// syncfs(2), sync(2) flushes every file system.
func syncTree(dir string) error {
	syscall.Sync()
	return nil
}

// syncDirs syncs each directory's files.
func syncDirs(dirs []string) error {
	for _, d := range dirs {
		if err := syncTree(d); err != nil {
			return err
		}
	}
	return nil
}
