//go:build unix

package main

import (
	"runtime/debug"
	"syscall"
)

// dieBySignalOnCrash makes a crash of this process (an unrecovered
// panic, a fatal runtime error such as running out of memory or failing
// to start a thread, a fatal signal) end it by SIGABRT rather than with
// Go's exit status 2: from restore_command, PostgreSQL reads 2 as "not in
// the archive", ends recovery there and opens with the later WAL left
// out, while death by a signal stops recovery, to be resumed. No core
// file: restore_command runs in the data directory.
func dieBySignalOnCrash() {
	debug.SetTraceback("crash")
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_CORE, &lim) == nil {
		lim.Cur = 0
		_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &lim)
	}
}
