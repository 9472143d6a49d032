package restore

import (
	"os"
	"path/filepath"
)

// Recovering reports whether dest is where restore_command's %p points
// while PostgreSQL recovers: a file directly in a data directory's pg_wal
// (PostgreSQL runs restore_command in the data directory with %p =
// pg_wal/RECOVERYXLOG and the like), that is, dest's directory is named
// pg_wal and its parent holds PG_VERSION. Only then may wal-fetch use and
// fill the prefetch cache beside it; run by hand to any other place it
// fetches the one file and writes nothing else.
func Recovering(dest string) bool {
	_, ok := recoveryDataDir(dest)
	return ok
}

// recoveryDataDir is the data directory around dest when Recovering.
func recoveryDataDir(dest string) (string, bool) {
	abs, err := filepath.Abs(dest)
	if err != nil {
		return "", false
	}
	walDir := filepath.Dir(abs)
	if filepath.Base(walDir) != "pg_wal" {
		return "", false
	}
	dataDir := filepath.Dir(walDir)
	fi, err := os.Stat(filepath.Join(dataDir, "PG_VERSION"))
	return dataDir, err == nil && fi.Mode().IsRegular()
}

// InStandby reports whether dest (see Recovering) is in the pg_wal of a
// data directory in standby mode: its standby.signal is there. Such a
// server never ends recovery because restore_command failed; it tries
// streaming and asks the archive again.
func InStandby(dest string) bool {
	dataDir, ok := recoveryDataDir(dest)
	if !ok {
		return false
	}
	_, err := os.Stat(filepath.Join(dataDir, standbySignal))
	return err == nil
}

// standbySignal is the file that starts PostgreSQL in standby mode.
const standbySignal = "standby.signal"
