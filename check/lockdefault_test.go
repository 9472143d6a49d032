package check

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

// fakeLockDefault is a bucket with Object Lock and a default retention.
type fakeLockDefault struct {
	fakeLock
	mode storage.RetentionMode
	days int
}

func (f fakeLockDefault) ObjectLockDefault(context.Context) (bool, storage.RetentionMode, int, error) {
	return f.enabled, f.mode, f.days, f.err
}

// TestObjectLockWeakerThanBucketDefault: an object's own retention
// replaces the bucket's default, so a lock policy weaker than the default
// (governance under a compliance default, or fewer days) fails the Object
// Lock check; an equal or stronger one, or no default, passes.
func TestObjectLockWeakerThanBucketDefault(t *testing.T) {
	c, b := newChecker(t)
	c.opts.LockMode, c.opts.LockDays = storage.Governance, 7
	for _, tc := range []struct {
		mode storage.RetentionMode
		days int
		ok   bool
	}{
		{"", 0, true},
		{storage.Governance, 7, true},
		{storage.Governance, 3, true},
		{storage.Governance, 30, false},
		{storage.Compliance, 1, false},
	} {
		c.b = storage.WithRetry(fakeLockDefault{fakeLock: fakeLock{Backend: b, enabled: true}, mode: tc.mode, days: tc.days}, storage.DefaultRetryPolicy, nil)
		r := one(t, c.checkObjectLock(context.Background()))
		if r.OK != tc.ok || !tc.ok && !strings.Contains(r.Detail, "stricter than the lock policy walvault writes with") {
			t.Errorf("bucket default %s %d days, lock-mode governance 7 days: %+v; want OK %v", tc.mode, tc.days, r, tc.ok)
		}
	}
}

// fakeLifter is a bucket with Object Lock whose answer to a shortened
// GOVERNANCE lock with the bypass is err (nil: it shortened it).
type fakeLifter struct {
	fakeLock
	err   error
	tried *[]string
}

func (f fakeLifter) ShortenGovernanceLock(_ context.Context, key string, _ time.Time) error {
	*f.tried = append(*f.tried, key)
	return f.err
}

// TestObjectLockGovernanceLifted: check tries, on its own probe, to
// shorten a GOVERNANCE lock with the bypass header. Credentials that can
// (s3:BypassGovernanceRetention, the root's, or any on MinIO) fail the
// Object Lock check: they could lift every lock and delete the versions.
// A refusal passes and says so; a failure to ask is said; compliance mode
// is not tried (nobody can shorten it).
func TestObjectLockGovernanceLifted(t *testing.T) {
	_, b := newChecker(t)
	for _, tc := range []struct {
		name  string
		mode  storage.RetentionMode
		err   error
		ok    bool
		want  string
		tries int
	}{
		{"lifted", storage.Governance, nil, false, "x-amz-bypass-governance-retention", 1},
		{"refused", storage.Governance, storage.Permanent(errors.New("AccessDenied")), true, "cannot shorten a GOVERNANCE lock", 1},
		{"no answer", storage.Governance, errors.New("connection reset"), true, "was not checked: connection reset", 1},
		{"compliance", storage.Compliance, nil, true, "locked COMPLIANCE for 7 days", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newChecker(t)
			c.opts.LockMode, c.opts.LockDays = tc.mode, 7
			var tried []string
			c.b = storage.WithRetry(fakeLifter{fakeLock: fakeLock{Backend: b, enabled: true}, err: tc.err, tried: &tried}, storage.DefaultRetryPolicy, nil)
			c.tryLiftGovernance(context.Background(), repository.LockPolicy{Mode: tc.mode, Days: 7}, "check/probe-1")
			r := one(t, c.checkObjectLock(context.Background()))
			if r.OK != tc.ok || !strings.Contains(r.Detail, tc.want) || len(tried) != tc.tries {
				t.Errorf("%+v after %d tries; want OK %v saying %q after %d", r, len(tried), tc.ok, tc.want, tc.tries)
			}
		})
	}
}

