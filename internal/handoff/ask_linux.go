package handoff

import (
	"os"
	"syscall"
)

// Ask sends r to the helper listening on socket and waits for its answer;
// ok is true only when the helper ran the command to its end.
func Ask(socket string, r Request) (a Answer, ok bool) {
	found, err := os.Stat(socket)
	if err != nil {
		return a, false // no helper: run here, silently, as without one
	}
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
	// The helper runs the command under the command's own --timeout, a cut
	// connection (the helper stopped) ends the read, and a helper that
	// sends nothing for SilenceSeconds (not even a keepalive) is given up
	// on.
	tv := syscall.Timeval{Sec: int64(silence)}
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	reply, silent := readAll(fd)
	if silent {
		forgetHelper(socket, found)
		return Answer{Message: silentMessage}, false
	}
	a, ran, complete := DecodeAnswer(reply)
	if !complete {
		return Answer{Message: "walvault: wal-helper stopped before answering; running the command in this process\n"}, false
	}
	return a, ran
}

// silence is SilenceSeconds, shorter in tests.
var silence = SilenceSeconds

// silentMessage is what a caller prints when the helper fell silent.
const silentMessage = "walvault: wal-helper sent nothing for 30s (stopped or stuck); removed its socket, so the next calls do not wait for it; running the command in this process\n"

// forgetHelper removes the socket of a helper that fell silent, unless
// another helper has taken its place since (found: the socket before the
// call). Otherwise every call PostgreSQL makes would wait out the silence
// again; without the socket they run in their own processes (and with
// helper auto the next one starts a new helper), while the silent helper
// stops once it sees its socket gone.
func forgetHelper(socket string, found os.FileInfo) {
	if now, err := os.Stat(socket); err == nil && os.SameFile(found, now) {
		os.Remove(socket)
	}
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

// readAll reads fd to its end; silent reports a read that timed out
// (SO_RCVTIMEO).
func readAll(fd int) (out []byte, silent bool) {
	buf := make([]byte, 4096)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN || err == syscall.EWOULDBLOCK {
			return out, true
		}
		if err != nil || n <= 0 {
			return out, false
		}
		out = append(out, buf[:n]...)
	}
}
