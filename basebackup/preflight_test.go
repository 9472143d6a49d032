package basebackup

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

func TestCheckServer(t *testing.T) {
	t.Parallel()
	ok := serverSettings{VersionNum: 150010, SegmentSize: 16 << 20, ArchiveMode: "on", ArchiveCommand: "/usr/local/bin/walvault wal-push %p"}
	with := func(f func(*serverSettings)) serverSettings { s := ok; f(&s); return s }
	tests := []struct {
		name string
		in   serverSettings
		want []string // substrings of the refusal; nil means accepted
	}{
		{"walvault archiving", ok, nil},
		{"archive_mode always", with(func(s *serverSettings) { s.ArchiveMode = "always" }), nil},
		{"walvault with options", with(func(s *serverSettings) { s.ArchiveCommand = "WALVAULT_CONFIG=/etc/walvault.yaml walvault wal-push %p" }), nil},
		{"archive_mode off", with(func(s *serverSettings) { s.ArchiveMode = "off" }), []string{`archive_mode is "off"`, "archive_mode = on", "restart"}},
		{"archive_command cp", with(func(s *serverSettings) { s.ArchiveCommand = "cp %p /mnt/archive/%f" }), []string{`"cp %p /mnt/archive/%f"`, "archive_command = 'walvault wal-push %p'", "file:///repo"}},
		{"archive_command empty", with(func(s *serverSettings) { s.ArchiveCommand = "" }), []string{`archive_command is ""`}},
		{"walvault fetch is not push", with(func(s *serverSettings) { s.ArchiveCommand = "walvault wal-fetch %f %p" }), []string{"does not run walvault wal-push"}},
		{"archive_library", with(func(s *serverSettings) { s.ArchiveLibrary = "basic_archive" }), []string{`archive_library is "basic_archive"`}},
		{"PostgreSQL 14", with(func(s *serverSettings) { s.VersionNum = 140011 }), []string{"PostgreSQL 14.11 is too old"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkServer(tc.in, "file:///repo")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("checkServer: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("checkServer: got %v, want a refusal", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("checkServer: got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestCheckRepository(t *testing.T) {
	t.Parallel()
	sys := systemInfo{SystemID: "7712050215942653825", Timeline: 1}
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
			b := fileBackend(t)
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
	settingsRow := []pgproto3.BackendMessage{
		rowDesc("a", "b", "c", "d", "e"), dataRow("150010", "on", "16777216", "", "f"), complete("SELECT 1"),
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	}
	w := &fakeWire{msgs: append(append([]pgproto3.BackendMessage{}, settingsRow...),
		rowDesc("archive_command"), dataRow("walvault wal-push %p"), complete("SHOW"), &pgproto3.ReadyForQuery{TxStatus: 'I'})}
	got, err := readSettings(t.Context(), w, "backup")
	want := serverSettings{VersionNum: 150010, SegmentSize: 16 << 20, ArchiveMode: "on", ArchiveCommand: "walvault wal-push %p"}
	if err != nil || got != want {
		t.Fatalf("readSettings: got %+v, %v; want %+v, nil", got, err, want)
	}

	// A server that hides archive_command from the role: say which grant
	// lets walvault check it.
	w = &fakeWire{msgs: append(append([]pgproto3.BackendMessage{}, settingsRow...),
		errorMsg("42501", `must be superuser or have privileges of pg_read_all_settings to examine "archive_command"`),
		&pgproto3.ReadyForQuery{TxStatus: 'I'})}
	_, err = readSettings(t.Context(), w, "backup")
	if err == nil || !strings.Contains(err.Error(), `GRANT pg_read_all_settings TO "backup"`) {
		t.Errorf("readSettings without the right to read archive_command: got %v, want the GRANT that fixes it", err)
	}
}

func ptr[T any](v T) *T { return &v }
