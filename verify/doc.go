// Package verify proves that a repository can do what it promises: that
// the archived WAL is continuous from the backups that need it to the
// newest archived segment on every timeline, that every backup has all its
// parts with the sizes its manifest records, that nothing is hidden behind
// S3 delete markers, and (with Full) that every stored byte still has the
// sha256 it was written with. wal-receive's partials (partial/) are
// counted, superseded ones (their segment is archived) are warnings, the
// newest partial of a segment not archived counts for continuity only as a
// timeline's last segment, and Full re-reads it (partials.go). It backs
// `walvault verify`; `walvault drill` runs the same continuity check
// through repository.Inventory.WALContinuity.
//
// It reads the repository through one repository.Inventory, whose
// WALIndex folds wal/ into runs of consecutive segments per timeline and
// follows the timeline history files. Read verify.go first (Run: the
// inventory, with hidden objects, turned into findings), then backups.go
// (each backup folder against its manifest), full.go (the --full re-read:
// a few workers streaming each object through decompression and sha256)
// and report.go (findings, the --json schema and the human lines).
//
// What it must not do: change the repository (verify only reads), talk to
// PostgreSQL, or read configuration. A damaged repository is a report full
// of findings, not an error: Run returns an error only when it could not
// look (the storage failed, the context ended).
package verify
