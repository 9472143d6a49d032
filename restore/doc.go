// Package restore brings files back out of the repository: wal-fetch for
// restore_command (fetch.go), and base backup restore: RestoreBackup
// (backup.go: choose a backup, check directories, extract, write recovery
// settings, verify) with its recovery targets (target.go). Extraction
// (extract.go) keeps every file in a staging directory until the parts it
// came from are verified (stage.go) and checks it against PostgreSQL's
// backup_manifest as it is written (streamcheck.go). An incremental
// backup restores with its chain, combined as pg_combinebackup would
// (chain.go, incrementalfile.go). A restore drill's wal-fetch also checks
// each segment before its server may replay it (drillguard.go). Read
// backup.go first for restores, fetch.go for restore_command.
//
// Its one rule: "not found" is said only when the repository answered that
// the file is absent. Every other failure (unreachable storage, checksum
// mismatch, a full disk) is an error of another kind, because PostgreSQL
// ends recovery when restore_command says a file is missing. In a
// versioned bucket a file hidden behind a delete marker is not absent
// either: hidden.go puts storage.ReadHidden over the backend, which reads
// its newest version, with a warning; and a WAL file someone uploaded over
// is fetched from its newest older version that passes the checks, with a
// warning (fetch.go's fetchOverwritten).
package restore
