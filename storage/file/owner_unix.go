//go:build unix

package file

import (
	"errors"
	"os"
	"syscall"
)

// owner is the owner and group every new file and directory is given: the
// repository root's (see doc.go, Ownership).
type owner struct {
	uid, gid int
	known    bool
	// root: this process runs as root, which can give anything away, so a
	// failed chown is an error rather than a limit of the user.
	root bool
}

// ownerOf returns the owner and group of the root directory fi describes.
func ownerOf(fi os.FileInfo) owner {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{}
	}
	return owner{uid: int(st.Uid), gid: int(st.Gid), known: true, root: os.Geteuid() == 0}
}

// apply gives the new entry fi describes o's owner and group through chown
// (File.Chown or os.Lchown). It does nothing when they already match. A user
// other than root cannot give a file away: there EPERM is no error, and the
// entry takes at least o's group when the user belongs to it.
func (o owner) apply(fi os.FileInfo, chown func(uid, gid int) error) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !o.known || !ok {
		return nil
	}
	if int(st.Uid) == o.uid && int(st.Gid) == o.gid {
		return nil
	}
	err := chown(o.uid, o.gid)
	if err == nil || o.root || !errors.Is(err, syscall.EPERM) {
		return err
	}
	if int(st.Gid) == o.gid {
		return nil
	}
	if err := chown(-1, o.gid); err != nil && !errors.Is(err, syscall.EPERM) {
		return err
	}
	return nil
}
