// Package peercred reads who is at the other end of a Unix socket
// connection (SO_PEERCRED): the wal-helper checks its callers with it, and
// check finds the helper's process.
package peercred

import (
	"net"

	"golang.org/x/sys/unix"
)

// Of returns the user ID and process ID of the peer of conn.
func Of(conn *net.UnixConn) (uid, pid int, err error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1, 0, err
	}
	uid = -1
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		var cred *unix.Ucred
		if cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); cerr == nil {
			uid, pid = int(cred.Uid), int(cred.Pid)
		}
	}); err != nil {
		return -1, 0, err
	}
	return uid, pid, cerr
}
