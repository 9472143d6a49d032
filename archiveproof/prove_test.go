package archiveproof

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

const sysID = "7712050215942653825"

var created = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func identity() repository.Identity {
	return repository.NewIdentity(7712050215942653825, 16<<20, 15, repository.LZ4, "db-1", created)
}

func settings() pg.Settings {
	return pg.Settings{VersionNum: 150010, SegmentSize: 16 << 20, ArchiveMode: "on", ArchiveCommand: "/usr/local/bin/archive.sh %p"}
}

func segKey(name string) string {
	f, err := wal.Classify(name)
	if err != nil {
		panic(err)
	}
	return repository.WALKey(f, repository.LZ4)
}

// fakeServer answers Prove's queries: pg_stat_archiver, then switch (or
// its refusal).
type fakeServer struct {
	lastArchived, failure string
	// archiver, when set, answers pg_stat_archiver instead (last
	// archived, failure), so that it can change during a wait.
	archiver func() (string, string)
	switched string // pg_walfile_name(pg_switch_wal()); "" refuses with 42501
	current  string // pg_walfile_name(pg_current_wal_lsn() - segsize)
	replay   string // pg_last_wal_replay_lsn()
}

func (f fakeServer) wire() *pgtest.Server {
	return &pgtest.Server{Answer: func(sql string) []pgproto3.BackendMessage {
		switch {
		case strings.Contains(sql, "pg_stat_archiver"):
			last, failure := f.lastArchived, f.failure
			if f.archiver != nil {
				last, failure = f.archiver()
			}
			failed, _, _ := strings.Cut(failure, " at ")
			return pgtest.Result("SELECT 1", []string{"a", "b", "c"}, []string{last, failure, failed})
		case strings.Contains(sql, "pg_current_xact_id"):
			return pgtest.Result("SELECT 1", []string{"pg_current_xact_id"}, []string{"742"})
		case strings.Contains(sql, "pg_switch_wal"):
			if f.switched == "" {
				return pgtest.Failure("42501", "permission denied for function pg_switch_wal")
			}
			return pgtest.Result("SELECT 1", []string{"pg_walfile_name"}, []string{f.switched})
		case strings.Contains(sql, "pg_current_wal_lsn"):
			return pgtest.Result("SELECT 1", []string{"pg_walfile_name"}, []string{f.current})
		case strings.Contains(sql, "pg_last_wal_replay_lsn"):
			return pgtest.Result("SELECT 1", []string{"lsn"}, []string{f.replay})
		}
		return pgtest.Failure("42601", "unexpected query "+sql)
	}}
}

// switched says whether Prove switched WAL, and fails the test unless it
// wrote a record first (a transaction with an xid): a switch with nothing
// written since the last one completes no new segment.
func switched(t *testing.T, w *pgtest.Server) bool {
	t.Helper()
	wrote := false
	for _, q := range w.Queries {
		wrote = wrote || strings.Contains(q, "pg_current_xact_id")
		if strings.Contains(q, "pg_switch_wal") {
			if !wrote {
				t.Errorf("Prove switched WAL without writing a record first: %q", w.Queries)
			}
			return true
		}
	}
	return false
}

func TestProveLastArchived(t *testing.T) {
	t.Parallel()
	b := repotest.New(t, identity())
	repotest.PutWAL(t, b, segKey("000000010000000000000005"), repository.LZ4, []byte("x"), nil)
	w := fakeServer{lastArchived: "000000010000000000000005"}.wire()
	p, err := Prove(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID}, Options{Timeout: time.Second})
	if err != nil || p.Segment != "000000010000000000000005" || p.Switched {
		t.Fatalf("Prove: got %+v, %v; want the last archived segment, without a switch", p, err)
	}
	if switched(t, w) {
		t.Error("Prove switched WAL although the last archived segment was in the repository")
	}
}

// TestProveSwitchesAndWaits: a repository no WAL has reached yet (no
// walvault.json), behind a wrapper script: Prove switches WAL and waits
// until the segment (and with it the identity) arrives.
func TestProveSwitchesAndWaits(t *testing.T) {
	t.Parallel()
	b := mem.New()
	w := fakeServer{lastArchived: "", switched: "000000010000000000000001"}.wire()
	go func() {
		time.Sleep(300 * time.Millisecond)
		repotest.Init(t, b, identity())
		repotest.PutWAL(t, b, segKey("000000010000000000000001"), repository.LZ4, []byte("x"), nil)
	}()
	p, err := Prove(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID}, Options{Timeout: 10 * time.Second})
	if err != nil || p.Segment != "000000010000000000000001" || !p.Switched || p.Waited < 200*time.Millisecond {
		t.Fatalf("Prove: got %+v, %v; want segment 1 after a switch and a wait", p, err)
	}
	if !switched(t, w) {
		t.Errorf("Prove did not switch WAL: %q", w.Queries)
	}
}

