package basebackup

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg/pgtest"
)

func newArchiveMsg(name, location string) *pgproto3.CopyData {
	return pgtest.CopyData('n', name+"\x00"+location+"\x00")
}

func progressMsg(done int64) *pgproto3.CopyData {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(done))
	return pgtest.CopyData('p', string(b[:]))
}

// backupHead is what PostgreSQL 15 sends before the COPY data: one
// tablespace (oid 16406 at /ts) and the data directory.
func backupHead() []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{
		pgtest.RowDesc("recptr", "tli"), pgtest.DataRow("0/3000028", "1"), pgtest.Complete("SELECT"),
		pgtest.RowDesc("spcoid", "spclocation", "size"), pgtest.DataRow("16406", "/ts", "361"), pgtest.DataRow("\x00", "\x00", "38446"), pgtest.Complete("SELECT"),
		&pgproto3.CopyOutResponse{},
	}
}

// backupTail is what follows the COPY data.
func backupTail() []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{
		&pgproto3.CopyDone{},
		pgtest.RowDesc("recptr", "tli"), pgtest.DataRow("0/3000100", "1"), pgtest.Complete("SELECT"),
		pgtest.Complete("BASE_BACKUP"), &pgproto3.ReadyForQuery{TxStatus: 'I'},
	}
}

func script(parts ...[]pgproto3.BackendMessage) *pgtest.Server {
	w := &pgtest.Server{}
	for _, p := range parts {
		w.Msgs = append(w.Msgs, p...)
	}
	return w
}

// recorder is a set of handlers that keeps everything it is given.
type recorder struct {
	start    backupStart
	archives []string // "name@location:contents"
	manifest string
	progress []int64
	notices  []string
}

func (r *recorder) handlers() backupHandlers {
	return backupHandlers{
		start: func(s backupStart) error { r.start = s; return nil },
		archive: func(name, location string, rd io.Reader) error {
			b, err := io.ReadAll(rd)
			r.archives = append(r.archives, name+"@"+location+":"+string(b))
			return err
		},
		manifest: func(rd io.Reader) error {
			b, err := io.ReadAll(rd)
			r.manifest = string(b)
			return err
		},
		progress: func(n int64) { r.progress = append(r.progress, n) },
		notice:   func(n *pgconn.Notice) { r.notices = append(r.notices, n.Message) },
	}
}

func TestRunBaseBackup(t *testing.T) {
	t.Parallel()
	w := script(backupHead(), []pgproto3.BackendMessage{
		newArchiveMsg("16406.tar", "/ts"), pgtest.CopyData('d', "abc"), progressMsg(3), pgtest.CopyData('d', "def"), progressMsg(6),
		newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "0123456789"), progressMsg(16),
		&pgproto3.NoticeResponse{Severity: "NOTICE", Message: "all required WAL segments have been archived"},
		pgtest.CopyData('m', ""), pgtest.CopyData('d', `{"PostgreSQL-Backup-Manifest-Version": 1}`),
	}, backupTail())
	var r recorder
	end, err := runBaseBackup(t.Context(), w, "BASE_BACKUP", r.handlers())
	if err != nil {
		t.Fatalf("runBaseBackup: got %v, want nil", err)
	}
	if len(w.Msgs) != 0 {
		t.Errorf("%d messages left unread", len(w.Msgs))
	}
	wantStart := backupStart{LSN: 0x3000028, Timeline: 1, Tablespaces: []tablespace{{OID: 16406, Location: "/ts", Size: 361 * 1024}, {Size: 38446 * 1024}}}
	if got := r.start; got.LSN != wantStart.LSN || got.Timeline != wantStart.Timeline || len(got.Tablespaces) != 2 ||
		got.Tablespaces[0] != wantStart.Tablespaces[0] || got.Tablespaces[1] != wantStart.Tablespaces[1] {
		t.Errorf("start: got %+v, want %+v", got, wantStart)
	}
	if got, want := r.start.EstimatedSize(), int64((361+38446)*1024); got != want {
		t.Errorf("EstimatedSize: got %d, want %d", got, want)
	}
	if got, want := strings.Join(r.archives, "|"), "16406.tar@/ts:abcdef|base.tar@:0123456789"; got != want {
		t.Errorf("archives: got %q, want %q", got, want)
	}
	if r.manifest != `{"PostgreSQL-Backup-Manifest-Version": 1}` {
		t.Errorf("manifest: got %q", r.manifest)
	}
	if got := r.progress; len(got) != 3 || got[0] != 3 || got[1] != 6 || got[2] != 16 {
		t.Errorf("progress: got %v, want [3 6 16]", got)
	}
	if len(r.notices) != 1 {
		t.Errorf("notices: got %q, want one", r.notices)
	}
	if end != (backupEnd{LSN: 0x3000100, Timeline: 1}) {
		t.Errorf("end: got %+v, want 0/3000100 on timeline 1", end)
	}
}

