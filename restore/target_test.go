package restore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

func ptr[T any](v T) *T { return &v }

func TestTargetValidate(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	lsn := wal.LSN(0x3000028)
	tests := []struct {
		name    string
		in      Target
		wantErr string // "" for valid
	}{
		{"latest", Target{}, ""},
		{"latest with timeline", Target{Timeline: "current"}, ""},
		{"time", Target{Time: &ts, Inclusive: ptr(false), Action: "promote"}, ""},
		{"xid", Target{XID: "1234", Action: "pause"}, ""},
		{"xid8 with epoch", Target{XID: "4294968530"}, ""},
		{"lsn", Target{LSN: &lsn, Timeline: "2", Action: "shutdown"}, ""},
		{"name", Target{Name: "before_drop", Action: "promote"}, ""},
		{"immediate", Target{Immediate: true, Action: "promote"}, ""},
		{"two targets", Target{Time: &ts, XID: "5"}, "at most one of time, xid"},
		{"three targets", Target{LSN: &lsn, Name: "x", Immediate: true}, "lsn, name, immediate"},
		{"zero time", Target{Time: &time.Time{}}, "zero time"},
		{"xid not decimal", Target{XID: "0x10"}, "decimal transaction id"},
		{"xid negative", Target{XID: "-5"}, "decimal transaction id"},
		{"xid too large", Target{XID: "18446744073709551616"}, "larger than"},
		{"xid reserved", Target{XID: "2"}, "reserved"},
		{"xid8 with reserved low half", Target{XID: "4294967298"}, "reserved"},
		{"name too long", Target{Name: strings.Repeat("n", 64)}, "at most 63"},
		{"name with newline", Target{Name: "a\nb"}, "line break"},
		{"inclusive without target", Target{Inclusive: ptr(true)}, "inclusive applies only"},
		{"inclusive with name", Target{Name: "x", Inclusive: ptr(true)}, "inclusive applies only"},
		{"timeline zero", Target{Timeline: "0"}, "invalid recovery target timeline"},
		{"timeline hex", Target{Timeline: "0x2"}, "invalid recovery target timeline"},
		{"timeline word", Target{Timeline: "newest"}, "invalid recovery target timeline"},
		{"unknown action", Target{Name: "x", Action: "stop"}, "unknown recovery target action"},
		{"action without target", Target{Action: "promote"}, "needs a target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate(%+v): got %v, want nil", tc.in, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate(%+v): got %v, want an error containing %q", tc.in, err, tc.wantErr)
			}
		})
	}
}

func done(id, stopLSN string, stop time.Time) repository.BackupInfo {
	return repository.BackupInfo{ID: id, Status: repository.StatusDone, Manifest: &repository.BackupManifest{ID: id, StopLSN: stopLSN, StopTime: stop}}
}

