package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/wal"
)

// This file speaks the parts of PostgreSQL's replication protocol that
// backup-push needs, over the simple query protocol: IDENTIFY_SYSTEM and
// BASE_BACKUP in PostgreSQL 15's "copystream" form. After the Query the
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

// wire is the part of a connection the protocol uses; tests replace it.
type wire interface {
	// query sends one simple-protocol Query message.
	query(sql string) error
	// receive returns the next message from the server. A message may point
	// into the connection's read buffer: it is valid until the next receive.
	receive(ctx context.Context) (pgproto3.BackendMessage, error)
}

// pgWire is a wire over a pgconn connection.
type pgWire struct{ conn *pgconn.PgConn }

func (w pgWire) query(sql string) error {
	w.conn.Frontend().Send(&pgproto3.Query{String: sql})
	if err := w.conn.Frontend().Flush(); err != nil {
		return fmt.Errorf("send %s: %w", firstWord(sql), err)
	}
	return nil
}

func (w pgWire) receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	return w.conn.ReceiveMessage(ctx)
}

// noticeFunc receives the server's notices and warnings.
type noticeFunc func(*pgconn.Notice)

// value is one field of a DataRow, copied out of the read buffer.
type value struct {
	s     string
	valid bool // false for SQL NULL
}

// resultSet is one row-returning result.
type resultSet struct {
	fields []string
	rows   [][]value
}

// serverError is an ErrorResponse, with what was being done.
func serverError(what string, msg *pgproto3.ErrorResponse) error {
	pgErr := pgconn.ErrorResponseToPgError(msg)
	return fmt.Errorf("%s: %w%s", what, pgErr, serverHint(pgErr))
}

// receive reads the next message that matters: notices go to notice and
// parameter status reports are skipped; an ErrorResponse becomes an error.
func receive(ctx context.Context, w wire, what string, notice noticeFunc) (pgproto3.BackendMessage, error) {
	for {
		msg, err := w.receive(ctx)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, fmt.Errorf("%s: %w", what, ctxErr)
			}
			return nil, fmt.Errorf("%s: connection to PostgreSQL lost: %w", what, err)
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse:
			if notice != nil {
				notice((*pgconn.Notice)(pgconn.ErrorResponseToPgError((*pgproto3.ErrorResponse)(m))))
			}
		case *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return nil, serverError(what, m)
		default:
			return msg, nil
		}
	}
}

// readResult reads one RowDescription, its DataRows and the CommandComplete
// that ends them.
func readResult(ctx context.Context, w wire, what string, notice noticeFunc) (resultSet, error) {
	msg, err := receive(ctx, w, what, notice)
	if err != nil {
		return resultSet{}, err
	}
	desc, ok := msg.(*pgproto3.RowDescription)
	if !ok {
		return resultSet{}, unexpected(what, msg, "a result set")
	}
	var rs resultSet
	for _, f := range desc.Fields {
		rs.fields = append(rs.fields, string(f.Name))
	}
	for {
		msg, err := receive(ctx, w, what, notice)
		if err != nil {
			return resultSet{}, err
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if len(m.Values) != len(rs.fields) {
				return resultSet{}, fmt.Errorf("%s: a row has %d fields, its description %d", what, len(m.Values), len(rs.fields))
			}
			row := make([]value, len(m.Values))
			for i, v := range m.Values {
				row[i] = value{s: string(v), valid: v != nil}
			}
			rs.rows = append(rs.rows, row)
		case *pgproto3.CommandComplete:
			return rs, nil
		default:
			return resultSet{}, unexpected(what, msg, "a row or the end of the result")
		}
	}
}

// waitReady reads until ReadyForQuery, accepting only CommandComplete on the
// way.
func waitReady(ctx context.Context, w wire, what string, notice noticeFunc) error {
	for {
		msg, err := receive(ctx, w, what, notice)
		if err != nil {
			return err
		}
		switch msg.(type) {
		case *pgproto3.ReadyForQuery:
			return nil
		case *pgproto3.CommandComplete, *pgproto3.EmptyQueryResponse:
		default:
			return unexpected(what, msg, "the end of the command")
		}
	}
}

// simpleQuery runs one statement that returns one result set and waits for
// the server to be ready again.
func simpleQuery(ctx context.Context, w wire, sql string, notice noticeFunc) (resultSet, error) {
	what := firstWord(sql)
	if strings.HasPrefix(strings.ToUpper(sql), "SHOW ") {
		what = sql
	}
	if err := w.query(sql); err != nil {
		return resultSet{}, err
	}
	rs, err := readResult(ctx, w, what, notice)
	if err != nil {
		return resultSet{}, err
	}
	return rs, waitReady(ctx, w, what, notice)
}

func unexpected(what string, msg pgproto3.BackendMessage, want string) error {
	return fmt.Errorf("%s: PostgreSQL sent %T where walvault expected %s (an unsupported server version or a broken connection)", what, msg, want)
}

func firstWord(sql string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	return w
}

// systemInfo is IDENTIFY_SYSTEM's answer.
type systemInfo struct {
	SystemID string // decimal, as PostgreSQL prints it
	Timeline wal.TimelineID
	XLogPos  wal.LSN
}

