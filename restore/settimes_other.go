//go:build !linux

package restore

import (
	"os"
	"time"
)

// setTimes sets the access and modification times of f, open as name
// under root.
func setTimes(f *os.File, root *os.Root, name string, t time.Time) error {
	return root.Chtimes(name, t, t)
}