func TestChooseBackup(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 12, 0, 0, 0, time.UTC) }
	lsn := func(s string) *wal.LSN {
		l, err := wal.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return &l
	}
	backups := []repository.BackupInfo{
		done("20261120T115000Z", "0/3000100", day(20)),
		done("20261121T115000Z", "0/5000100", day(21)),
		{ID: "20261122T115000Z", Status: repository.StatusWaitingForWALs, MissingWAL: "000000010000000000000008",
			Manifest: &repository.BackupManifest{ID: "20261122T115000Z", StopLSN: "0/7000100", StopTime: day(22)}},
		{ID: "20261123T115000Z", Status: repository.StatusIncomplete},
	}
	tests := []struct {
		name    string
		ref     string
		target  Target
		want    string
		wantErr string
		noMatch bool // the error must wrap repository.ErrNoBackup
	}{
		{name: "latest", target: Target{}, want: "20261121T115000Z"},
		{name: "LATEST", ref: "LATEST", target: Target{}, want: "20261121T115000Z"},
		{name: "xid takes the newest", target: Target{XID: "900"}, want: "20261121T115000Z"},
		{name: "name takes the newest", target: Target{Name: "rp"}, want: "20261121T115000Z"},
		{name: "immediate takes the newest", target: Target{Immediate: true}, want: "20261121T115000Z"},
		{name: "time after the newest", target: Target{Time: ptr(day(25))}, want: "20261121T115000Z"},
		{name: "time between backups", target: Target{Time: ptr(day(21).Add(-time.Second))}, want: "20261120T115000Z"},
		{name: "time equal to a stop time takes the one before", target: Target{Time: ptr(day(21))}, want: "20261120T115000Z"},
		{name: "time just after a stop time", target: Target{Time: ptr(day(21).Add(time.Nanosecond))}, want: "20261121T115000Z"},
		{name: "time before every backup", target: Target{Time: ptr(day(20))}, noMatch: true, wantErr: "earlier than every backup: the oldest DONE backup, 20261120T115000Z, ends at 2026-11-20T12:00:00Z (LSN 0/3000100)"},
		{name: "lsn equal to a stop lsn", target: Target{LSN: lsn("0/5000100")}, want: "20261121T115000Z"},
		{name: "lsn between backups", target: Target{LSN: lsn("0/50000FF")}, want: "20261120T115000Z"},
		{name: "lsn before every backup", target: Target{LSN: lsn("0/3000000")}, noMatch: true, wantErr: "earlier than every backup"},
		{name: "explicit id", ref: "20261120T115000Z", target: Target{Name: "rp"}, want: "20261120T115000Z"},
		{name: "explicit id before the target", ref: "20261120T115000Z", target: Target{Time: ptr(day(21))}, want: "20261120T115000Z"},
		{name: "explicit id after the target time", ref: "20261121T115000Z", target: Target{Time: ptr(day(21))}, noMatch: true, wantErr: "not before the target"},
		{name: "explicit id after the target lsn", ref: "20261121T115000Z", target: Target{LSN: lsn("0/4000000")}, noMatch: true, wantErr: "not before the target lsn 0/4000000"},
		{name: "waiting for WAL refused", ref: "20261122T115000Z", noMatch: true, wantErr: "WAITING_FOR_WALS: WAL segment 000000010000000000000008"},
		{name: "incomplete refused", ref: "20261123T115000Z", noMatch: true, wantErr: "INCOMPLETE"},
		{name: "unknown id", ref: "20261124T115000Z", noMatch: true, wantErr: "does not exist"},
		{name: "malformed id", ref: "../x", wantErr: "invalid backup id"},
		{name: "invalid target", target: Target{XID: "x"}, wantErr: "invalid recovery target xid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseBackup(backups, tc.ref, tc.target)
			if tc.wantErr == "" {
				if err != nil || got.ID != tc.want {
					t.Fatalf("ChooseBackup(%q, %v): got %q, %v; want %q", tc.ref, tc.target, got.ID, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ChooseBackup(%q, %v): got %q, %v; want an error containing %q", tc.ref, tc.target, got.ID, err, tc.wantErr)
			}
			if tc.noMatch != errors.Is(err, repository.ErrNoBackup) {
				t.Errorf("errors.Is(%v, ErrNoBackup): got %v, want %v", err, !tc.noMatch, tc.noMatch)
			}
		})
	}

	t.Run("nothing done", func(t *testing.T) {
		_, err := ChooseBackup(backups[2:], "", Target{})
		if !errors.Is(err, repository.ErrNoBackup) || !strings.Contains(err.Error(), "no backup is DONE") {
			t.Errorf("got %v, want ErrNoBackup saying no backup is DONE", err)
		}
	})
}

