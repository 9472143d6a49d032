// Package receive is wal-receive: a long-running PostgreSQL physical
// replication client that streams WAL over a replication slot straight into
// the repository, for sub-second RPO.
//
// The open segment is spooled to a local file. Every Options.MaxLag, when
// new WAL arrived, the bytes received so far are uploaded as a write-once
// partial object (repository.PartialKey):
//
//	partial/TTTTTTTT/<segment>/<end LSN, 16 hex digits>.lz4
//
// Older partials of the segment are deleted once a newer one is durable,
// and all of them once the complete segment is stored. One under Object
// Lock is asked only once its retention has ended; those still locked when
// their segment is archived are left to `walvault delete` (partials.go).
// A completed segment is stored by archive.Push, exactly as wal-push
// stores it (same key, same metadata, conditional create, same checksum =
// already archived), so wal-push and wal-receive can feed one repository
// side by side.
//
// The standby status updates report as written, flushed and applied only
// the position that is durable in the repository (the end of the newest
// partial or complete segment), so the slot keeps every byte that is not
// yet safe. On (re)connection streaming starts at the beginning of the
// first segment the repository does not hold yet (at or after the slot's
// restart_lsn), so a restart mid-segment loses nothing.
//
// It talks to PostgreSQL through pg.ReplicationWire: pg.Open's connection
// in production, pgtest's scripted server in the tests.
//
// restore's wal-fetch serves the newest partial, zero-padded, when
// PostgreSQL asks for a segment that is not archived (restore/partial.go).
package receive
