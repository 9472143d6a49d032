//go:build !linux

package main

import (
	"errors"
	"net"
)

// peerUID is unknown outside Linux (no SO_PEERCRED), so a wal-helper
// there declines every caller; the callers do not hand off anyway.
func peerUID(*net.UnixConn) (int, error) {
	return -1, errors.New("the caller's user cannot be checked on this system")
}