// TestProveStaleLastArchived: a last archived segment with a failure since
// proves nothing, and the archiver retries the failed segment before any
// other: Prove does not switch WAL (a segment more in pg_wal, on every
// check through an outage), it waits for the archiver to succeed again.
func TestProveStaleLastArchived(t *testing.T) {
	t.Parallel()
	b := repotest.New(t, identity())
	repotest.PutWAL(t, b, segKey("000000010000000000000005"), repository.LZ4, []byte("x"), nil)
	var recovered atomic.Bool
	w := fakeServer{switched: "000000010000000000000008", archiver: func() (string, string) {
		if recovered.Load() {
			return "000000010000000000000007", ""
		}
		return "000000010000000000000005", "000000010000000000000006 at 2026-11-25T09:00:00Z"
	}}.wire()
	go func() {
		time.Sleep(300 * time.Millisecond)
		repotest.PutWAL(t, b, segKey("000000010000000000000006"), repository.LZ4, []byte("x"), nil)
		repotest.PutWAL(t, b, segKey("000000010000000000000007"), repository.LZ4, []byte("x"), nil)
		recovered.Store(true)
	}()
	p, err := Prove(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID}, Options{Timeout: 10 * time.Second})
	if err != nil || p.Segment != "000000010000000000000007" || p.Switched || p.Waited < 200*time.Millisecond {
		t.Fatalf("Prove: got %+v, %v; want segment 7, archived once the archiver succeeded again, without a switch", p, err)
	}
	if switched(t, w) {
		t.Errorf("Prove switched WAL while the archiver was failing: %q", w.Queries)
	}
}

// TestProveFailedSegmentPushedAhead: while the archiver keeps failing,
// the failed segment stored in the repository by another call (wal-helper's
// push-ahead, a wal-push by hand) proves as much as the archiver's own
// success, without a switch.
func TestProveFailedSegmentPushedAhead(t *testing.T) {
	t.Parallel()
	b := repotest.New(t, identity())
	w := fakeServer{lastArchived: "000000010000000000000005", failure: "000000010000000000000006 at 2026-11-25T09:00:00Z", switched: "000000010000000000000008"}.wire()
	go func() {
		time.Sleep(300 * time.Millisecond)
		repotest.PutWAL(t, b, segKey("000000010000000000000006"), repository.LZ4, []byte("x"), nil)
	}()
	p, err := Prove(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID}, Options{Timeout: 10 * time.Second})
	if err != nil || p.Segment != "000000010000000000000006" || p.Switched || p.Waited < 200*time.Millisecond {
		t.Fatalf("Prove: got %+v, %v; want the failed segment 6 once stored, without a switch", p, err)
	}
	if switched(t, w) {
		t.Errorf("Prove switched WAL while the archiver was failing: %q", w.Queries)
	}
}

func TestProveNotReached(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		server fakeServer
		ident  bool
		want   []string
	}{
		{"empty repository", fakeServer{switched: "000000010000000000000003"}, false,
			[]string{`archive_command is "/usr/local/bin/archive.sh %p" (archive_mode = on; it does not run walvault wal-push itself)`, "000000010000000000000003", "SELECT pg_switch_wal()", "no WAL has reached repository mem://", PushLine}},
		{"elsewhere, failing", fakeServer{lastArchived: "000000010000000000000002", failure: "000000010000000000000003 at 2026-11-25T09:00:00Z", switched: "000000010000000000000003"}, true,
			[]string{"000000010000000000000003, which PostgreSQL's archiver keeps failing to archive", "archiver last failed on 000000010000000000000003 at 2026-11-25T09:00:00Z", "did not reach mem://"}},
		{"no right to switch", fakeServer{current: "000000010000000000000004"}, true,
			[]string{"000000010000000000000004", "which the server archived last"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			if tc.ident {
				repotest.Init(t, b, identity())
			}
			start := time.Now()
			w := tc.server.wire()
			_, err := Prove(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID, User: "backup"}, Options{Timeout: 500 * time.Millisecond})
			if !errors.Is(err, ErrNotReached) {
				t.Fatalf("Prove: got %v, want ErrNotReached", err)
			}
			if d := time.Since(start); d < 500*time.Millisecond || d > 5*time.Second {
				t.Errorf("Prove gave up after %v, want about the 500ms timeout", d)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q: want it to contain %q", err, want)
				}
			}
			if tc.server.failure != "" && switched(t, w) {
				t.Errorf("Prove switched WAL while the archiver was failing: %q", w.Queries)
			}
		})
	}
}