// TestRunBaseBackupSkipsUnread: a handler that stops reading early leaves
// the stream in step.
func TestRunBaseBackupSkipsUnread(t *testing.T) {
	t.Parallel()
	w := script(backupHead(), []pgproto3.BackendMessage{
		newArchiveMsg("16406.tar", "/ts"), pgtest.CopyData('d', "abc"), pgtest.CopyData('d', "def"),
		newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "0123456789"),
		pgtest.CopyData('m', ""), pgtest.CopyData('d', "{}"),
	}, backupTail())
	var got []string
	h := backupHandlers{
		start: func(backupStart) error { return nil },
		archive: func(name, _ string, r io.Reader) error {
			buf := make([]byte, 2)
			n, err := io.ReadFull(r, buf)
			got = append(got, name+":"+string(buf[:n]))
			return err
		},
		manifest: func(io.Reader) error { return nil },
	}
	if _, err := runBaseBackup(t.Context(), w, "BASE_BACKUP", h); err != nil {
		t.Fatalf("runBaseBackup: got %v, want nil", err)
	}
	if strings.Join(got, "|") != "16406.tar:ab|base.tar:01" {
		t.Errorf("got %q, want the first two bytes of each archive", got)
	}
}

func TestRunBaseBackupErrors(t *testing.T) {
	t.Parallel()
	head := backupHead()
	stream := func(msgs ...pgproto3.BackendMessage) []pgproto3.BackendMessage {
		return append(append([]pgproto3.BackendMessage{}, head...), msgs...)
	}
	handlerErr := errors.New("storage is full")
	tests := []struct {
		name       string
		msgs       []pgproto3.BackendMessage
		archiveErr error  // returned by the archive handler
		wantErr    string // substring
		wantCode   string // SQLSTATE of a wrapped PgError, if any
	}{
		{
			name:     "error instead of a result",
			msgs:     []pgproto3.BackendMessage{pgtest.ErrorMsg("55000", "WAL level not sufficient for making an online backup")},
			wantErr:  "WAL level not sufficient",
			wantCode: "55000",
		},
		{
			name:     "error midway through an archive",
			msgs:     stream(newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "abc"), pgtest.ErrorMsg("58P01", "could not open file")),
			wantErr:  "could not open file",
			wantCode: "58P01",
		},
		{
			name:    "connection lost midway",
			msgs:    stream(newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "abc")),
			wantErr: "connection to PostgreSQL lost",
		},
		{
			name:    "data before any archive",
			msgs:    stream(pgtest.CopyData('d', "abc")),
			wantErr: "data arrived before any archive began",
		},
		{
			name:    "unknown message type",
			msgs:    stream(pgtest.CopyData('x', "abc")),
			wantErr: `unknown CopyData type 'x'`,
		},
		{
			name:    "empty CopyData",
			msgs:    stream(&pgproto3.CopyData{}),
			wantErr: "empty CopyData",
		},
		{
			name:    "malformed new archive",
			msgs:    stream(pgtest.CopyData('n', "base.tar")),
			wantErr: "malformed new-archive message",
		},
		{
			name:    "new archive without location",
			msgs:    stream(pgtest.CopyData('n', "base.tar\x00")),
			wantErr: "malformed new-archive message",
		},
		{
			name:    "short progress message",
			msgs:    stream(pgtest.CopyData('p', "abc")),
			wantErr: "progress message of 3 bytes",
		},
		{
			name:    "two manifests",
			msgs:    stream(pgtest.CopyData('m', ""), pgtest.CopyData('m', "")),
			wantErr: "second manifest",
		},
		{
			name:    "archive after the manifest",
			msgs:    stream(pgtest.CopyData('m', ""), newArchiveMsg("base.tar", "")),
			wantErr: "began after the manifest",
		},
		{
			name:    "old server without the copystream format",
			msgs:    append(append([]pgproto3.BackendMessage{}, head[:len(head)-1]...), pgtest.Complete("SELECT")),
			wantErr: "PostgreSQL 15 or later is required",
		},
		{
			name:    "start position malformed",
			msgs:    []pgproto3.BackendMessage{pgtest.RowDesc("recptr", "tli"), pgtest.DataRow("nonsense", "1"), pgtest.Complete("SELECT")},
			wantErr: "invalid LSN",
		},
		{
			name:       "handler fails",
			msgs:       stream(newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "abc")),
			archiveErr: handlerErr,
			wantErr:    "storage is full",
		},
		{
			name:    "error after the COPY",
			msgs:    stream(&pgproto3.CopyDone{}, pgtest.ErrorMsg("XX000", "backup ended badly")),
			wantErr: "backup ended badly",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := backupHandlers{
				start: func(backupStart) error { return nil },
				archive: func(_, _ string, r io.Reader) error {
					if tc.archiveErr != nil {
						return tc.archiveErr
					}
					_, err := io.Copy(io.Discard, r)
					return err
				},
				manifest: func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err },
			}
			_, err := runBaseBackup(t.Context(), &pgtest.Server{Msgs: tc.msgs}, "BASE_BACKUP", h)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("runBaseBackup: got %v, want an error containing %q", err, tc.wantErr)
			}
			var pgErr *pgconn.PgError
			if tc.wantCode != "" && (!errors.As(err, &pgErr) || pgErr.Code != tc.wantCode) {
				t.Errorf("error %v: want a PgError with code %s", err, tc.wantCode)
			}
			if tc.archiveErr != nil && !errors.Is(err, tc.archiveErr) {
				t.Errorf("error %v: want it to wrap the handler's error", err)
			}
		})
	}
}

func TestRunBaseBackupCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	w := script(backupHead(), []pgproto3.BackendMessage{newArchiveMsg("base.tar", ""), pgtest.CopyData('d', "abc"), pgtest.CopyData('d', "def")})
	h := backupHandlers{
		start: func(backupStart) error { return nil },
		archive: func(_, _ string, r io.Reader) error {
			buf := make([]byte, 3)
			if _, err := io.ReadFull(r, buf); err != nil {
				return err
			}
			cancel()
			_, err := io.Copy(io.Discard, r)
			return err
		},
		manifest: func(io.Reader) error { return nil },
	}
	_, err := runBaseBackup(ctx, w, "BASE_BACKUP", h)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("runBaseBackup with a cancelled context: got %v, want context.Canceled", err)
	}
}

func TestBaseBackupCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, label string
		fast        bool
		want        string // the LABEL and CHECKPOINT options
		wantErr     bool
	}{
		{"plain", "walvault 20261125T103000Z", true, "LABEL 'walvault 20261125T103000Z', CHECKPOINT 'fast'", false},
		{"quote doubled", "it's", false, "LABEL 'it''s', CHECKPOINT 'spread'", false},
		{"backslash kept", `a\b`, true, `LABEL 'a\b', CHECKPOINT 'fast'`, false},
		{"injection stays inside the literal", "x', CHECKPOINT 'spread", true, "LABEL 'x'', CHECKPOINT ''spread', CHECKPOINT 'fast'", false},
		{"NUL refused", "a\x00b", true, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := baseBackupCommand(tc.label, tc.fast, true)
			if (err != nil) != tc.wantErr {
				t.Fatalf("baseBackupCommand(%q): got error %v, want error: %v", tc.label, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			want := "BASE_BACKUP ( " + tc.want + ", MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', PROGRESS, WAIT, TABLESPACE_MAP )"
			if got != want {
				t.Errorf("baseBackupCommand(%q):\ngot  %s\nwant %s", tc.label, got, want)
			}
		})
	}
}
