package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/wal"
)

// This file speaks BASE_BACKUP in PostgreSQL 15's "copystream" form over
// package pg's Wire (IDENTIFY_SYSTEM and the result-set readers are pg's).
// It is not pglogrepl's StartBaseBackup: that one leaves the copystream
// messages below to its caller, reads per tablespace, and needs a
// concrete *pgconn.PgConn, which would leave no test seam. After the Query the
// server sends, in order:
//
//	RowDescription, DataRow, CommandComplete    start LSN and timeline
//	RowDescription, DataRow..., CommandComplete tablespaces (oid, location, size in kB)
//	CopyOutResponse                             one COPY for everything below
//	CopyData 'n' name\0 location\0              a new archive begins
//	CopyData 'd' bytes                          data of the current archive (or manifest)
//	CopyData 'p' int64                          bytes done so far (progress)
//	CopyData 'm'                                the backup_manifest begins
//	CopyDone
//	RowDescription, DataRow, CommandComplete    end LSN and timeline
//	CommandComplete, ReadyForQuery
//
// Notices may arrive anywhere (e.g. "still waiting for all required WAL
// segments to be archived"); an ErrorResponse anywhere ends the backup.

// baseBackupCommand builds PostgreSQL 15's BASE_BACKUP with the options
// walvault relies on. The label is a string literal of the replication
// grammar, where a quote is written twice and a backslash is an ordinary
// character. waitForArchive is BASE_BACKUP's WAIT: whether PostgreSQL
// waits for archive_command to archive the backup's last segment. It must
// be off when wal-receive is the WAL source: archiving is then off or not
// walvault's (maybe an empty archive_command, which would wait forever),
// and Push waits for wal-receive instead. On a primary it is off too, and
// Push waits for the archiver itself: PostgreSQL's wait looks once a second.
//
// The manifest's per-file checksums are CRC-32C, pg_basebackup's default:
// they catch a file extracted wrong, while the sha256 of every stored part
// (walvault's manifest) is what proves the backup's bytes are the ones
// uploaded. SHA-256 here cost the server's walsender, and pg_verifybackup
// at every restore, a hash of the whole database on the same cores that
// compress.
func baseBackupCommand(label string, fast, waitForArchive bool) (string, error) {
	if strings.ContainsRune(label, 0) {
		return "", errors.New("backup label must not contain a NUL character")
	}
	checkpoint := "spread"
	if fast {
		checkpoint = "fast"
	}
	wait := "WAIT"
	if !waitForArchive {
		wait = "WAIT false"
	}
	return fmt.Sprintf("BASE_BACKUP ( LABEL '%s', CHECKPOINT '%s', MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', PROGRESS, %s, TABLESPACE_MAP )",
		strings.ReplaceAll(label, "'", "''"), checkpoint, wait), nil
}

// unverifiedChecksumsCommand is cmd asking PostgreSQL not to verify page
// checksums (pg_basebackup --no-verify-checksums): a backup of a cluster
// with a damaged page, taken before repairing it, copies the page as it is
// instead of failing.
func unverifiedChecksumsCommand(cmd string) string {
	return strings.TrimSuffix(cmd, " )") + ", VERIFY_CHECKSUMS false )"
}

// backupStart is what the server says before the data: where the backup
// starts and which tablespaces it holds.
type backupStart struct {
	LSN         wal.LSN
	Timeline    wal.TimelineID
	Tablespaces []tablespace
}

// tablespace is one row of the tablespace result set.
type tablespace struct {
	OID      uint32 // 0 for the main data directory
	Location string // "" for the main data directory
	Size     int64  // estimated bytes; -1 when the server did not say
}

// EstimatedSize is the sum of the tablespaces' estimates, or -1 when any is
// unknown.
func (s backupStart) EstimatedSize() int64 {
	var total int64
	for _, ts := range s.Tablespaces {
		if ts.Size < 0 {
			return -1
		}
		total += ts.Size
	}
	return total
}

// backupEnd is where the backup ends.
type backupEnd struct {
	LSN      wal.LSN
	Timeline wal.TimelineID
}

// backupHandlers receive a BASE_BACKUP stream. archive and manifest get a
// reader over the 'd' payloads of that section; it pulls messages from the
// connection as it is read, so at most one CopyData message is held. A
// handler may stop reading early by returning: the rest of the section is
// skipped. A handler's error ends the backup.
type backupHandlers struct {
	start    func(backupStart) error
	archive  func(name, location string, r io.Reader) error
	manifest func(r io.Reader) error
	progress func(done int64) // the server's count of bytes done; may be nil
	notice   pg.NoticeFunc    // may be nil
}

