package peercred

import (
	"os"
	"strconv"
)

// Executables are the files a peer process and this one run, as /proc
// shows them: the wal-helper declines a caller of another binary, and
// check says when the helper runs one.
type Executables struct {
	Peer, Self string // paths ("" where unreadable); a replaced file's ends in " (deleted)"
	Same       bool   // the same file, or /proc cannot tell
}

// ExecutablesOf compares the executable of process pid with this
// process's own. Where /proc cannot tell, they count as the same.
func ExecutablesOf(pid int) Executables {
	peerExe := "/proc/" + strconv.Itoa(pid) + "/exe"
	e := Executables{Same: true}
	e.Self, _ = os.Readlink("/proc/self/exe")
	e.Peer, _ = os.Readlink(peerExe)
	si, err1 := os.Stat("/proc/self/exe")
	pi, err2 := os.Stat(peerExe)
	if err1 == nil && err2 == nil {
		e.Same = os.SameFile(si, pi)
	}
	return e
}