// identifySystem runs IDENTIFY_SYSTEM on a replication connection.
func identifySystem(ctx context.Context, w wire) (systemInfo, error) {
	rs, err := simpleQuery(ctx, w, "IDENTIFY_SYSTEM", nil)
	if err != nil {
		return systemInfo{}, err
	}
	if len(rs.rows) != 1 || len(rs.fields) < 3 {
		return systemInfo{}, fmt.Errorf("IDENTIFY_SYSTEM: got %d rows of %d fields, want 1 row of at least 3", len(rs.rows), len(rs.fields))
	}
	row := rs.rows[0]
	if _, err := strconv.ParseUint(row[0].s, 10, 64); err != nil {
		return systemInfo{}, fmt.Errorf("IDENTIFY_SYSTEM: system identifier %q is not a number", row[0].s)
	}
	tli, err := parseTimeline(row[1].s)
	if err != nil {
		return systemInfo{}, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	pos, err := wal.ParseLSN(row[2].s)
	if err != nil {
		return systemInfo{}, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	return systemInfo{SystemID: row[0].s, Timeline: tli, XLogPos: pos}, nil
}

func parseTimeline(s string) (wal.TimelineID, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid timeline %q", s)
	}
	return wal.TimelineID(n), nil
}

// baseBackupCommand builds PostgreSQL 15's BASE_BACKUP with the options
// walvault relies on. The label is a string literal of the replication
// grammar, where a quote is written twice and a backslash is an ordinary
// character. waitForArchive is BASE_BACKUP's WAIT: whether PostgreSQL
// waits for archive_command to archive the backup's last segment. It must
// be off when wal-receive is the WAL source: archiving is then off or not
// walvault's (maybe an empty archive_command, which would wait forever),
// and Push waits for wal-receive instead.
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
	notice   noticeFunc       // may be nil
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
func runBaseBackup(ctx context.Context, w wire, cmd string, h backupHandlers) (backupEnd, error) {
	if err := w.query(cmd); err != nil {
		return backupEnd{}, err
	}
	const what = "BASE_BACKUP"
	rs, err := readResult(ctx, w, what, h.notice)
	if err != nil {
		return backupEnd{}, err
	}
	var start backupStart
	start.LSN, start.Timeline, err = parsePosition(rs, "start")
	if err != nil {
		return backupEnd{}, err
	}
	rs, err = readResult(ctx, w, what, h.notice)
	if err != nil {
		return backupEnd{}, err
	}
	if start.Tablespaces, err = parseTablespaces(rs); err != nil {
		return backupEnd{}, err
	}
	msg, err := receive(ctx, w, what, h.notice)
	if err != nil {
		return backupEnd{}, err
	}
	if _, ok := msg.(*pgproto3.CopyOutResponse); !ok {
		return backupEnd{}, unexpected(what, msg, "the start of the COPY stream (PostgreSQL 15 or later is required)")
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

	rs, err = readResult(ctx, w, what, h.notice)
	if err != nil {
		return backupEnd{}, err
	}
	var end backupEnd
	end.LSN, end.Timeline, err = parsePosition(rs, "end")
	if err != nil {
		return backupEnd{}, err
	}
	if err := waitReady(ctx, w, what, h.notice); err != nil {
		return backupEnd{}, err
	}
	return end, nil
}

// parsePosition reads the one-row (recptr, tli) result that starts and ends
// a base backup.
func parsePosition(rs resultSet, which string) (wal.LSN, wal.TimelineID, error) {
	if len(rs.rows) != 1 || len(rs.fields) != 2 {
		return 0, 0, fmt.Errorf("BASE_BACKUP: the %s position has %d rows of %d fields, want 1 row of 2", which, len(rs.rows), len(rs.fields))
	}
	lsn, err := wal.ParseLSN(rs.rows[0][0].s)
	if err != nil {
		return 0, 0, fmt.Errorf("BASE_BACKUP %s position: %w", which, err)
	}
	tli, err := parseTimeline(rs.rows[0][1].s)
	if err != nil {
		return 0, 0, fmt.Errorf("BASE_BACKUP %s position: %w", which, err)
	}
	return lsn, tli, nil
}

// parseTablespaces reads the (spcoid, spclocation, size) result. The main
// data directory has a NULL oid and location; size is in kB, NULL without
// PROGRESS.
func parseTablespaces(rs resultSet) ([]tablespace, error) {
	if len(rs.fields) != 3 {
		return nil, fmt.Errorf("BASE_BACKUP: the tablespace list has %d fields, want 3", len(rs.fields))
	}
	var out []tablespace
	for _, row := range rs.rows {
		ts := tablespace{Size: -1}
		if row[0].valid {
			oid, err := strconv.ParseUint(row[0].s, 10, 32)
			if err != nil || oid == 0 {
				return nil, fmt.Errorf("BASE_BACKUP: invalid tablespace oid %q", row[0].s)
			}
			ts.OID = uint32(oid)
			ts.Location = row[1].s
		}
		if row[2].valid {
			kb, err := strconv.ParseInt(row[2].s, 10, 64)
			if err != nil || kb < 0 {
				return nil, fmt.Errorf("BASE_BACKUP: invalid tablespace size %q", row[2].s)
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
	w        wire
	notice   noticeFunc
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
	msg, err := receive(s.ctx, s.w, "BASE_BACKUP", s.notice)
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
		return copyMsg{}, unexpected("BASE_BACKUP", msg, "COPY data")
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
