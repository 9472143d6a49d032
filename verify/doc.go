// Package verify proves that a repository can do what it promises: that
// the archived WAL is continuous from the backups that need it to the
// newest archived segment on every timeline, that every backup has all its
// parts with the sizes its manifest records, that nothing is hidden behind
// S3 delete markers, and (with Full) that every stored byte still has the
// sha256 it was written with. wal-receive's partials (partial/) are
// counted, superseded ones (their segment is archived) are warnings, the
// newest partial of a segment not archived counts for continuity only as a
// timeline's last segment, and Full re-reads it (partials.go). It backs
// `walvault verify`, and
// `walvault check` reuses its continuity check (WALContinuity).
//
// Read continuity.go first: WALIndex folds the listing of wal/ into runs of
// consecutive segments per timeline (memory grows with the number of gaps,
// not of segments) and Continuity follows the timeline history files, so a
// branch point is not taken for a gap: recovery reads the parent timeline
// up to the segment before the switch point's and the child timeline from
// there. Then verify.go (Run: one listing of the whole repository, in key
// order), backups.go (each backup folder against its manifest, one folder
// held at a time), full.go (the --full re-read: a few workers streaming
// each object through decompression and sha256) and report.go (findings,
// the --json schema and the human lines).
//
// What it must not do: change the repository (verify only reads), talk to
// PostgreSQL, or read configuration. A damaged repository is a report full
// of findings, not an error: Run returns an error only when it could not
// look (the storage failed, the context ended).
package verify
