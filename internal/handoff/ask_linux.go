package handoff

import (
	"os"
	"syscall"
)

// Ask sends r to the helper listening on socket and waits for its answer;
// ok is true only when the helper ran the command to its end.
func Ask(socket string, r Request) (a Answer, ok bool) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return a, false
	}
	defer syscall.Close(fd)
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: socket}); err != nil {
		// No helper (no socket, or one left by a helper that died): run
		// here, silently, as without one.
		return a, false
	}
	// Only a helper of this user: the directory is the server user's, but
	// an answer of exit 0 is trusted, so check who listens.
	if cred, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED); err != nil || int(cred.Uid) != os.Getuid() {
		return a, false
	}
	if !writeAll(fd, Encode(r)) {
		return a, false
	}
	// No deadline: the helper runs the command under the command's own
	// --timeout, and a cut connection (the helper stopped) ends the read.
	reply := readAll(fd)
	a, ran, complete := DecodeAnswer(reply)
	if !complete {
		return Answer{Message: "walvault: wal-helper stopped before answering; running the command in this process\n"}, false
	}
	return a, ran
}

func writeAll(fd int, b []byte) bool {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

func readAll(fd int) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}
