// Package waltest builds WAL files for tests: synthetic segments whose long
// page header is the one PostgreSQL 15 writes for a given cluster, timeline
// and segment (the body is pseudo-random, the same for the same seed), and
// timeline history files. It writes them to memory or to a directory, as
// archive_command and restore_command see them.
//
// It is for tests only: it fails the test it is given rather than
// returning errors. Backup fixtures, which are repository objects, live
// beside the repository format, in repository/repotest.
package waltest