func TestRenderRecoveryConf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)
	cest := time.FixedZone("CEST", 2*3600)
	tm := time.Date(2026, 11, 25, 12, 30, 15, 123456789, cest)
	lsn := wal.LSN(0x16_B374D848)
	const header = "# recovery settings written by walvault restore of backup 20261125T100000Z at 2026-11-25T11:00:00Z\n"
	tests := []struct {
		name       string
		cmd        string
		target     Target
		archiveOff bool
		want       string
		wantErr    string
	}{
		{
			name: "latest", cmd: "/usr/bin/walvault wal-fetch --config /d/w.yaml %f %p",
			want: "restore_command = '/usr/bin/walvault wal-fetch --config /d/w.yaml %f %p'\n" + stops("", "", "true", "latest", "pause"),
		},
		{
			name: "no restore_command", target: Target{Timeline: "current"},
			want: stops("", "", "true", "current", "pause"),
		},
		{
			name: "quotes and backslashes", cmd: `/opt/it's here/walvault wal-fetch --config 'C:\x' %f %p`,
			want: `restore_command = '/opt/it''s here/walvault wal-fetch --config ''C:\\x'' %f %p'` + "\n" + stops("", "", "true", "latest", "pause"),
		},
		{
			name: "time keeps its offset, microseconds", cmd: "w", target: Target{Time: &tm, Inclusive: ptr(false), Action: "promote"},
			want: "restore_command = 'w'\n" + stops("recovery_target_time", "2026-11-25 12:30:15.123456+02:00", "false", "latest", "promote"),
		},
		{
			name: "utc time has an explicit offset", target: Target{Time: ptr(now)},
			want: stops("recovery_target_time", "2026-11-25 11:00:00+00:00", "true", "latest", "pause"),
		},
		{
			name: "xid", target: Target{XID: "4294968530", Inclusive: ptr(true), Timeline: "3"},
			want: stops("recovery_target_xid", "4294968530", "true", "3", "pause"),
		},
		{
			name: "lsn", target: Target{LSN: &lsn, Action: "shutdown"},
			want: stops("recovery_target_lsn", "16/B374D848", "true", "latest", "shutdown"),
		},
		{
			name: "name with quote", target: Target{Name: `it's \ done`, Action: "pause"},
			want: stops("recovery_target_name", `it''s \\ done`, "true", "latest", "pause"),
		},
		{
			name: "immediate follows the backup's own timeline", target: Target{Immediate: true, Action: "promote"},
			want: stops("recovery_target", "immediate", "true", "current", "promote"),
		},
		{
			name: "immediate with a timeline given", target: Target{Immediate: true, Timeline: "latest"},
			want: stops("recovery_target", "immediate", "true", "latest", "pause"),
		},
		{
			name: "archiving off", target: Target{Action: "promote"}, archiveOff: true,
			want: stops("", "", "true", "latest", "promote") + "archive_mode = 'off'\n",
		},
		{name: "line break", cmd: "a\nb", wantErr: "restore_command: configuration value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mode := ""
			if tc.archiveOff {
				mode = "off"
			}
			got, err := renderRecoveryConf(tc.cmd, tc.target, mode, "20261125T100000Z", now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != header+tc.want {
				t.Errorf("got %v:\n%s\nwant:\n%s", err, got, header+tc.want)
			}
		})
	}
}

func TestRewriteAutoConf(t *testing.T) {
	t.Parallel()
	old := "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n" +
		"work_mem = '8MB'\nrestore_command = 'cp /old/%f %p'\n  Recovery_Target_LSN='0/1'\nrecovery_target_name_x = 'y'\nprimary_conninfo = 'host=a'\n"
	got := string(rewriteAutoConf([]byte(old), "# block\nrestore_command = 'new'\n"))
	want := "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n" +
		"work_mem = '8MB'\n" + disabledPrefix + "restore_command = 'cp /old/%f %p'\n" + disabledPrefix + "  Recovery_Target_LSN='0/1'\n" +
		"recovery_target_name_x = 'y'\nprimary_conninfo = 'host=a'\n\n# block\nrestore_command = 'new'\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := string(rewriteAutoConf(nil, "# block\n")); got != "# block\n" {
		t.Errorf("empty file: got %q, want just the block", got)
	}
	if got := string(rewriteAutoConf([]byte("a = 1"), "# block\n")); got != "a = 1\n\n# block\n" {
		t.Errorf("no final newline: got %q", got)
	}
}

