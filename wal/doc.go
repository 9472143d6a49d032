// Package wal is walvault's vocabulary for PostgreSQL's write-ahead log:
// LSNs, timelines, WAL segment names, the other file names PostgreSQL hands
// to archive_command and restore_command, timeline history files, and the
// long page header at the start of every WAL segment. It covers PostgreSQL
// 15, 16, 17 and 18, whose segment header layout is the same.
//
// What it is for: archive/ checks that a segment's header agrees with its
// file name before pushing it (Classify, ReadHeader, Header.Check), restore/
// works out which segment comes next for prefetching (Segment.Next), and
// the retention and verify code orders segments and reads timeline history
// (SegmentFromLSN, ParseHistory), and a restore drill's wal-fetch walks a
// segment's records for those that create or drop a tablespace before
// handing it to PostgreSQL (ScanSegment, record.go).
//
// What it must not do: it opens no files, talks to no storage and logs
// nothing. The only I/O is ReadHeader reading the first HeaderSize bytes
// from an io.Reader the caller owns (peek, then re-join the stream with
// io.MultiReader), ScanSegment reading a segment from one, and
// ParseHistory/FormatHistory, which read or write a
// history file's text through a reader or writer the caller passes in. It
// knows nothing of the repository layout, compression or configuration.
//
// Read lsn.go and segment.go first (LSNs, segment names and sizes), then
// filename.go (Classify), header.go (segment headers and the per-version
// page magic), history.go and record.go (pages and records). Errors about
// names wrap ErrNotWALName, errors about headers ErrInvalidHeader and
// errors about records ErrInvalidRecord, so callers can test them with
// errors.Is; the messages say what was expected and what was found.
//
// testdata/ holds real WAL from PostgreSQL 15 (see testdata/README.md for
// how it was made); the fuzz tests in fuzz_test.go are seeded from it.
package wal
