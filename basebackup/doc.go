// Package basebackup is backup-push: it takes a base backup over
// PostgreSQL's replication protocol (BASE_BACKUP, over package pg's
// connection, without libpq) and streams each tar archive, cut into
// parts, compressed and checksummed, into the repository, then stores
// PostgreSQL's backup_manifest and, last, walvault's own manifest of the
// backup.
//
// Read push.go first (Options, Push); protocol.go speaks BASE_BACKUP
// (package pg connects and holds the rest of the protocol), preflight.go
// refuses servers and repositories that cannot give a restorable backup,
// upload.go stores the parts, progress.go shows how far a backup got.
//
// It must never write a backup to local disk, never let more than one
// part's Put read its body at a time (memory is bounded, whatever the
// database's size), never report a backup before every object of it is
// durable, and never read configuration itself: cmd/ passes Options.
package basebackup
