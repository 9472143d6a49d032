// Package archiveproof proves by its effect that a PostgreSQL server's WAL
// reaches a repository: not by reading archive_command's words (a wrapper
// script that runs walvault is as good as walvault itself, and a command
// that names walvault may push somewhere else), but by finding a segment
// the server archived in the repository.
//
// Read prove.go: Prove first looks for the segment (or, for backup-push,
// the backup history file) pg_stat_archiver says was archived last (one
// round trip, no change to the server). When the archiver failed last, it
// waits for the archiver to succeed again (it retries the failed file
// before any other, so a switch would prove nothing more). When the last
// archived segment is not in the repository, it switches WAL
// (pg_switch_wal(), or on a standby takes the last segment replay
// completed) and polls the repository with
// backoff, each look a Stat of that segment under every codec's key at
// once, until it arrives or the timeout passes. A
// repository no WAL has reached yet is waited for the same way: the first
// segment archive_command pushes creates its walvault.json.
//
// backup-push (basebackup) and check both decide through it.
package archiveproof
