// Package integration holds walvault's end-to-end tests: the built binary,
// a real PostgreSQL 15 calling it from archive_command, and real
// repositories (a local directory, and a Versity S3 Gateway on loopback).
// Servers come from internal/testenv; a missing one fails the test with
// install instructions, it is never skipped.
package integration
