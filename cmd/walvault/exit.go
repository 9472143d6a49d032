package main

import (
	"errors"
	"path/filepath"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
	"github.com/walvault/walvault/wal"
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
	// (storage unreachable, corrupt object, bad configuration), or a
	// drill's wal-fetch refused a segment (restore.DrillGuard). PostgreSQL
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
		var standby standbyFailure
		if errors.Is(err, storage.ErrNotFound) || errors.As(err, &standby) {
			return exitFailed
		}
		return exitRecoveryMustStop
	}
	var stop mustStop
	if errors.As(err, &stop) {
		return exitRecoveryMustStop
	}
	var ue usageError
	var ce *open.ConfigError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		return exitUsage
	}
	return exitFailed
}

// standbyFailure is a wal-fetch failure on a standby (restore.InStandby):
// exit 1, not 200. A standby never ends recovery when restore_command
// fails, it tries streaming and asks again after
// wal_retrieve_retry_interval; a code above 125 would shut it down instead,
// for as long as the storage is out.
type standbyFailure struct{ err error }

func (e standbyFailure) Error() string {
	return e.err.Error() + " (this server is a standby: exit 1, so PostgreSQL streams or asks again later instead of shutting down)"
}

func (e standbyFailure) Unwrap() error { return e.err }

// mustStop is an error whose exit must be exitRecoveryMustStop whatever the
// command (runApp: a command line naming no command but given a WAL file).
type mustStop struct{ err error }

func (e mustStop) Error() string { return e.err.Error() }
func (e mustStop) Unwrap() error { return e.err }

// givenWALFile says whether args hold what PostgreSQL's %f or %p expand
// to: a WAL file name, or a path to one or to RECOVERYXLOG /
// RECOVERYHISTORY, where recovery has restore_command put a file.
func givenWALFile(args []string) bool {
	for _, a := range args {
		base := filepath.Base(a)
		if base == "RECOVERYXLOG" || base == "RECOVERYHISTORY" {
			return true
		}
		if _, err := wal.Classify(base); err == nil {
			return true
		}
	}
	return false
}
