package osuser

import "io/fs"

// The permission bits Check asks about, as in the "other" class of a mode.
const (
	Read   fs.FileMode = 4
	Write  fs.FileMode = 2
	Search fs.FileMode = 1 // search for a directory, execute for a file
)

// Denial is what Check found on a file the user may not use: its
// permission bits and owner.
type Denial struct {
	Mode     fs.FileMode
	UID, GID uint32
}
