// Package pg is the one place walvault talks to PostgreSQL: it parses
// connection settings as libpq would, connects with the hints a DBA needs
// when the server refuses (pg_hba.conf, passwords, the REPLICATION
// attribute), reads server settings and the version, and speaks the
// parts of the replication protocol walvault uses: IDENTIFY_SYSTEM,
// replication slots, TIMELINE_HISTORY, START_REPLICATION and the COPY
// stream of physical replication.
//
// Read connect.go first (ParseConfig, Connect for SQL, Open for the
// message-level connections), then wire.go (Wire, the seam every
// protocol user talks through, and the result-set readers),
// replication.go (ReplicationWire, what wal-receive needs, with
// github.com/jackc/pglogrepl doing START_REPLICATION, XLogData,
// keepalives and standby status updates) and server.go (settings,
// version, slots); program.go asks a PostgreSQL program for its version. pgtest holds a scripted fake server behind Wire and
// ReplicationWire, for the tests of basebackup and receive.
//
// backup-push (basebackup), wal-receive (receive), check, drill and the
// exporter connect through this package only.
package pg
