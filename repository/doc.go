// Package repository knows the on-storage format of a walvault repository:
// where each kind of object lives and how its key reads (keys.go: ParseKey
// and a Parse/Format pair per kind; the builders are in layout.go,
// partial.go, backup.go, marks.go), the repository identity written once by
// the first push (identity.go) with its Object Lock policy (lock.go), how
// object bodies are compressed (compression.go) and checksummed
// (partsum.go: a backup part's sha256 over its stored bytes) and encrypted
// (encryption.go: Codec and OpenBody, the one place bodies are encoded and
// decoded), and which of its objects a delete marker hides (hidden.go).
//
// Read inventory.go next: LoadInventory lists the repository once and turns
// the listing into the model every command reads it through: the WAL index
// per timeline with its gaps and continuity (walindex.go), the backups with
// their parts, manifests, marks and status (BackupStatusOf, the one place a
// status is decided), wal-receive's partials, drill records, hidden objects
// and strays. With BackupsOnly it lists backups/ and their WAL ranges only;
// recoverywal.go then lists what a restore to an LSN reads on the way
// (LoadRecoveryWAL) and judges it (WALIndex.RecoveryReach).
//
// It must not talk to PostgreSQL or read configuration; it only turns domain
// values into keys and bytes, on top of any storage.Backend.
//
//	walvault.json                      identity: format, system id, segment size, compression, lock policy
//	wal/TTTTTTTT/<24-hex-name>[.lz4|.zst]  one object per segment (and .partial), its codec in its suffix
//	wal/TTTTTTTT/<name>.backup         backup history files, uncompressed
//	wal/TTTTTTTT.history               timeline history files, uncompressed
//	partial/TTTTTTTT/<segment>/<end LSN>[.lz4|.zst]  wal-receive's partial segments
//	backups/<id>/walvault-backup.json  walvault's manifest, written last
//	backups/<id>/backup_manifest       PostgreSQL's backup_manifest
//	backups/<id>/<archive>.NNNNN[.lz4|.zst] the parts of each tar stream
//	backups/<id>/marks/<time>-keep     keep marks (or -nokeep)
//	drills/<finish time>.json          restore drill records
//	check/probe-<time>-<host>-<nonce>  `walvault check` probes, deleted at once
package repository
