package check

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

// TestContinuityWhenBackupsCannotBeListed: a check that could not read what
// it checks says so and fails. When the backups cannot be listed, where the
// WAL must be continuous from is unknown: continuity fails with the reason
// instead of reporting "OK (no DONE backup yet)" from a second listing.
func TestContinuityWhenBackupsCannotBeListed(t *testing.T) {
	c, b := newChecker(t)
	c.opts.MinBackups = 0
	c.checkIdentity(context.Background())
	denied := errors.New("read directory /var/lib/walvault/backups/20260101T000000Z: permission denied")
	fault := storagetest.NewFault(b)
	// Only the backup checks' listing fails: a second one would work.
	fault.FailNth(storagetest.OpList, 1, storage.Permanent(denied))
	c.b = fault

	rs := c.checkBackups(context.Background())
	if len(rs) != 2 || rs[0].OK || rs[1].OK {
		t.Fatalf("backups that cannot be listed: got %+v, want backup age and count FAILED", rs)
	}
	r := one(t, c.checkContinuity(context.Background()))
	if r.OK || !strings.Contains(r.Detail, "cannot list backups") || !strings.Contains(r.Detail, denied.Error()) {
		t.Fatalf("continuity after the backups could not be listed: got %+v, want FAILED saying the backups cannot be listed and why", r)
	}
	if strings.Contains(r.Detail, "no DONE backup") {
		t.Errorf("continuity claims there is no backup: %+v", r)
	}

	// Once the backups list again, so does continuity.
	if rs := c.checkBackups(context.Background()); !rs[0].OK || !rs[1].OK {
		t.Fatalf("backups listed on the second try: %+v", rs)
	}
	if r := one(t, c.checkContinuity(context.Background())); !r.OK {
		t.Fatalf("continuity once the backups list: %+v", r)
	}
}

// TestBackupsDamagedPart: the newest backup's part is truncated. It is no
// DONE backup: backup age goes by the one before, and backup count fails
// naming it DAMAGED and the part, as retention refuses to run meanwhile.
func TestBackupsDamagedPart(t *testing.T) {
	ctx := context.Background()
	c, b := newChecker(t)
	c.checkIdentity(ctx)
	now := time.Now().UTC().Truncate(time.Second)
	var ms []repository.BackupManifest
	for i, seg := range []uint32{2, 4} {
		ms = append(ms, writeTestBackup(t, b, now.Add(time.Duration(i-2)*time.Hour), seg, time.Minute, nil))
	}
	key := ms[1].Archives[0].Parts[0].Key
	if err := b.Put(ctx, key, strings.NewReader("x"), storage.PutOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	rs := c.checkBackups(ctx)
	if len(rs) != 2 {
		t.Fatalf("got %+v, want backup age and count", rs)
	}
	if age := rs[0]; !age.OK || !strings.Contains(age.Detail, ms[0].ID) {
		t.Errorf("backup age: %+v, want OK by %s, the newest DONE backup", age, ms[0].ID)
	}
	if count := rs[1]; count.OK || !strings.Contains(count.Detail, ms[1].ID+" is DAMAGED: part "+key) || !strings.Contains(count.Detail, "(1 DONE backup") {
		t.Errorf("backup count: %+v, want FAILED naming %s DAMAGED by %s, and 1 DONE backup", count, ms[1].ID, key)
	}
}

// TestBackupFromTheFuture: a backup whose stop time lies ahead of this
// host's clock (taken on a host whose clock was ahead) fails backup age,
// naming the clocks, instead of passing with a negative age.
func TestBackupFromTheFuture(t *testing.T) {
	ctx := context.Background()
	c, b := newChecker(t)
	c.checkIdentity(ctx)
	writeTestBackup(t, b, time.Now().UTC().Truncate(time.Second).Add(365*24*time.Hour), 2, time.Minute, nil)
	if age := c.checkBackups(ctx)[0]; age.OK || !strings.Contains(age.Detail, "in the future") || !strings.Contains(age.Detail, "NTP") {
		t.Fatalf("backup age of a backup from the future: %+v; want FAILED naming the clocks", age)
	}
}

// TestBackupsMisordered: two backups whose times are in another order than
// their WAL positions (a backup host's clock was behind) fail backup
// count, as every policy delete refuses to run meanwhile (explore23c F4).
func TestBackupsMisordered(t *testing.T) {
	ctx := context.Background()
	c, b := newChecker(t)
	c.checkIdentity(ctx)
	now := time.Now().UTC().Truncate(time.Second)
	var ids []string
	for i, seg := range []uint32{4, 2} { // the later by time starts earlier
		start := now.Add(time.Duration(i-2) * time.Hour)
		s := wal.Segment{Timeline: 1, Seg: seg}
		m := repotest.WriteBackup(t, b, repotest.Backup{
			Manifest: repository.BackupManifest{
				FormatVersion: repository.FormatVersion, ID: repository.NewBackupID(start), SystemID: testSysID, PGVersion: 150010,
				WALSegmentSize: wal.DefaultSegmentSize, StartTimeline: 1, StopTimeline: 1,
				StartLSN: wal.LSN(uint64(seg)<<24 | 0x28).String(), StopLSN: wal.LSN(uint64(seg)<<24 | 0x100).String(),
				StartWAL: s.String(), StopWAL: s.String(), StartTime: start, StopTime: start.Add(time.Minute),
			},
			Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("tar")}},
		})
		ids = append(ids, m.ID)
	}
	count := c.checkBackups(ctx)[1]
	if count.OK || !strings.Contains(count.Detail, "backup "+ids[1]+" is newer than backup "+ids[0]+" by its time, but older by its WAL position") || !strings.Contains(count.Detail, "policy deletes refuse") {
		t.Errorf("backup count with misordered backups: %+v; want FAILED naming both and the refused deletes", count)
	}
}