// TestObjectLockShorterThanTheWindow: lock-days no longer than the
// recovery window the retention keeps fails the Object Lock check: a
// restore to the window's start needs the newest backup that stopped
// before it, written before the window began, so its lock has run out
// (explore23c F2); longer, or no window given, passes.
func TestObjectLockShorterThanTheWindow(t *testing.T) {
	_, b := newChecker(t)
	for _, tc := range []struct {
		window int
		ok     bool
	}{{0, true}, {7, false}, {5, true}, {14, false}} {
		c, _ := newChecker(t)
		c.opts.LockMode, c.opts.LockDays, c.opts.WindowDays = storage.Compliance, 7, tc.window
		c.b = storage.WithRetry(fakeLock{Backend: b, enabled: true}, storage.DefaultRetryPolicy, nil)
		r := one(t, c.checkObjectLock(context.Background()))
		if r.OK != tc.ok || !tc.ok && !strings.Contains(r.Detail, fmt.Sprintf("recovery window of %d days", tc.window)) {
			t.Errorf("lock-days 7, window %d days: %+v; want OK %v", tc.window, r, tc.ok)
		}
	}
}

// TestObjectLockWindowBasisUnlocked: lock-days 10 and a 7-day window, but
// the backup a restore to the window's start needs started 10.5 days ago
// (backups taken less often than lock-days less the window): its lock
// has run out, and the Object Lock check says so, naming it. One started
// 9 days ago is still locked.
func TestObjectLockWindowBasisUnlocked(t *testing.T) {
	ctx := context.Background()
	_, locked := newChecker(t)
	now := time.Now().UTC().Truncate(time.Second)
	for _, tc := range []struct {
		started time.Duration
		ok      bool
	}{{252 * time.Hour, false}, {216 * time.Hour, true}} {
		c, b := newChecker(t)
		m := writeTestBackup(t, b, now.Add(-tc.started), 2, time.Hour, nil)
		c.checkBackups(ctx)
		c.opts.LockMode, c.opts.LockDays, c.opts.WindowDays = storage.Compliance, 10, 7
		c.b = storage.WithRetry(fakeLock{Backend: locked, enabled: true}, storage.DefaultRetryPolicy, nil)
		r := one(t, c.checkObjectLock(ctx))
		if r.OK != tc.ok || !tc.ok && !strings.Contains(r.Detail, "backup "+m.ID+", which a restore to the start of the 7-day recovery window needs") {
			t.Errorf("basis started %v ago: %+v; want OK %v", tc.started, r, tc.ok)
		}
	}
}

// TestObjectLockWindowBasisIncremental: the backup a restore to the
// window's start needs is an incremental one, started 9 days ago, within
// lock-days 10, but it builds on a full one started 10.5 days ago, whose
// parts' lock has run out: the line fails naming the full one (explore23e
// F2).
func TestObjectLockWindowBasisIncremental(t *testing.T) {
	ctx := context.Background()
	_, locked := newChecker(t)
	c, b := newChecker(t)
	now := time.Now().UTC().Truncate(time.Second)
	write := func(started time.Duration, parent string) repository.BackupManifest {
		start := now.Add(-started)
		s := wal.Segment{Timeline: 1, Seg: 2}
		m := repository.BackupManifest{
			FormatVersion: repository.FormatVersion, ID: repository.NewBackupID(start), SystemID: testSysID, PGVersion: 170002,
			WALSegmentSize: wal.DefaultSegmentSize, StartTimeline: 1, StopTimeline: 1,
			StartWAL: s.String(), StopWAL: s.String(), StartTime: start, StopTime: start.Add(time.Hour),
		}
		if parent != "" {
			m.FormatVersion, m.Type, m.Parent = repository.IncrementalFormatVersion, repository.BackupIncremental, parent
		}
		return repotest.WriteBackup(t, b, repotest.Backup{Manifest: m, Archives: []repotest.Archive{{Name: "base.tar", Data: []byte("tar")}}})
	}
	full := write(252*time.Hour, "")
	write(216*time.Hour, full.ID)
	c.checkBackups(ctx)
	c.opts.LockMode, c.opts.LockDays, c.opts.WindowDays = storage.Compliance, 10, 7
	c.b = storage.WithRetry(fakeLock{Backend: locked, enabled: true}, storage.DefaultRetryPolicy, nil)
	r := one(t, c.checkObjectLock(ctx))
	if r.OK || !strings.Contains(r.Detail, "backup "+full.ID+", which a restore to the start of the 7-day recovery window needs (the full backup the incremental one") {
		t.Errorf("an incremental basis on an unlocked full backup: %+v; want FAILED naming %s", r, full.ID)
	}
}