func TestProveOtherCluster(t *testing.T) {
	t.Parallel()
	b := repotest.New(t, repository.NewIdentity(42, 16<<20, 15, repository.LZ4, "db-2", created))
	w := fakeServer{switched: "000000010000000000000003"}.wire()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := Prove(ctx, w, b, Server{Settings: settings(), SystemID: sysID}, Options{Timeout: time.Minute})
	if err == nil || errors.Is(err, ErrNotReached) || !strings.Contains(err.Error(), "system identifier 42") {
		t.Fatalf("Prove into another cluster's repository: got %v, want an error at once naming 42", err)
	}
}

// TestProveStandby: a standby cannot switch WAL; the segment before the
// one replay is in is looked for on the server's timeline.
func TestProveStandby(t *testing.T) {
	t.Parallel()
	b := repotest.New(t, identity())
	repotest.PutWAL(t, b, segKey("000000020000000000000004"), repository.LZ4, []byte("x"), nil)
	s := settings()
	s.InRecovery = true
	w := fakeServer{replay: "0/5000148"}.wire()
	p, err := Prove(t.Context(), w, b, Server{Settings: s, SystemID: sysID, Timeline: 2}, Options{Timeout: time.Second})
	if err != nil || p.Segment != "000000020000000000000004" || p.Switched || !p.Replayed || !strings.Contains(p.String(), "the last this standby replayed") {
		t.Fatalf("Prove on a standby: got %+v (%s), %v; want segment 000000020000000000000004, replayed, without a switch", p, p, err)
	}
	if switched(t, w) {
		t.Error("Prove tried to switch WAL on a standby")
	}
}

// TestProveStandbyIgnoresItsOldArchiver: a standby with archive_mode = on
// (an old primary after a switchover) still shows what its archiver did
// as a primary; that segment in the repository proves nothing of today's
// archiving: the segment replay completed last is looked for.
func TestProveStandbyIgnoresItsOldArchiver(t *testing.T) {
	t.Parallel()
	b := repotest.New(t, identity())
	repotest.PutWAL(t, b, segKey("000000010000000000000003"), repository.LZ4, []byte("x"), nil)
	s := settings()
	s.InRecovery = true
	w := fakeServer{lastArchived: "000000010000000000000003", replay: "0/5000148"}.wire()
	_, err := Prove(t.Context(), w, b, Server{Settings: s, SystemID: sysID, Timeline: 2}, Options{Timeout: 300 * time.Millisecond})
	var nr *NotReachedError
	if !errors.As(err, &nr) || nr.Segment != "000000020000000000000004" {
		t.Fatalf("Prove on a standby whose archiver archived as a primary: %v; want not reached, at the segment replayed last", err)
	}
}

// TestProveLastArchivedBackupHistory: after a backup the archiver's last
// file is the backup history file until the next segment completes; when
// asked (HistoryProves, backup-push), found in the repository it proves
// archiving as a segment does, without a switch and a wait.
func TestProveLastArchivedBackupHistory(t *testing.T) {
	t.Parallel()
	b := repotest.New(t, identity())
	const history = "000000010000000000000005.00000028.backup"
	f, err := wal.Classify(history)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), repository.WALKey(f, repository.LZ4), strings.NewReader("START WAL LOCATION: 0/5000028\n"), storage.PutOptions{Size: -1}); err != nil {
		t.Fatal(err)
	}
	// Unasked (check), it proves nothing: Prove switches and waits.
	w := fakeServer{lastArchived: history, switched: "000000010000000000000006"}.wire()
	repotest.PutWAL(t, b, segKey("000000010000000000000006"), repository.LZ4, []byte("x"), nil)
	if p, err := Prove(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID}, Options{Timeout: time.Second}); err != nil || p.Segment != "000000010000000000000006" || !p.Switched {
		t.Fatalf("Prove without HistoryProves: got %+v, %v; want segment 6 after a switch", p, err)
	}
	w = fakeServer{lastArchived: history, switched: "000000010000000000000006"}.wire()
	p, err := Prove(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID, HistoryProves: true}, Options{Timeout: time.Second})
	if err != nil || p.Segment != history || p.Switched {
		t.Fatalf("Prove: got %+v, %v; want the backup history file, without a switch", p, err)
	}
	if switched(t, w) {
		t.Error("Prove switched WAL although the last archived file was in the repository")
	}
	if got := p.String(); !strings.Contains(got, "backup history file "+history) {
		t.Errorf("proof says %q, want it to name the backup history file", got)
	}
}

