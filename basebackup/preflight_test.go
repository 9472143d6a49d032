package basebackup

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/archiveproof"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// reaching is an archiveProbe whose archiving reaches the repository or
// not, with archiveproof's verdict built from the settings.
func reaching(s serverSettings, reaches bool) archiveProbe {
	return archiveProbe{
		seen: func() (bool, error) { return reaches, nil },
		prove: func() error {
			if reaches {
				return nil
			}
			return &archiveproof.NotReachedError{Location: "file:///repo", Segment: "000000010000000000000003", Settings: s, Timeout: time.Second, Switched: true}
		},
	}
}

// TestCheckServer: archiving is judged by its effect; a refusal quotes
// archive_command (or archive_library) and says what to set.
func TestCheckServer(t *testing.T) {
	t.Parallel()
	ok := serverSettings{VersionNum: 150010, SegmentSize: 16 << 20, ArchiveMode: "on", ArchiveCommand: "/usr/local/bin/walvault wal-push %p"}
	with := func(f func(*serverSettings)) serverSettings { s := ok; f(&s); return s }
	tests := []struct {
		name    string
		in      serverSettings
		reaches bool
		want    []string // substrings of the refusal; nil means accepted
	}{
		{"walvault archiving", ok, true, nil},
		{"archive_mode always", with(func(s *serverSettings) { s.ArchiveMode = "always" }), true, nil},
		{"walvault with options", with(func(s *serverSettings) { s.ArchiveCommand = "WALVAULT_CONFIG=/etc/walvault.yaml walvault wal-push %p" }), true, nil},
		{"wrapper script that reaches", with(func(s *serverSettings) { s.ArchiveCommand = "/usr/local/bin/archive.sh %p" }), true, nil},
		{"archive_mode off", with(func(s *serverSettings) { s.ArchiveMode = "off" }), true, []string{`archive_mode is "off"`, "archive_mode = on", "restart"}},
		{"archive_command cp", with(func(s *serverSettings) { s.ArchiveCommand = "cp %p /mnt/archive/%f" }), false, []string{`"cp %p /mnt/archive/%f"`, "archive_command = 'walvault wal-push %p'", "file:///repo"}},
		{"archive_command empty", with(func(s *serverSettings) { s.ArchiveCommand = "" }), false, []string{`archive_command is ""`}},
		{"walvault fetch is not push", with(func(s *serverSettings) { s.ArchiveCommand = "walvault wal-fetch %f %p" }), false, []string{"does not run walvault wal-push"}},
		{"archive_library", with(func(s *serverSettings) { s.ArchiveLibrary = "basic_archive" }), false, []string{`archive_library is "basic_archive"`}},
		{"PostgreSQL 14", with(func(s *serverSettings) { s.VersionNum = 140011 }), true, []string{"PostgreSQL 14.11 is too old"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// No wal-receive: archiving alone decides.
			_, _, err := chooseSource(tc.in, "file:///repo", reaching(tc.in, tc.reaches), func() ([]slotInfo, error) { return nil, nil })
			if tc.want == nil {
				if err != nil {
					t.Fatalf("chooseSource: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("chooseSource: got %v, want a refusal", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("chooseSource: got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestCheckRepository(t *testing.T) {
	t.Parallel()
	sys := pg.SystemInfo{SystemID: "7712050215942653825", Timeline: 1}
	settings := serverSettings{SegmentSize: 16 << 20}
	created := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		identity *repository.Identity
		want     string // "" means accepted
	}{
		{"empty repository", nil, "no WAL has reached repository"},
		{"this cluster", ptr(repository.NewIdentity(7712050215942653825, 16<<20, 15, repository.LZ4, "db-1", created)), ""},
		{"another cluster", ptr(repository.NewIdentity(42, 16<<20, 15, repository.LZ4, "db-2", created)), "system identifier 42, but this server's is 7712050215942653825"},
		{"other segment size", ptr(repository.NewIdentity(7712050215942653825, 1<<20, 15, repository.LZ4, "db-1", created)), "segments of 1048576 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mem.New()
			if tc.identity != nil {
				if _, err := repository.EnsureIdentity(t.Context(), b, *tc.identity, nil); err != nil {
					t.Fatal(err)
				}
			}
			got, err := checkRepository(t.Context(), b, sys, settings)
			if tc.want == "" {
				if err != nil || got.SystemID != sys.SystemID {
					t.Fatalf("checkRepository: got %+v, %v; want this cluster's identity", got, err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkRepository: got %v, want a refusal containing %q", err, tc.want)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Errorf("checkRepository: %v must not read as ErrNotFound", err)
			}
		})
	}
}

func TestReadSettings(t *testing.T) {
	t.Parallel()
	// The server's clock is an hour ahead of this host's.
	serverClock := fmt.Sprintf("%.6f", float64(time.Now().Add(time.Hour).UnixMicro())/1e6)
	settingsRow := []pgproto3.BackendMessage{
		pgtest.RowDesc("a", "b", "c", "d", "e", "f", "g"), pgtest.DataRow("150010", "on", "16777216", "", "f", serverClock, ""), pgtest.Complete("SELECT 1"),
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	}
	w := &pgtest.Server{Msgs: append(append([]pgproto3.BackendMessage{}, settingsRow...),
		pgtest.RowDesc("archive_command"), pgtest.DataRow("walvault wal-push %p"), pgtest.Complete("SHOW"), &pgproto3.ReadyForQuery{TxStatus: 'I'})}
	got, err := readSettings(t.Context(), w, "backup")
	if off := got.ClockOffset; off < time.Hour-time.Second || off > time.Hour {
		t.Errorf("readSettings: clock offset %v, want the server's hour ahead", off)
	}
	got.ClockOffset, got.ClockUncertainty = 0, 0
	want := serverSettings{VersionNum: 150010, SegmentSize: 16 << 20, ArchiveMode: "on", ArchiveCommand: "walvault wal-push %p"}
	if err != nil || got != want {
		t.Fatalf("readSettings: got %+v, %v; want %+v, nil", got, err, want)
	}

	// A standby whose clock is right, while its primary's is 5 minutes
	// ahead (its WAL receiver's last message says so): the backup's
	// times are the primary's (explore23e F1).
	now := fmt.Sprintf("%.6f", float64(time.Now().UnixMicro())/1e6)
	w = &pgtest.Server{Msgs: []pgproto3.BackendMessage{
		pgtest.RowDesc("a", "b", "c", "d", "e", "f", "g"), pgtest.DataRow("150010", "always", "16777216", "", "t", now, "300.000000"), pgtest.Complete("SELECT 1"),
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
		pgtest.RowDesc("archive_command"), pgtest.DataRow("walvault wal-push %p"), pgtest.Complete("SHOW"), &pgproto3.ReadyForQuery{TxStatus: 'I'}}}
	got, err = readSettings(t.Context(), w, "backup")
	if off := got.ClockOffset; err != nil || !got.PrimaryClockKnown || off < 5*time.Minute-time.Second || off > 5*time.Minute+time.Second {
		t.Errorf("a standby: clock offset %v (primary's known: %v), %v; want the primary's 5 minutes ahead", off, got.PrimaryClockKnown, err)
	}

	// A server that hides archive_command from the role: say which grant
	// lets walvault check it.
	w = &pgtest.Server{Msgs: append(append([]pgproto3.BackendMessage{}, settingsRow...),
		pgtest.ErrorMsg("42501", `must be superuser or have privileges of pg_read_all_settings to examine "archive_command"`),
		&pgproto3.ReadyForQuery{TxStatus: 'I'})}
	_, err = readSettings(t.Context(), w, "backup")
	if err == nil || !strings.Contains(err.Error(), `GRANT pg_read_all_settings TO "backup"`) {
		t.Errorf("readSettings without the right to read archive_command: got %v, want the GRANT that fixes it", err)
	}
}

// TestChooseSource is the preflight decision: archive_command when its
// last segment is seen in the repository, else an active wal-receive,
// else archive_command once a switched segment arrives, else a refusal
// naming both fixes.
func TestChooseSource(t *testing.T) {
	t.Parallel()
	archiving := serverSettings{VersionNum: 150010, SegmentSize: 16 << 20, ArchiveMode: "on", ArchiveCommand: "walvault wal-push %p"}
	off := serverSettings{VersionNum: 150010, SegmentSize: 16 << 20, ArchiveMode: "off"}
	emptyCmd := serverSettings{VersionNum: 150010, SegmentSize: 16 << 20, ArchiveMode: "on", ArchiveCommand: ""}
	receiving := slotInfo{Name: "walvault", Active: true, AppName: receiveAppName, Flush: 0x3000148}
	standby := slotInfo{Name: "standby1", Active: true, AppName: "walreceiver", Flush: 0x3000148}
	stopped := slotInfo{Name: "walvault", Active: false}
	tests := []struct {
		name      string
		s         serverSettings
		slots     []slotInfo
		slotsErr  error
		archive   bool
		receivers []string // slot names
		refusal   []string // substrings; nil means accepted
		seen      bool     // the archiver's last segment is in the repository
		arrives   bool     // a switched segment arrives
	}{
		{"archive_command, no slot", archiving, nil, nil, true, nil, nil, true, true},
		{"archive_command wins over wal-receive", archiving, []slotInfo{receiving}, nil, true, nil, nil, true, true},
		{"new repository, switched segment arrives", archiving, nil, nil, true, nil, nil, false, true},
		{"wal-receive before waiting for archiving", archiving, []slotInfo{receiving}, nil, false, []string{"walvault"}, nil, false, true},
		{"archiving unproven, slots unreadable", archiving, nil, errors.New("permission denied"), true, nil, nil, false, true},
		{"archiving does not arrive, slots unreadable", archiving, nil, errors.New("permission denied"), false, nil, []string{"walvault wal-push", "did not reach", "permission denied"}, false, false},
		{"archive_mode off, wal-receive", off, []slotInfo{standby, receiving}, nil, false, []string{"walvault"}, nil, false, false},
		{"empty archive_command, wal-receive", emptyCmd, []slotInfo{receiving}, nil, false, []string{"walvault"}, nil, false, false},
		{"two receivers", off, []slotInfo{receiving, {Name: "walvault2", Active: true, AppName: receiveAppName}}, nil, false, []string{"walvault", "walvault2"}, nil, false, false},
		{"archive_mode off, nothing", off, nil, nil, false, nil, []string{`archive_mode is "off"`, "archive_mode = on", "restart PostgreSQL", "walvault wal-receive --slot walvault --create-slot"}, false, false},
		{"only a standby's slot", off, []slotInfo{standby}, nil, false, nil, []string{"archive_mode = on", "wal-receive"}, false, false},
		{"wal-receive stopped", off, []slotInfo{stopped}, nil, false, nil, []string{"wal-receive", "slot 'walvault' exists but is inactive"}, false, false},
		{"cp archive_command, nothing", serverSettings{VersionNum: 150010, ArchiveMode: "on", ArchiveCommand: "cp %p /x/%f"}, nil, nil, false, nil, []string{`"cp %p /x/%f"`, "archive_command = 'walvault wal-push %p'", "wal-receive"}, false, false},
		{"slots unreadable", off, nil, errors.New("permission denied"), false, nil, []string{"archive_mode = on", "permission denied"}, false, false},
		{"PostgreSQL 14 with wal-receive", serverSettings{VersionNum: 140011, ArchiveMode: "off"}, []slotInfo{receiving}, nil, false, nil, []string{"PostgreSQL 14.11 is too old"}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			asked := false
			probe := reaching(tc.s, tc.arrives)
			probe.seen = func() (bool, error) { return tc.seen, nil }
			archive, receivers, err := chooseSource(tc.s, "file:///repo", probe, func() ([]slotInfo, error) { asked = true; return tc.slots, tc.slotsErr })
			if tc.refusal != nil {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("chooseSource: got %v, want a refusal", err)
				}
				for _, w := range tc.refusal {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("refusal %q: want it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("chooseSource: %v", err)
			}
			var names []string
			for _, r := range receivers {
				names = append(names, r.Name)
			}
			if archive != tc.archive || strings.Join(names, ",") != strings.Join(tc.receivers, ",") {
				t.Errorf("chooseSource: archive %v, receivers %v; want %v, %v", archive, names, tc.archive, tc.receivers)
			}
			if tc.seen && asked {
				t.Error("a server whose archiving is seen to reach the repository was asked about replication slots")
			}
		})
	}
}

func TestReadSlots(t *testing.T) {
	t.Parallel()
	w := &pgtest.Server{Msgs: []pgproto3.BackendMessage{
		pgtest.RowDesc("slot_name", "active", "application_name", "flush_lsn"),
		pgtest.DataRow("standby1", "t", "walreceiver", "0/3000060"),
		pgtest.DataRow("walvault", "t", "walvault-receive", "1/A0000000"),
		pgtest.DataRow("old", "f", "", ""),
		pgtest.Complete("SELECT 3"), &pgproto3.ReadyForQuery{TxStatus: 'I'},
	}}
	got, err := readSlots(t.Context(), w)
	if err != nil {
		t.Fatal(err)
	}
	want := []slotInfo{
		{Name: "standby1", Active: true, AppName: "walreceiver", Flush: 0x3000060},
		{Name: "walvault", Active: true, AppName: "walvault-receive", Flush: 0x1A0000000},
		{Name: "old"},
	}
	if len(got) != len(want) {
		t.Fatalf("readSlots: got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("slot %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(w.Queries) != 1 || !strings.Contains(w.Queries[0], "pg_stat_replication r ON r.pid = s.active_pid") {
		t.Errorf("query: %q", w.Queries)
	}
}

// putWAL stores an object under key, as a stand-in for what wal-push or
// wal-receive would store there (only its existence matters here).
func putWAL(t *testing.T, b storage.Backend, key string) {
	t.Helper()
	if err := b.Put(t.Context(), key, bytes.NewReader([]byte("x")), storage.PutOptions{IfNotExists: true, Size: 1}); err != nil {
		t.Fatal(err)
	}
}

func segKey(seg wal.Segment) string {
	return repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}, repository.LZ4)
}

// TestConfirmReceiver: a wal-receive counts only when the repository holds
// what its walsender says was flushed.
func TestConfirmReceiver(t *testing.T) {
	t.Parallel()
	const segSize = 16 << 20
	seg3 := wal.Segment{Timeline: 1, Seg: 3}
	mid := wal.LSN(0x3000148) // inside segment 3
	tests := []struct {
		name    string
		objects []string
		slots   []slotInfo
		want    string // slot chosen; "" means refused
		refusal []string
	}{
		{"partial reaching the flush", []string{repository.PartialKey(seg3, mid, repository.LZ4)}, []slotInfo{{Name: "walvault", Flush: mid}}, "walvault", nil},
		{"newer partial", []string{repository.PartialKey(seg3, mid+100, repository.LZ4)}, []slotInfo{{Name: "walvault", Flush: mid}}, "walvault", nil},
		{"complete segment", []string{segKey(seg3)}, []slotInfo{{Name: "walvault", Flush: mid}}, "walvault", nil},
		{"flush at a segment boundary", []string{segKey(seg3)}, []slotInfo{{Name: "walvault", Flush: 0x4000000}}, "walvault", nil},
		{"just resumed at a segment boundary", nil, []slotInfo{{Name: "walvault", Flush: 0x4000000}}, "walvault", nil},
		{"a confirmed one beats a resuming one", []string{segKey(seg3)}, []slotInfo{{Name: "a", Flush: 0x9000000}, {Name: "b", Flush: mid}}, "b", nil},
		{"partial short of the flush", []string{repository.PartialKey(seg3, mid-8, repository.LZ4)}, []slotInfo{{Name: "walvault", Flush: mid}}, "", []string{"slot 'walvault' reports 0/3000148 flushed", "neither segment 000000010000000000000003 nor a partial", "(--repo)"}},
		{"another repository", nil, []slotInfo{{Name: "walvault", Flush: mid}}, "", []string{"not into repository"}},
		{"the second one streams here", []string{segKey(seg3)}, []slotInfo{{Name: "a", Flush: 0x9000148}, {Name: "b", Flush: mid}}, "b", nil},
		{"flush not visible", nil, []slotInfo{{Name: "walvault"}}, "walvault", nil},
		{"a confirmed one beats an unknown one", []string{segKey(seg3)}, []slotInfo{{Name: "a"}, {Name: "b", Flush: mid}}, "b", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mem.New()
			for _, k := range tc.objects {
				putWAL(t, b, k)
			}
			got, err := confirmReceiver(t.Context(), b, repository.LZ4, 1, segSize, tc.slots)
			if tc.want == "" {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("confirmReceiver: got %+v, %v; want a refusal", got, err)
				}
				for _, w := range tc.refusal {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("refusal %q: want it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil || got.Slot != tc.want {
				t.Fatalf("confirmReceiver: got %+v, %v; want slot %s", got, err, tc.want)
			}
			if got.String() != "wal-receive on slot "+tc.want {
				t.Errorf("source: %q", got)
			}
		})
	}
	if s := (walSource{}).String(); s != "archive_command" {
		t.Errorf("archive source: %q", s)
	}
}

func ptr[T any](v T) *T { return &v }
