//go:build unix && !linux

package drill

import (
	"syscall"
	"time"
)

// setParentDeathSignal: only Linux can stop a child when its parent dies.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// killStragglers: without /proc, processes the server started outside its
// process group are not found; they end on their own.
func killStragglers(string, time.Duration) []int { return nil }
