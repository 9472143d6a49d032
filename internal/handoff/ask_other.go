//go:build !linux

package handoff

// Ask hands nothing over outside Linux, where the helper checks its
// callers' user (SO_PEERCRED): every call runs in its own process.
func Ask(socket string, r Request) (Answer, bool) { return Answer{}, false }
