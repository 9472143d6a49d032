// Package testenv starts the real parts that walvault's integration tests
// run against: a PostgreSQL server of any supported major, 15 by default
// (PostgresOptions.Major; the server programs are that major's, the client
// tools psql, pgbench, pg_waldump, ... PostgreSQL 15's) and an
// S3-compatible server (Versity S3 Gateway), each on a free loopback port
// in a temporary directory, stopped and removed when the test ends. It also builds the walvault binary once per test binary
// (BuildWalvault) so PostgreSQL can call it from archive_command.
//
// Rules:
//
//   - Real servers, never mocks. A test that needs PostgreSQL gets a real
//     postmaster; a test that needs S3 gets a real S3 server.
//   - Fail, don't skip. When a part is missing (PostgreSQL binaries, the
//     server user, the S3 gateway) the test fails with a message saying how
//     to install it. A silently skipped integration test proves nothing.
//   - Stop only what you started: every server is stopped in t.Cleanup by its
//     own data directory or process, never by name.
//
// PostgreSQL refuses to run as root. When the tests run as root, every
// PostgreSQL program (and so walvault inside archive_command) runs as the
// unprivileged server user, "postgres" by default (WALVAULT_PG_USER
// overrides it), through syscall.Credential with no supplementary groups.
// Whatever the server touches must be reachable by that user: t.TempDir is
// root-owned and 0700, so use UserDir for data, archive and scratch
// directories, and ChownToServerUser for files the test writes itself.
//
// Environment:
//
//	WALVAULT_PG_BIN   directory of initdb, pg_ctl, ... (default /usr/lib/postgresql/15/bin)
//	WALVAULT_PG16_BIN (and 17, 18) directory of that major's initdb, pg_ctl, postgres
//	                  (default /usr/lib/postgresql/<major>/bin, else /var/cache/walvault-test/pg/<major>/bin)
//	WALVAULT_PG_USER  server user when running as root (default postgres)
//	WALVAULT_BIN      use this walvault binary instead of building ./cmd/walvault
package testenv
