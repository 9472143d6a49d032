//go:build !linux || !cgo

package handoff

import "syscall"

// earlyLooked: without cgo (a static build) or outside Linux there is no
// constructor, and the package's Go init asks the helper.
func earlyLooked() bool { return false }

// takeEarlyNote: no constructor, no note of its own.
func takeEarlyNote() string { return "" }

// EarlyStop: no constructor, so no signal caught by it.
func EarlyStop() syscall.Signal { return 0 }