// TestRepositoryInDataDir: a file:// repository inside the server's data
// directory fails the repository line: every base backup would hold the
// whole repository, and it would be lost with the data directory
// (explore24c F3). Beside it, it is OK.
func TestRepositoryInDataDir(t *testing.T) {
	c, b := newChecker(t)
	root := strings.TrimPrefix(b.Location(), "file://")
	dataDir := filepath.Dir(root)
	c.srv.settings["data_directory"] = setting{value: dataDir}
	c.opts.Repo = b.Location()
	r := one(t, c.checkRepository(context.Background()))
	if r.OK || !strings.Contains(r.Detail, "inside the server's data directory "+dataDir) {
		t.Errorf("a repository inside the data directory: %+v, want FAILED saying so", r)
	}
	c.srv.settings["data_directory"] = setting{value: filepath.Join(dataDir, "elsewhere")}
	if r := one(t, c.checkRepository(context.Background())); !r.OK {
		t.Errorf("a repository beside the data directory: %+v, want OK", r)
	}
}

// TestBackupsBrokenChain: an incremental backup whose full backup is gone
// is DONE on its own but cannot be restored: it is not counted, and with
// no other backup both lines fail naming the break (explore25d F2).
func TestBackupsBrokenChain(t *testing.T) {
	ctx := context.Background()
	c, b := newChecker(t)
	c.checkIdentity(ctx)
	now := time.Now().UTC().Truncate(time.Second)
	var ms []repository.BackupManifest
	parent, kind := "", repository.BackupFull
	for i, seg := range []uint32{2, 4} {
		ms = append(ms, writeTestBackup(t, b, now.Add(time.Duration(i-2)*time.Hour), seg, time.Minute, func(m *repository.BackupManifest) {
			m.PGVersion, m.Parent, m.Type = 170002, parent, kind
		}))
		parent, kind = ms[i].ID, repository.BackupIncremental
	}
	if rs := c.checkBackups(ctx); !rs[0].OK || !rs[1].OK {
		t.Fatalf("a whole chain: %+v, want both OK", rs)
	}
	if err := b.Delete(ctx, repository.BackupManifestKey(ms[0].ID)); err != nil {
		t.Fatal(err)
	}
	rs := c.checkBackups(ctx)
	if age := rs[0]; age.OK || !strings.Contains(age.Detail, "can be restored") || !strings.Contains(age.Detail, ms[0].ID) {
		t.Errorf("backup age: %+v, want FAILED: none can be restored, naming the missing %s", age, ms[0].ID)
	}
	if count := rs[1]; count.OK || !strings.Contains(count.Detail, ms[1].ID+" builds on "+ms[0].ID) || !strings.Contains(count.Detail, "(0 DONE backups that restore") {
		t.Errorf("backup count: %+v, want FAILED naming %s's missing parent and 0 backups that restore", count, ms[1].ID)
	}
}

// writeTestBackup stores a backup of testSysID in b (PostgreSQL 15, one
// segment of timeline 1, a one-part tar) that started at start and ran
// for took; edit, when given, changes the manifest first.
func writeTestBackup(t *testing.T, b storage.Backend, start time.Time, seg uint32, took time.Duration, edit func(*repository.BackupManifest)) repository.BackupManifest {
	t.Helper()
	s := wal.Segment{Timeline: 1, Seg: seg}
	m := repository.BackupManifest{
		FormatVersion: repository.FormatVersion, ID: repository.NewBackupID(start), SystemID: testSysID, PGVersion: 150010,
		WALSegmentSize: wal.DefaultSegmentSize, StartTimeline: 1, StopTimeline: 1,
		StartWAL: s.String(), StopWAL: s.String(), StartTime: start, StopTime: start.Add(took),
	}
	if edit != nil {
		edit(&m)
	}
	return repotest.WriteBackup(t, b, repotest.Backup{Manifest: m, Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("tar")}}})
}
