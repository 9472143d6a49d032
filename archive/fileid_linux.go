package archive

import (
	"os"
	"syscall"
)

// fileIdentity is what says a file was not touched since it was read: the
// inode it is and the last time its content or metadata changed (ctime,
// which no program can set back).
type fileIdentity struct {
	Dev, Inode uint64
	CTime      int64 // Unix nanoseconds
}

// identityOf returns fi's identity; ok is false where the platform does not
// say (then records are always checked by hashing).
func identityOf(fi os.FileInfo) (id fileIdentity, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, false
	}
	return fileIdentity{Dev: st.Dev, Inode: st.Ino, CTime: st.Ctim.Nano()}, true
}