// TestObjectLockVersionsUnreadable: in a locked repository wal-fetch
// lists each WAL object's versions and fails without them, so credentials
// that may not list versions, or read an old one, fail the Object Lock
// check, naming the permissions; a storage error asking says so.
func TestObjectLockVersionsUnreadable(t *testing.T) {
	c, _ := newChecker(t)
	c.opts.LockMode, c.opts.LockDays = storage.Governance, 7
	inner := mem.New()
	repotest.Init(t, inner, repository.NewIdentity(7312345678901234567, wal.DefaultSegmentSize, 15, repository.LZ4, "test", time.Now()))
	for _, tc := range []struct {
		op   storagetest.Op
		err  error
		want string
	}{
		{"", nil, ""},
		{storagetest.OpVersions, storage.Permanent(errors.New("AccessDenied")), "refuses to list the versions"},
		{storagetest.OpGetVersion, storage.Permanent(errors.New("AccessDenied")), "refuses to read version"},
		{storagetest.OpVersions, errors.New("connection reset by peer"), "listing the versions of walvault.json failed"},
	} {
		f := storagetest.NewFault(inner)
		if tc.op != "" {
			f.Fail(tc.op, storagetest.AnyKey, tc.err)
		}
		c.b = fakeLock{Backend: f.Versioned(), enabled: true}
		r := one(t, c.checkObjectLock(context.Background()))
		switch {
		case tc.op == "" && !r.OK:
			t.Errorf("versions readable: %+v; want OK", r)
		case tc.op != "" && (r.OK || !strings.Contains(r.Detail, tc.want) || !strings.Contains(r.Detail, "s3:ListBucketVersions")):
			t.Errorf("%s failing with %v: %+v; want a failure containing %q and the permissions", tc.op, tc.err, r, tc.want)
		}
	}
}

// TestObjectLockRedundancyBasisUnlocked: with REDUNDANCY 2 and lock-days
// 10, the older of the two kept backups started 10.5 days ago: its lock
// has run out, so the host's credentials can delete what retention keeps;
// the Object Lock line fails naming it (it only looked at a recovery
// window before: explore25a F7). Started 9 days ago, it is still locked.
func TestObjectLockRedundancyBasisUnlocked(t *testing.T) {
	ctx := context.Background()
	_, locked := newChecker(t)
	now := time.Now().UTC().Truncate(time.Second)
	for _, tc := range []struct {
		older time.Duration
		ok    bool
	}{{252 * time.Hour, false}, {216 * time.Hour, true}} {
		c, b := newChecker(t)
		var ms []repository.BackupManifest
		for _, started := range []time.Duration{tc.older, 24 * time.Hour} {
			ms = append(ms, writeTestBackup(t, b, now.Add(-started), 2, time.Hour, nil))
		}
		c.checkBackups(ctx)
		c.opts.LockMode, c.opts.LockDays, c.opts.Redundancy = storage.Compliance, 10, 2
		c.b = storage.WithRetry(fakeLock{Backend: locked, enabled: true}, storage.DefaultRetryPolicy, nil)
		r := one(t, c.checkObjectLock(ctx))
		if r.OK != tc.ok || !tc.ok && !strings.Contains(r.Detail, "backup "+ms[0].ID+", the oldest REDUNDANCY 2 keeps") {
			t.Errorf("the older kept backup started %v ago: %+v; want OK %v", tc.older, r, tc.ok)
		}
	}
}