// TestChooseBackupIncremental: an incremental backup whose chain is
// complete is picked like any other; one whose parent is missing or
// INCOMPLETE is passed over, and refused by id with a line naming it.
func TestChooseBackupIncremental(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 12, 0, 0, 0, time.UTC) }
	inc := done("20261121T115000Z", "0/5000100", day(21))
	inc.Manifest.Type, inc.Manifest.Parent = repository.BackupIncremental, "20261120T115000Z"
	full := done("20261120T115000Z", "0/3000100", day(20))
	backups := []repository.BackupInfo{full, inc}
	if got, err := ChooseBackup(backups, "", Target{}); err != nil || got.ID != inc.ID {
		t.Fatalf("latest: got %q, %v; want the incremental backup %s", got.ID, err, inc.ID)
	}
	if got, err := ChooseBackup(backups, inc.ID, Target{}); err != nil || got.ID != inc.ID {
		t.Fatalf("by id: got %q, %v", got.ID, err)
	}
	older := done("20261119T115000Z", "0/2000100", day(19))
	for name, chain := range map[string][]repository.BackupInfo{
		"which is not in the repository": {older, inc},
		"which is INCOMPLETE":            {older, {ID: full.ID, Status: repository.StatusIncomplete}, inc},
	} {
		if got, err := ChooseBackup(chain, "", Target{}); err != nil || got.ID != older.ID {
			t.Errorf("%s: latest: got %q, %v; want the older full backup %s", name, got.ID, err, older.ID)
		}
		_, err := ChooseBackup(chain, inc.ID, Target{})
		if !errors.Is(err, repository.ErrNoBackup) || !errors.Is(err, repository.ErrBrokenChain) || !strings.Contains(err.Error(), full.ID+", "+name) {
			t.Errorf("%s: by id: got %v, want a refusal naming %s", name, err, full.ID)
		}
	}
}

// TestTargetStringNamesTimeline: a timeline asked for is said, so restore
// and drill do not claim "latest" for a recovery held to timeline 1.
func TestTargetStringNamesTimeline(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		target Target
		want   string
	}{
		{Target{}, "latest (all archived WAL)"},
		{Target{Timeline: "latest"}, "latest (all archived WAL)"},
		{Target{Timeline: "1"}, "all archived WAL on timeline 1"},
		{Target{Time: &at, Timeline: "current"}, "time 2026-11-25 10:30:00+00:00 on timeline current"},
		{Target{Immediate: true}, "immediate (end of the backup)"},
		{Target{XID: "786", Inclusive: ptr(false), Timeline: "2"}, "xid 786, exclusive (stops just before it) on timeline 2"},
		{Target{XID: "786", Inclusive: ptr(true)}, "xid 786"},
	} {
		if got := tc.target.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.target, got, tc.want)
		}
	}
}

// stops is what restore writes after restore_command: every target kind,
// empty but the chosen one (kind "": none), which comes last, then the
// inclusive flag, timeline and action, and no apply delay. value is
// written as it appears, quotes doubled.
func stops(kind, value, inclusive, timeline, action string) string {
	var b strings.Builder
	for _, k := range targetKinds {
		if k != kind {
			b.WriteString(k + " = ''\n")
		}
	}
	if kind != "" {
		b.WriteString(kind + " = '" + value + "'\n")
	}
	b.WriteString("recovery_target_inclusive = '" + inclusive + "'\nrecovery_target_timeline = '" + timeline + "'\nrecovery_target_action = '" + action + "'\nrecovery_min_apply_delay = '0'\n")
	return b.String()
}

// TestArchiveModeAlways: postgresql.auto.conf's last archive_mode line
// decides, else postgresql.conf's, whatever the spelling and quoting;
// restore writes archive_mode = on over always (explore25e A).
func TestArchiveModeAlways(t *testing.T) {
	for name, tc := range map[string]struct {
		conf, auto string
		want       bool
	}{
		"conf always":            {"archive_mode = always\n", "", true},
		"conf quoted, commented": {"Archive_Mode='ALWAYS' # HA\n", "", true},
		"conf on":                {"archive_mode = on\n", "", false},
		"auto overrides":         {"archive_mode = always\n", "archive_mode = 'on'\n", false},
		"auto always":            {"archive_mode = on\n", "archive_mode = 'always'\n", true},
		"last line wins":         {"archive_mode = always\narchive_mode = on\n", "", false},
		"commented out":          {"#archive_mode = always\n", "", false},
		"none":                   {"", "", false},
	} {
		dir := t.TempDir()
		for file, text := range map[string]string{"postgresql.conf": tc.conf, "postgresql.auto.conf": tc.auto} {
			if text != "" {
				if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := archiveModeAlways(root); got != tc.want {
			t.Errorf("%s: archiveModeAlways = %v, want %v", name, got, tc.want)
		}
		root.Close()
	}
}
