package basebackup

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// TestPushWaitsForArchiver: on a primary PostgreSQL no longer waits for
// archiving at the end of the backup (WAIT false); Push does. While
// archiving works, Push returns only after the backup's last segment is in
// the repository. While archive_command fails, Push must not report the
// backup done: it times out, records it WAITING_FOR_WALS and says so.
func TestPushWaitsForArchiver(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildWalvault(t)
	b, url := newRepo(t)
	gate := testenv.UserDir(t)
	if err := os.Chmod(gate, 0o755); err != nil {
		t.Fatal(err)
	}
	block := filepath.Join(gate, "block")
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		ArchiveCommand: "test ! -e " + block + " && " + bin + " wal-push %p",
		Env:            []string{"WALVAULT_REPO=" + url},
	})
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)

	stopKey := func(m repository.BackupManifest) string {
		seg, err := wal.ParseSegmentName(m.StopWAL)
		if err != nil {
			t.Fatal(err)
		}
		return repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}, repository.LZ4)
	}

	t.Run("archiving works", func(t *testing.T) {
		m, err := Push(ctxTimeout(t), b, Options{ConnString: pg.ConnString()})
		if err != nil {
			t.Fatalf("Push: %v", err)
		}
		if _, err := b.Stat(ctxTimeout(t), stopKey(m)); err != nil {
			t.Fatalf("Push returned before the backup's last segment %s was in the repository: %v", m.StopWAL, err)
		}
	})

	// Last: once archive_command has failed a few times, the archiver
	// waits a minute before it tries again.
	t.Run("archiving fails", func(t *testing.T) {
		// Archiving must fail from the next backup on, not on what the
		// last one left (its backup history file): that would make Push
		// refuse the server before the backup.
		deadline := time.Now().Add(30 * time.Second)
		for pg.SQL(t, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'") != "0" {
			if time.Now().After(deadline) {
				t.Fatalf("the archiver is still busy after 30s:\n%s", pg.LogTail(20))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := os.WriteFile(block, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		m, err := Push(ctxTimeout(t), b, Options{ConnString: pg.ConnString(), WALTimeout: 3 * time.Second, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		var late *walTimeoutError
		if !errors.As(err, &late) {
			t.Fatalf("Push while archive_command fails: got %v, want a timeout waiting for the archiver", err)
		}
		for _, want := range []string{m.StopWAL, "WAITING_FOR_WALS", "archive_command", "--timeout"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if !strings.Contains(logs.String(), "waiting for archive_command") {
			t.Errorf("log lacks the wait:\n%s", logs.String())
		}
		if _, err := b.Stat(ctxTimeout(t), stopKey(m)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the backup's last segment: Stat = %v; this test needs it missing", err)
		}
		// Recorded, so backup-list shows WAITING_FOR_WALS until the WAL lands.
		if _, err := b.Stat(ctxTimeout(t), repository.BackupManifestKey(m.ID)); err != nil {
			t.Errorf("manifest of the late backup: %v", err)
		}
	})

	// The archiver's answer can lag the repository (its last file may be
	// the backup history file, which names an earlier segment): with the
	// archiver still blocked, the backup's WAL pushed by hand is proof
	// enough, and Push returns without waiting for its timeout.
	t.Run("the repository holds the WAL", func(t *testing.T) {
		type result struct {
			m   repository.BackupManifest
			err error
		}
		done := make(chan result, 1)
		ctx := ctxTimeout(t)
		go func() {
			m, err := Push(ctx, b, Options{ConnString: pg.ConnString(), WALTimeout: 45 * time.Second})
			done <- result{m, err}
		}()
		statusDir := filepath.Join(pg.DataDir, "pg_wal", "archive_status")
		pushed := map[string]bool{}
		for {
			select {
			case res := <-done:
				if res.err != nil {
					t.Fatalf("Push with its WAL in the repository: %v", res.err)
				}
				if _, err := b.Stat(ctxTimeout(t), stopKey(res.m)); err != nil {
					t.Fatalf("Push returned, but the backup's last segment is not in the repository: %v", err)
				}
				return
			case <-time.After(100 * time.Millisecond):
			}
			entries, _ := os.ReadDir(statusDir)
			for _, e := range entries {
				name, ready := strings.CutSuffix(e.Name(), ".ready")
				if _, err := wal.ParseSegmentName(name); !ready || err != nil || pushed[name] {
					continue
				}
				cmd := testenv.ServerCommand(t, bin, "wal-push", filepath.Join(pg.DataDir, "pg_wal", name))
				cmd.Env = append(os.Environ(), "WALVAULT_REPO="+url)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("wal-push %s by hand: %v\n%s", name, err, out)
				}
				pushed[name] = true
			}
		}
	})
}

// TestArchivedPast: only the stop segment itself or a later segment of its
// timeline (or a backup history file named after one) proves the stop
// segment archived.
func TestArchivedPast(t *testing.T) {
	t.Parallel()
	stop := wal.Segment{Timeline: 2, Log: 1, Seg: 0x10}
	for _, tc := range []struct {
		last string
		want bool
	}{
		{"000000020000000100000010", true},
		{"000000020000000100000011", true},
		{"000000020000000200000000", true},
		{"00000002000000010000000F", false},
		{"000000020000000000000020", false},
		// A backup history file names the segment its backup started in,
		// archived before it.
		{"000000020000000100000010.00000028.backup", true},
		{"000000020000000100000011.00000028.backup", true},
		{"00000002000000010000000F.00000028.backup", false},
		{"000000020000000100000010.partial", false},
		{"000000010000000100000011", false}, // another timeline
		{"000000030000000100000011", false},
		{"00000003.history", false},
		{"", false},
	} {
		if got := archivedPast(tc.last, stop); got != tc.want {
			t.Errorf("archivedPast(%q, %s) = %v, want %v", tc.last, stop, got, tc.want)
		}
	}
}

// TestPollSteadyFirst: the waits for the backup's WAL look every
// walPollFirst during their first walPollSteady (the segment usually lands
// then, and each look that has begun is waited out), then back off to at
// most walPoll.
func TestPollSteadyFirst(t *testing.T) {
	poll := walPollFirst
	for waited := time.Duration(0); waited < walPollSteady; waited += poll {
		if poll = nextPoll(poll, waited); poll != walPollFirst {
			t.Fatalf("after %v of waiting the next look is %v away, want %v", waited, poll, walPollFirst)
		}
	}
	waited := walPollSteady
	for range 100 {
		next := nextPoll(poll, waited)
		if next < poll || next > walPoll {
			t.Fatalf("after %v the interval goes from %v to %v, want it to grow up to %v", waited, poll, next, walPoll)
		}
		poll, waited = next, waited+next
	}
	if poll != walPoll {
		t.Errorf("after %v the interval is %v, want it grown to %v", waited, poll, walPoll)
	}
}

// TestPushSeesWALBeforeArchiver: an archive_command that does more after
// wal-push (a second copy elsewhere, here a sleep) reports each segment
// archived seconds after it is in the repository. Push watches the
// repository from the start of its wait, so it sees the backup's last
// segment there at once, not after walQuietWait or the archiver's report.
func TestPushSeesWALBeforeArchiver(t *testing.T) {
	t.Parallel()
	pg, b := archivingServerThen(t, " && sleep 4")

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := Push(ctxTimeout(t), b, Options{ConnString: pg.ConnString(), WALTimeout: 45 * time.Second, Log: log})
	if err != nil {
		t.Fatalf("Push: %v\n%s", err, logs.String())
	}
	seg, err := wal.ParseSegmentName(m.StopWAL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctxTimeout(t), repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}, repository.LZ4)); err != nil {
		t.Fatalf("Push returned before the backup's last segment %s was in the repository: %v", m.StopWAL, err)
	}
	waited := regexp.MustCompile(`msg="the backup's WAL is in the repository".* waited=(\S+)`).FindStringSubmatch(logs.String())
	if waited == nil {
		t.Fatalf("Push did not say it found the backup's WAL in the repository (rather than the archiver's report):\n%s", logs.String())
	}
	d, err := time.ParseDuration(waited[1])
	if err != nil {
		t.Fatal(err)
	}
	if d >= walQuietWait {
		t.Errorf("Push waited %v for a segment wal-push had stored; want it seen at once (under %v)", d, walQuietWait)
	}
}
