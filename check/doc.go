// Package check answers "is everything in place for this cluster to be
// recoverable?" in the style of `barman check`: one verdict per
// precondition, each OK or FAILED with what is wrong and what to do. It
// backs `walvault check`.
//
// Read check.go first (the list of checks, their names and the output),
// then postgres.go (everything asked of PostgreSQL, gathered on one
// connection), pgchecks.go (the verdicts on it), repochecks.go (the
// repository: a write probe, walvault.json against the cluster, backups,
// WAL continuity from the same repository.Inventory, Object Lock), and local.go
// (what can be seen of the server when check runs on its host: the data
// directory, confirmed by pg_control's system identifier, and the
// postmaster's WALVAULT_REPO/WALVAULT_CONFIG).
//
// The repository probe: check creates a new, unique key under check/ with
// a conditional create (it can never replace an object), reads it back and
// deletes it. It is written without retention. If the bucket's default
// retention locks it anyway, the refused delete is reported on the OK line
// and the probe stays until its retention ends; verify counts check/ as
// walvault's own and never reports it.
//
// archive_command is judged by its effect (archiving.go, with package
// archiveproof): the archiver's last segment is in the repository, or
// else check switches WAL (pg_switch_wal(), the one change it makes to
// the server, as pgBackRest's check does; not while the archiver is
// failing) and waits up to its timeout for the completed segment to
// arrive. The command's words only add a note.
//
// What it must not do: print a secret (every line goes through scrub,
// which removes the values cmd passes in Options.Secrets, NAME=value pairs
// whose name says secret/password/token, and URL passwords; only
// WALVAULT_REPO and WALVAULT_CONFIG are ever read from the server's
// environment), change anything but its probe and that WAL switch, or
// read walvault's own configuration (cmd passes Options).
package check