// statsAtOnce holds each Stat until want of them have begun, or a second
// has passed (then it notes that they came one after another).
type statsAtOnce struct {
	storage.Backend
	want int

	mu     sync.Mutex
	begun  int
	serial bool
}

func (b *statsAtOnce) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	b.mu.Lock()
	b.begun++
	b.mu.Unlock()
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		enough, late := b.begun >= b.want, time.Now().After(deadline)
		b.serial = b.serial || (late && !enough)
		b.mu.Unlock()
		if enough || late {
			break
		}
	}
	return b.Backend.Stat(ctx, key)
}

// TestProvePollOneRoundTrip: while Prove waits for the switched segment,
// each look asks for it under every codec's key at once: over a network a
// look costs one round trip, not one per codec.
func TestProvePollOneRoundTrip(t *testing.T) {
	t.Parallel()
	mb := repotest.New(t, identity())
	b := &statsAtOnce{Backend: mb, want: len(repository.Compressions)}
	w := fakeServer{lastArchived: "", switched: "000000010000000000000001"}.wire()
	go func() {
		time.Sleep(100 * time.Millisecond)
		repotest.PutWAL(t, mb, segKey("000000010000000000000001"), repository.LZ4, []byte("x"), nil)
	}()
	p, err := Prove(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID}, Options{Timeout: 10 * time.Second})
	if err != nil || p.Segment != "000000010000000000000001" {
		t.Fatalf("Prove: got %+v, %v; want segment 1", p, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.serial {
		t.Errorf("a look for the segment asked for its %d keys one after another", b.want)
	}
}

// identityAfterStat answers the Get of walvault.json only once a Stat has
// begun, or after a second (noting then that it was read first, alone).
type identityAfterStat struct {
	storage.Backend
	once   sync.Once
	stat   chan struct{}
	serial bool
}

func (b *identityAfterStat) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	b.once.Do(func() { close(b.stat) })
	return b.Backend.Stat(ctx, key)
}

func (b *identityAfterStat) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if key == repository.IdentityKey {
		select {
		case <-b.stat:
		case <-time.After(time.Second):
			b.serial = true
		}
	}
	return b.Backend.Get(ctx, key)
}

// TestLastArchivedOneRoundTrip: with the identity not handed over, the
// cheap look reads walvault.json beside its look for the archiver's last
// segment, not before it: one round trip, not two.
func TestLastArchivedOneRoundTrip(t *testing.T) {
	t.Parallel()
	mb := repotest.New(t, identity())
	repotest.PutWAL(t, mb, segKey("000000010000000000000005"), repository.LZ4, []byte("x"), nil)
	b := &identityAfterStat{Backend: mb, stat: make(chan struct{})}
	w := fakeServer{lastArchived: "000000010000000000000005"}.wire()
	p, seen, err := LastArchived(t.Context(), w, b, Server{Settings: settings(), SystemID: sysID})
	if err != nil || !seen || p.Segment != "000000010000000000000005" {
		t.Fatalf("LastArchived: %+v, %v, %v; want segment 5 seen", p, seen, err)
	}
	if b.serial {
		t.Error("walvault.json was read before the segment was looked for: two round trips in series")
	}
}

// TestNotReachedAdvice: when archive_command runs walvault wal-push and
// the archiver keeps failing, the advice is its calls' error in the
// server log, not to set the command it already is (explore23a F1);
// otherwise it is the command to set.
func TestNotReachedAdvice(t *testing.T) {
	e := &NotReachedError{Location: "s3://b/db1", Segment: "00000001000000000000000A", Timeout: time.Second, Switched: true,
		Settings: pg.Settings{ArchiveMode: "on", ArchiveCommand: "/usr/bin/walvault wal-push %p"}, LastFailure: "000000010000000000000008 at 2026-12-07T20:00:00Z"}
	if msg := e.Error(); !strings.Contains(msg, "its calls fail: the server log has wal-push's error") || strings.Contains(msg, "set "+PushLine) {
		t.Errorf("wal-push failing: %q; want the calls' error pointed at, not the command to set", msg)
	}
	e.Settings.ArchiveCommand = "/bin/true"
	if msg := e.Error(); !strings.Contains(msg, "set "+PushLine) {
		t.Errorf("another command failing: %q; want the command to set", msg)
	}
}
