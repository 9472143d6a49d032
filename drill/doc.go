// Package drill proves that a backup restores: it restores one into a
// scratch directory with the restore package (RestoreBackup, the same code
// `walvault restore` runs), starts a temporary PostgreSQL on it that can
// never archive into the repository, waits for recovery to finish, checks
// the result, measures RTO and RPO, and stores a small JSON record of the
// outcome in the repository under drills/ (record.go) for `check` and the
// exporter.
//
// Read drill.go first (Run: the steps in order, and the one cleanup that
// runs on every path: success, failure and cancellation), then server.go
// (the temporary server: a child process of its own, run as the server user
// when walvault runs as root, stopped fast, then immediately, then killed),
// checks.go (what "recovered" means) and binaries.go (which PostgreSQL
// programs, by the backup's major version).
//
// What it must not do: write into the repository anything but its own
// record (the temporary server runs with archive_mode=off, set on its
// command line, which beats every configuration file, and in
// postgresql.auto.conf for a kept directory), listen anywhere but 127.0.0.1
// and a private socket directory, leave a server running or a scratch
// directory behind (unless asked to keep it, and then stopped), or read
// configuration: cmd resolves settings into Options.
package drill
