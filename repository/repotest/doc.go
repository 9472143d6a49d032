// Package repotest writes repositories for tests: the identity, objects,
// and backups as backup-push stores them (compressed parts with the sha256
// of their raw bytes, PostgreSQL's backup_manifest, walvault's manifest
// last). It fails the test it is given rather than returning errors.
//
// It lives beside repository, not in wal/waltest, because it writes
// repository objects: package wal must not import repository, so waltest
// builds WAL files (segments, history files) and this package stores them.
package repotest
