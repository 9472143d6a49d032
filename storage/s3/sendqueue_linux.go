package s3

import (
	"crypto/tls"
	"net"

	"golang.org/x/sys/unix"
)

// unsentBytes is how many bytes of c's socket the kernel has not sent
// yet (SIOCOUTQ); known is false when that cannot be asked.
func unsentBytes(c net.Conn) (n int, known bool) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return 0, false
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return 0, false
	}
	var ioErr error
	if err := raw.Control(func(fd uintptr) { n, ioErr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ioErr != nil {
		return 0, false
	}
	return n, true
}