// CopyData type bytes of the copystream format.
const (
	msgNewArchive = 'n'
	msgManifest   = 'm'
	msgData       = 'd'
	msgProgress   = 'p'
	msgCopyDone   = 0 // not a type byte: marks CopyDone
)

// runBaseBackup sends cmd (a BASE_BACKUP) and feeds what comes back to h.
// It returns once the server is ready for the next command, or at the first
// error; after an error the connection must be closed.
func runBaseBackup(ctx context.Context, w pg.Wire, cmd string, h backupHandlers) (backupEnd, error) {
	if err := w.Query(cmd); err != nil {
		return backupEnd{}, err
	}
	const what = "BASE_BACKUP"
	var start backupStart
	var err error
	start.LSN, start.Timeline, err = readPosition(ctx, w, h.notice, "start")
	if err != nil {
		return backupEnd{}, err
	}
	rs, err := pg.ReadResult(ctx, w, what, h.notice)
	if err != nil {
		return backupEnd{}, err
	}
	if start.Tablespaces, err = parseTablespaces(rs); err != nil {
		return backupEnd{}, err
	}
	msg, err := pg.ReceiveMessage(ctx, w, what, h.notice)
	if err != nil {
		return backupEnd{}, err
	}
	if _, ok := msg.(*pgproto3.CopyOutResponse); !ok {
		return backupEnd{}, pg.Unexpected(what, msg, "the start of the COPY stream (PostgreSQL 15 or later is required)")
	}
	if err := h.start(start); err != nil {
		return backupEnd{}, err
	}

	s := &copyStream{ctx: ctx, w: w, notice: h.notice, progress: h.progress}
	manifests := 0
	for done := false; !done; {
		m, err := s.read()
		if err != nil {
			return backupEnd{}, err
		}
		switch m.kind {
		case msgNewArchive:
			name, location, err := parseNewArchive(m.payload)
			if err != nil {
				return backupEnd{}, err
			}
			if manifests > 0 {
				return backupEnd{}, fmt.Errorf("%s: archive %s began after the manifest", what, name)
			}
			if err := s.section(func(r io.Reader) error { return h.archive(name, location, r) }); err != nil {
				return backupEnd{}, err
			}
		case msgManifest:
			if manifests++; manifests > 1 {
				return backupEnd{}, fmt.Errorf("%s: the server sent a second manifest", what)
			}
			if err := s.section(h.manifest); err != nil {
				return backupEnd{}, err
			}
		case msgProgress:
			if err := s.report(m.payload); err != nil {
				return backupEnd{}, err
			}
		case msgData:
			return backupEnd{}, fmt.Errorf("%s: data arrived before any archive began", what)
		case msgCopyDone:
			done = true
		default:
			return backupEnd{}, fmt.Errorf("%s: unknown CopyData type %q: this PostgreSQL speaks a newer base backup protocol than walvault understands", what, m.kind)
		}
	}

	var end backupEnd
	end.LSN, end.Timeline, err = readPosition(ctx, w, h.notice, "end")
	if err != nil {
		return backupEnd{}, err
	}
	if err := pg.WaitReady(ctx, w, what, h.notice); err != nil {
		return backupEnd{}, err
	}
	return end, nil
}

// readPosition reads the result set with the start or end position.
func readPosition(ctx context.Context, w pg.Wire, notice pg.NoticeFunc, which string) (wal.LSN, wal.TimelineID, error) {
	rs, err := pg.ReadResult(ctx, w, "BASE_BACKUP", notice)
	if err != nil {
		return 0, 0, err
	}
	return parsePosition(rs, which)
}

// parsePosition reads the one-row (recptr, tli) result that starts and ends
// a base backup.
func parsePosition(rs pg.ResultSet, which string) (wal.LSN, wal.TimelineID, error) {
	if len(rs.Rows) != 1 || len(rs.Fields) != 2 {
		return 0, 0, fmt.Errorf("BASE_BACKUP: the %s position has %d rows of %d fields, want 1 row of 2", which, len(rs.Rows), len(rs.Fields))
	}
	lsn, err := wal.ParseLSN(rs.Rows[0][0].S)
	if err != nil {
		return 0, 0, fmt.Errorf("BASE_BACKUP %s position: %w", which, err)
	}
	tli, err := pg.ParseTimeline(rs.Rows[0][1].S)
	if err != nil {
		return 0, 0, fmt.Errorf("BASE_BACKUP %s position: %w", which, err)
	}
	return lsn, tli, nil
}

