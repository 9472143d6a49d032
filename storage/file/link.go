package file

import "os"

// linkThenRemove creates path as a hard link to tmp, failing atomically if
// path exists, then removes tmp. Once the link exists the object is stored;
// should removing tmp fail, the leftover is a second name for the same inode
// (no extra space), which List ignores, so it is not an error.
func linkThenRemove(tmp, path string) error {
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	_ = os.Remove(tmp)
	return nil
}
