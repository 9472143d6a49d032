package main

import (
	"errors"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
)

// Exit codes. PostgreSQL reads them: for archive_command any non-zero code
// means "retry later"; for restore_command 1 means "not in the archive" and
// a code above 125 means "stop recovery now" (see exitCode).
const (
	exitOK = 0
	// exitFailed: the command failed; for wal-fetch only, the file is not in
	// the archive.
	exitFailed = 1
	// exitUsage: bad arguments or configuration (all commands but wal-fetch),
	// a repository URL that names no repository included (open.ConfigError).
	exitUsage = 2
	// exitRecoveryMustStop: wal-fetch could not give an authoritative answer
	// (storage unreachable, corrupt object, bad configuration). PostgreSQL
	// treats an exit status above 125 as fatal and stops recovery, instead
	// of taking the file as missing and ending recovery early at the wrong
	// point. 200 stays clear of 126/127 (the shell's "cannot execute" and
	// "not found") and of 128+N (death by signal N).
	exitRecoveryMustStop = 200
)

// exitCode is the one place that turns an error into an exit code.
func exitCode(command string, err error) int {
	if err == nil {
		return exitOK
	}
	if command == "wal-fetch" {
		if errors.Is(err, storage.ErrNotFound) {
			return exitFailed
		}
		return exitRecoveryMustStop
	}
	var ue usageError
	var ce *open.ConfigError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		return exitUsage
	}
	return exitFailed
}