// parseTablespaces reads the (spcoid, spclocation, size) result. The main
// data directory has a NULL oid and location; size is in kB, NULL without
// PROGRESS.
func parseTablespaces(rs pg.ResultSet) ([]tablespace, error) {
	if len(rs.Fields) != 3 {
		return nil, fmt.Errorf("BASE_BACKUP: the tablespace list has %d fields, want 3", len(rs.Fields))
	}
	var out []tablespace
	for _, row := range rs.Rows {
		ts := tablespace{Size: -1}
		if row[0].Valid {
			oid, err := strconv.ParseUint(row[0].S, 10, 32)
			if err != nil || oid == 0 {
				return nil, fmt.Errorf("BASE_BACKUP: invalid tablespace oid %q", row[0].S)
			}
			ts.OID = uint32(oid)
			ts.Location = row[1].S
		}
		if row[2].Valid {
			kb, err := strconv.ParseInt(row[2].S, 10, 64)
			if err != nil || kb < 0 {
				return nil, fmt.Errorf("BASE_BACKUP: invalid tablespace size %q", row[2].S)
			}
			ts.Size = kb * 1024
		}
		out = append(out, ts)
	}
	return out, nil
}

// parseNewArchive reads an 'n' payload: two NUL-terminated strings.
func parseNewArchive(p []byte) (name, location string, err error) {
	i := bytes.IndexByte(p, 0)
	if i < 0 {
		return "", "", errors.New("BASE_BACKUP: malformed new-archive message (no archive name)")
	}
	name, p = string(p[:i]), p[i+1:]
	j := bytes.IndexByte(p, 0)
	if j < 0 || j != len(p)-1 {
		return "", "", fmt.Errorf("BASE_BACKUP: malformed new-archive message for %q (no tablespace location)", name)
	}
	return name, string(p[:j]), nil
}

// copyMsg is one CopyData message split into type byte and payload; kind
// msgCopyDone marks the end of the COPY.
type copyMsg struct {
	kind    byte
	payload []byte // points into the connection's buffer until the next read
}

// copyStream reads the messages of one BASE_BACKUP COPY. It belongs to a
// single runBaseBackup call and keeps that call's ctx, because the section
// readers it hands out are io.Readers, whose Read has no ctx of its own.
type copyStream struct {
	ctx      context.Context
	w        pg.Wire
	notice   pg.NoticeFunc
	progress func(int64)
	ahead    *copyMsg // a message a section reader read past its end
	ended    bool
}

// read returns the next message of the COPY.
func (s *copyStream) read() (copyMsg, error) {
	if s.ahead != nil {
		m := *s.ahead
		s.ahead = nil
		return m, nil
	}
	if s.ended {
		return copyMsg{kind: msgCopyDone}, nil
	}
	msg, err := pg.ReceiveMessage(s.ctx, s.w, "BASE_BACKUP", s.notice)
	if err != nil {
		return copyMsg{}, err
	}
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return copyMsg{}, errors.New("BASE_BACKUP: empty CopyData message")
		}
		return copyMsg{kind: m.Data[0], payload: m.Data[1:]}, nil
	case *pgproto3.CopyDone:
		s.ended = true
		return copyMsg{kind: msgCopyDone}, nil
	default:
		return copyMsg{}, pg.Unexpected("BASE_BACKUP", msg, "COPY data")
	}
}

// report passes a 'p' message to the progress callback.
func (s *copyStream) report(p []byte) error {
	if len(p) != 8 {
		return fmt.Errorf("BASE_BACKUP: progress message of %d bytes, want 8", len(p))
	}
	if s.progress != nil {
		done := int64(uint64(p[0])<<56 | uint64(p[1])<<48 | uint64(p[2])<<40 | uint64(p[3])<<32 |
			uint64(p[4])<<24 | uint64(p[5])<<16 | uint64(p[6])<<8 | uint64(p[7]))
		s.progress(done)
	}
	return nil
}

// section hands fn a reader over the 'd' messages that follow, then skips
// whatever fn left unread.
func (s *copyStream) section(fn func(io.Reader) error) error {
	r := &sectionReader{s: s}
	if err := fn(r); err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

// sectionReader reads the data of one archive or of the manifest: 'd'
// payloads up to the next message of another kind, which it leaves for the
// stream. Progress messages in between are reported on the way.
type sectionReader struct {
	s   *copyStream
	buf []byte
	eof bool
	err error
}

func (r *sectionReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.eof {
			return 0, io.EOF
		}
		m, err := r.s.read()
		if err != nil {
			r.err = err
			return 0, err
		}
		switch m.kind {
		case msgData:
			r.buf = m.payload
		case msgProgress:
			if err := r.s.report(m.payload); err != nil {
				r.err = err
				return 0, err
			}
		default:
			r.s.ahead = &m
			r.eof = true
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
