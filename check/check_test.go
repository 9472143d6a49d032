package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/archiveproof"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

func TestParseArchiveCommand(t *testing.T) {
	tests := []struct {
		cmd  string
		want commandSettings
	}{
		{"walvault wal-push %p", commandSettings{runsWalvault: true}},
		{"/usr/local/bin/walvault wal-push --repo s3://b/db1 %p", commandSettings{runsWalvault: true, repo: "s3://b/db1"}},
		{"walvault wal-push --repo=file:///var/lib/wv %p", commandSettings{runsWalvault: true, repo: "file:///var/lib/wv"}},
		{"WALVAULT_REPO='s3://b/db 1' walvault wal-push %p", commandSettings{runsWalvault: true, envRepo: "s3://b/db 1", assigned: []string{"WALVAULT_REPO"}}},
		{`walvault wal-push --config "/etc/walvault.yaml" %p && cp %p /x/%f`, commandSettings{runsWalvault: true, config: "/etc/walvault.yaml"}},
		{"/tmp/walvault-testbin-0/walvault-0123456789abcdef wal-push %p && cp %p /c/%f", commandSettings{runsWalvault: true}},
		{"cp %p /archive/%f", commandSettings{}},
		{"walvault wal-fetch %f %p", commandSettings{}},
		{"", commandSettings{}},
	}
	for _, tc := range tests {
		if got := parseArchiveCommand(tc.cmd); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseArchiveCommand(%q) = %+v, want %+v", tc.cmd, got, tc.want)
		}
	}
}

func TestArchiveRepositoryPrecedence(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "walvault.yaml")
	if err := os.WriteFile(conf, []byte("repo: s3://from-file/p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := &local{dataDir: dir, env: map[string]string{"WALVAULT_REPO": "s3://from-env/p"}}
	noEnv := &local{dataDir: dir, env: map[string]string{}}
	remote := &local{why: "the data directory /x is not on this host"}
	tests := []struct {
		name string
		cs   commandSettings
		l    *local
		want string // repo, or "?" for unknown
	}{
		{"flag wins", commandSettings{repo: "s3://flag/p", envRepo: "s3://inline/p"}, env, "s3://flag/p"},
		{"inline env beats the server's", commandSettings{envRepo: "s3://inline/p"}, env, "s3://inline/p"},
		{"server env beats config", commandSettings{config: conf}, env, "s3://from-env/p"},
		{"config file", commandSettings{config: conf}, noEnv, "s3://from-file/p"},
		{"config from the server's env", commandSettings{}, &local{dataDir: dir, env: map[string]string{"WALVAULT_CONFIG": conf}}, "s3://from-file/p"},
		{"remote server: unknown", commandSettings{}, remote, "?"},
		{"env unreadable: unknown", commandSettings{}, &local{dataDir: dir, envErr: os.ErrPermission}, "?"},
	}
	for _, tc := range tests {
		src := archiveRepository(tc.cs, tc.l)
		got := src.repo
		if got == "" {
			got = "?"
			if src.unknown == "" {
				t.Errorf("%s: unknown without a reason", tc.name)
			}
		}
		if got != tc.want {
			t.Errorf("%s: repository %q (%+v), want %q", tc.name, got, src, tc.want)
		}
	}
}

func TestSameRepository(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"s3://b/p", "s3://b/p/", true},
		{"s3://b/p", "s3://b/q", false},
		{"file:///var/lib/wv", "file:///var/lib/wv/", true},
		{"file:///var/lib/wv", "s3://wv", false},
	} {
		if got, err := sameRepository(tc.a, tc.b); err != nil || got != tc.want {
			t.Errorf("sameRepository(%q, %q) = %v, %v; want %v", tc.a, tc.b, got, err, tc.want)
		}
	}
}

func TestScrub(t *testing.T) {
	secrets := []string{"wJalrXUtnFEMI/K7MDENG", "hunter2"}
	in := "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG walvault wal-push %p; password=hunter2 PGPASSWORD='x y' postgres://u:pw@h/db token=abc"
	got := scrub(in, secrets)
	for _, leak := range []string{"wJalrXUtnFEMI", "hunter2", "'x y'", ":pw@", "abc"} {
		if strings.Contains(got, leak) {
			t.Errorf("scrub left %q in %q", leak, got)
		}
	}
	if !strings.Contains(got, "walvault wal-push %p") {
		t.Errorf("scrub removed more than secrets: %q", got)
	}
}

func TestKeepEnv(t *testing.T) {
	raw := []byte("PATH=/bin\x00WALVAULT_REPO=s3://b/p\x00AWS_SECRET_ACCESS_KEY=s3cr3t\x00WALVAULT_CONFIG=/etc/w.yaml\x00")
	got := keptOnly(parseEnviron(raw))
	if len(got) != 2 || got["WALVAULT_REPO"] != "s3://b/p" || got["WALVAULT_CONFIG"] != "/etc/w.yaml" {
		t.Fatalf("keptOnly(parseEnviron) = %v, want only WALVAULT_REPO and WALVAULT_CONFIG", got)
	}
}

// repoFixture is a file repository of cluster testSysID with segments 1
// to 6 on timeline 1, and a checker whose server facts a test fills in.
const testSysID = "7312345678901234567"

func newChecker(t *testing.T) (*checker, *file.Backend) {
	t.Helper()
	b, _ := filetest.New(t)
	repotest.Init(t, b, repository.NewIdentity(7312345678901234567, wal.DefaultSegmentSize, 15, repository.LZ4, "test", time.Now()))
	for n := uint32(1); n <= 6; n++ {
		putSegment(t, b, n)
	}
	srv := &server{version: "15.10", sysID: testSysID, segSize: wal.DefaultSegmentSize, settings: map[string]setting{}}
	c := &checker{b: b, srv: srv, opts: Options{Repo: "file:///unused", MaxBackupAge: 26 * time.Hour, MinBackups: 1, Timeout: 10 * time.Second, Host: "db1", Now: time.Now}}
	return c, b
}

func putSegment(t *testing.T, b storage.Backend, n uint32) string {
	t.Helper()
	s := wal.Segment{Timeline: 1, Seg: n}
	key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}, repository.LZ4)
	if err := b.Put(context.Background(), key, strings.NewReader("x"), storage.PutOptions{IfNotExists: true}); err != nil {
		t.Fatal(err)
	}
	return key
}

func one(t *testing.T, rs []Result) Result {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("got %d results, want 1: %+v", len(rs), rs)
	}
	return rs[0]
}

func TestRepositoryProbe(t *testing.T) {
	c, b := newChecker(t)
	r := one(t, c.checkRepository(context.Background()))
	if !r.OK {
		t.Fatalf("probe: %+v", r)
	}
	var left []string
	b.List(context.Background(), "check/", func(oi storage.ObjectInfo) error { left = append(left, oi.Key); return nil })
	if len(left) != 0 {
		t.Fatalf("the probe was left behind: %v", left)
	}
	if k := probeKey("db 1/x", time.Now()); storage.ValidateKey(k) != nil || !strings.HasPrefix(k, "check/probe-") {
		t.Fatalf("probe key %q", k)
	}
}

// TestRepositoryGone: a file:// repository whose disk is not mounted shows
// as an empty directory; when this server's wal-push read walvault.json
// there before, check names the repository gone and writes no probe under
// the bare mount point. A location no push ever saw is probed as new.
func TestRepositoryGone(t *testing.T) {
	dataDir := t.TempDir()
	walDir := filepath.Join(dataDir, "pg_wal")
	if err := os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	seg := wal.Segment{Timeline: 1, Seg: 3}
	if err := os.WriteFile(filepath.Join(walDir, "archive_status", seg.String()+".ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waltest.WriteFile(t, walDir, seg.String(), waltest.Cluster{SystemID: 7312345678901234567, SegmentSize: wal.MinSegmentSize}.Segment(t, seg, 1))
	mount := t.TempDir()
	b := filetest.At(t, mount)
	if _, err := archive.Push(t.Context(), b, filepath.Join(walDir, seg.String()), archive.Options{Compression: repository.LZ4, Host: "db1", Version: "test", IdentityCacheTTL: archive.DefaultIdentityCacheTTL}); err != nil {
		t.Fatal(err)
	}
	// The disk goes: its directory is empty.
	if err := os.RemoveAll(mount); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mount, 0o700); err != nil {
		t.Fatal(err)
	}
	c, _ := newChecker(t)
	// check, a process of its own, opens the directory as it is now.
	c.b, c.loc = filetest.At(t, mount), &local{dataDir: dataDir}
	r := one(t, c.checkRepository(t.Context()))
	if r.OK || !strings.Contains(r.Detail, "gone from its location") {
		t.Fatalf("a repository whose disk is not mounted: %+v; want FAILED, gone", r)
	}
	if left, _ := os.ReadDir(mount); len(left) != 0 {
		t.Fatalf("check wrote under the bare mount point: %v", left)
	}
	if r := one(t, c.checkIdentity(t.Context())); r.OK || !strings.Contains(r.Detail, "not checked") {
		t.Fatalf("identity of a gone repository: %+v; want not checked", r)
	}

	c, _ = newChecker(t)
	c.b, c.loc = filetest.At(t, t.TempDir()), &local{dataDir: dataDir}
	if r := one(t, c.checkRepository(t.Context())); !r.OK {
		t.Fatalf("a location this server never pushed to: %+v; want the probe OK", r)
	}
}

// lockedDeletes refuses every delete as locked, like a bucket with default
// retention.
type lockedDeletes struct{ storage.Backend }

func (l lockedDeletes) Delete(ctx context.Context, key string) error {
	return storage.OpError("delete", key, storage.ErrLocked)
}

func TestRepositoryProbeLocked(t *testing.T) {
	c, b := newChecker(t)
	c.b = lockedDeletes{b}
	r := one(t, c.checkRepository(context.Background()))
	if !r.OK || !strings.Contains(r.Detail, "retention") {
		t.Fatalf("a probe the bucket locks is OK with a note: %+v", r)
	}
}

func TestIdentity(t *testing.T) {
	c, _ := newChecker(t)
	if r := one(t, c.checkIdentity(context.Background())); !r.OK {
		t.Fatalf("same cluster: %+v", r)
	}
	c.srv.sysID = "42"
	r := one(t, c.checkIdentity(context.Background()))
	if r.OK || !strings.Contains(r.Detail, testSysID) || !strings.Contains(r.Detail, "42") {
		t.Fatalf("another cluster: %+v, want FAILED naming both system identifiers", r)
	}
	empty, _ := filetest.New(t)
	c.b = empty
	if r := one(t, c.checkIdentity(context.Background())); r.OK || !strings.Contains(r.Detail, "pg_switch_wal") {
		t.Fatalf("empty repository: %+v", r)
	}
}

func TestBackupsAndContinuity(t *testing.T) {
	c, b := newChecker(t)
	c.checkIdentity(context.Background())
	rs := c.checkBackups(context.Background())
	if len(rs) != 2 || rs[0].OK || rs[1].OK {
		t.Fatalf("no backup: want backup age and count FAILED, got %+v", rs)
	}
	c.opts.MinBackups = 0
	if rs := c.checkBackups(context.Background()); !rs[0].OK || !rs[1].OK {
		t.Fatalf("no backup with min-backups 0: %+v", rs)
	}
	if r := one(t, c.checkContinuity(context.Background())); !r.OK {
		t.Fatalf("continuous WAL: %+v", r)
	}
	if err := b.Delete(context.Background(), repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 4}}, repository.LZ4)); err != nil {
		t.Fatal(err)
	}
	r := one(t, c.checkContinuity(context.Background()))
	if r.OK || !strings.Contains(r.Detail, "000000010000000000000004") {
		t.Fatalf("a deleted segment: %+v, want FAILED naming it", r)
	}
}

type fakeLock struct {
	storage.Backend
	enabled bool
	err     error
}

func (f fakeLock) ObjectLockEnabled(context.Context) (bool, error) { return f.enabled, f.err }
func (f fakeLock) Unwrap() storage.Backend                         { return f.Backend }

func TestObjectLock(t *testing.T) {
	c, b := newChecker(t)
	c.checkIdentity(context.Background())
	if r := one(t, c.checkObjectLock(context.Background())); !r.OK {
		t.Fatalf("lock-mode off: %+v", r)
	}
	c.opts.LockMode, c.opts.LockDays = storage.Governance, 7
	// walvault.json records no lock policy: a push would be refused.
	if r := one(t, c.checkObjectLock(context.Background())); r.OK || !strings.Contains(r.Detail, "lock") {
		t.Fatalf("policy differs from the repository's: %+v", r)
	}
	c.identityLoaded = false
	if r := one(t, c.checkObjectLock(context.Background())); r.OK {
		t.Fatalf("file repository with lock-mode: %+v", r)
	}
	c.b = storage.WithRetry(fakeLock{Backend: b, enabled: false}, storage.DefaultRetryPolicy, nil)
	if r := one(t, c.checkObjectLock(context.Background())); r.OK || !strings.Contains(r.Detail, "not have it enabled") {
		t.Fatalf("bucket without Object Lock: %+v", r)
	}
	c.b = storage.WithRetry(fakeLock{Backend: b, enabled: true}, storage.DefaultRetryPolicy, nil)
	if r := one(t, c.checkObjectLock(context.Background())); !r.OK {
		t.Fatalf("bucket with Object Lock: %+v", r)
	}
}

func secs(s float64) *float64 { return &s }

func TestArchiver(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	tests := []struct {
		name string
		a    archiverStats
		ok   bool
	}{
		{"no failure", archiverStats{archived: 10, lastArchived: "000000010000000000000009", lastArchivedAt: &t0, archivedAge: secs(5)}, true},
		{"old failure", archiverStats{archived: 10, lastArchivedAt: &t1, archivedAge: secs(5), failed: 2, lastFailedAt: &t0, failedAge: secs(65)}, true},
		{"failing now", archiverStats{archived: 10, lastArchivedAt: &t0, archivedAge: secs(65), failed: 3, lastFailed: "00000001000000000000000A", lastFailedAt: &t1, failedAge: secs(5)}, false},
		{"never succeeded", archiverStats{failed: 1, lastFailedAt: &t1, failedAge: secs(5)}, false},
	}
	for _, tc := range tests {
		c, _ := newChecker(t)
		c.srv.archiver = tc.a
		if r := c.checkArchiver(); r.OK != tc.ok {
			t.Errorf("%s: %+v, want ok=%v", tc.name, r, tc.ok)
		}
	}

	// Failing when first read, but the archiver archived the proof's
	// segment since (the first check after a restart that fixed the
	// cause: explore23a F8): OK, saying so. Still failing after the
	// proof, or not read again: FAILED.
	failing := tests[2].a
	for _, tc := range []struct {
		name         string
		read         bool
		failingAfter string
		ok           bool
	}{
		{"archived since", true, "", true},
		{"still failing", true, "00000001000000000000000A", false},
		{"not read after the proof", false, "", false},
	} {
		c, _ := newChecker(t)
		c.srv.archiver = failing
		c.proofRan, c.archiverReadAfterProof, c.failingAfterProof = true, tc.read, tc.failingAfter
		r := c.checkArchiver()
		if r.OK != tc.ok || tc.ok && !strings.Contains(r.Detail, "archiving works again") {
			t.Errorf("%s: %+v, want ok=%v", tc.name, r, tc.ok)
		}
	}
}

// TestArchiveLagCountsBytes: how many .ready files may wait goes by the
// WAL they hold: 64 of 16 MiB, 1024 of 1 MiB, 4 of 1 GiB.
func TestArchiveLagCountsBytes(t *testing.T) {
	for _, tc := range []struct {
		segSize uint32
		ready   int64
		ok      bool
	}{{16 << 20, 64, true}, {16 << 20, 65, false}, {1 << 20, 1000, true}, {1 << 20, 1025, false}, {1 << 30, 4, true}, {1 << 30, 5, false}} {
		c, _ := newChecker(t)
		c.srv.segSize = tc.segSize
		c.srv.ready = readyFiles{count: tc.ready, oldest: secs(3)}
		if r := c.checkArchiveLag(); r.OK != tc.ok {
			t.Errorf("%d .ready files of %d MiB segments: %+v, want OK %v", tc.ready, tc.segSize>>20, r, tc.ok)
		}
	}
}

func TestArchiveLag(t *testing.T) {
	c, _ := newChecker(t)
	c.srv.settings["archive_mode"] = setting{value: "on"}
	c.srv.ready = readyFiles{count: 2, oldest: secs(3)}
	if r := c.checkArchiveLag(); !r.OK {
		t.Fatalf("2 fresh .ready files: %+v", r)
	}
	c.srv.ready = readyFiles{count: MaxReady + 1, oldest: secs(3)}
	if r := c.checkArchiveLag(); r.OK {
		t.Fatalf("too many .ready files: %+v", r)
	}
	c.srv.ready = readyFiles{count: 1, oldest: secs(3600)}
	if r := c.checkArchiveLag(); r.OK {
		t.Fatalf("an hour-old .ready file: %+v", r)
	}
	// Without pg_monitor: estimated from the WAL position.
	c.srv.ready = readyFiles{err: errors.New("permission denied")}
	c.srv.archiver = archiverStats{lastArchived: "000000010000000000000010"}
	c.srv.currentWAL = "000000010000000100000010"
	if r := c.checkArchiveLag(); r.OK || !strings.Contains(r.Detail, "about 255") {
		t.Fatalf("255 segments behind: %+v", r)
	}
	c.srv.currentWAL = "000000010000000000000013"
	if r := c.checkArchiveLag(); !r.OK || !strings.Contains(r.Detail, "about 2 segments") {
		t.Fatalf("2 segments behind: %+v", r)
	}
	c.srv.settings["archive_mode"] = setting{value: "off"}
	if r := c.checkArchiveLag(); r.OK {
		t.Fatalf("archive_mode off: %+v", r)
	}
}

func TestSettings(t *testing.T) {
	c, _ := newChecker(t)
	c.srv.settings = map[string]setting{
		"wal_level":       {value: "minimal"},
		"archive_mode":    {value: "off"},
		"archive_command": {value: "cp %p /somewhere/%f"},
		"archive_library": {value: ""},
	}
	for _, r := range []Result{c.checkWALLevel(), c.checkArchiveMode(), c.checkArchiveCommand()} {
		if r.OK {
			t.Errorf("%s: %+v, want FAILED", r.Name, r)
		}
	}
	// archive_mode off: PostgreSQL shows "(disabled)", which is no
	// command to advise replacing (explore23a N3).
	c.srv.settings["archive_command"] = setting{value: "(disabled)"}
	if r := c.checkArchiveCommand(); r.OK || !strings.Contains(r.Detail, "archive_mode is off") || strings.Contains(r.Detail, "set archive_command") {
		t.Errorf("archive_mode off: %+v, want FAILED pointing at archive_mode", r)
	}
	c.srv.settings["wal_level"] = setting{value: "replica"}
	c.srv.settings["archive_mode"] = setting{value: "on"}
	c.srv.settings["archive_command"] = setting{value: "walvault wal-push --repo s3://other/p %p"}
	c.opts.Repo = "s3://mine/p"
	c.loc = &local{why: "not here"}
	if r := c.checkArchiveCommand(); r.OK || !strings.Contains(r.Detail, "s3://other/p") {
		t.Errorf("another repository: %+v, want FAILED naming it", r)
	}
	c.opts.Repo = "s3://other/p/"
	if r := c.checkArchiveCommand(); !r.OK {
		t.Errorf("same repository: %+v", r)
	}
	c.srv.settings["archive_command"] = setting{value: "walvault wal-push %p"}
	if r := c.checkArchiveCommand(); !r.OK || !strings.Contains(r.Detail, "not checked") {
		t.Errorf("repository not in the command, server not local: %+v, want OK saying what was not checked", r)
	}
	for _, r := range []Result{c.checkWALLevel(), c.checkArchiveMode()} {
		if !r.OK {
			t.Errorf("%s: %+v, want OK", r.Name, r)
		}
	}
}

// TestRunWithoutPostgreSQL runs every check against a server that is not
// there: each line says so, nothing panics, and no secret is printed.
func TestRunWithoutPostgreSQL(t *testing.T) {
	_, b := newChecker(t)
	const password = "correct-horse-battery"
	rs := Run(context.Background(), b, Options{
		ConnString:   "host=127.0.0.1 port=1 user=postgres password=" + password + " connect_timeout=2",
		Repo:         "file:///x",
		MaxBackupAge: time.Hour, MinBackups: 1, Timeout: 5 * time.Second, Host: "db1",
		Secrets: []string{password},
	})
	names := map[string]Result{}
	for _, r := range rs {
		names[r.Name] = r
	}
	for _, n := range []string{NameRepository, NameIdentity, NamePostgreSQL, NameWALLevel, NameArchiveMode, NameArchiveCmd, NameArchiver, NameArchiveLag, NameBackupAge, NameBackupCount, NameContinuity, NameObjectLock, NameWALFreeSpace} {
		if _, ok := names[n]; !ok {
			t.Errorf("no %q line", n)
		}
	}
	if !names[NameRepository].OK || names[NamePostgreSQL].OK || names[NameArchiveMode].OK || !names[NameContinuity].OK {
		t.Errorf("results: %+v", rs)
	}
	var text, js bytes.Buffer
	if err := WriteText(&text, rs); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, rs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String()+js.String(), password) {
		t.Fatalf("the password was printed:\n%s", text.String())
	}
	if !strings.Contains(text.String(), "PostgreSQL: FAILED (") || !strings.Contains(text.String(), "repository: OK (") {
		t.Errorf("text output:\n%s", text.String())
	}
	var back []Result
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != len(rs) {
		t.Fatalf("JSON output: %v\n%s", err, js.String())
	}
	if Failed(rs) == 0 {
		t.Fatal("Failed counts no failure")
	}
}

// TestRunWithStalledRepository: once the repository does not answer the
// first request, the checks that need it say so without asking again, so
// check ends after one --timeout rather than one per check.
func TestRunWithStalledRepository(t *testing.T) {
	_, b := newChecker(t)
	stalled := storagetest.NewFault(b)
	for _, op := range []storagetest.Op{storagetest.OpStat, storagetest.OpGet, storagetest.OpList, storagetest.OpPut, storagetest.OpDelete} {
		stalled.Stall(op, storagetest.AnyKey)
	}
	rs := Run(context.Background(), stalled, Options{
		ConnString: "host=127.0.0.1 port=1 user=postgres connect_timeout=1",
		Repo:       "file:///x", MaxBackupAge: time.Hour, MinBackups: 1,
		LockMode: storage.Governance, LockDays: 7,
		Timeout: 500 * time.Millisecond, Host: "db1",
	})
	byName := map[string]Result{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	if r := byName[NameRepository]; r.OK || !strings.Contains(r.Detail, "not reachable") {
		t.Errorf("repository: %+v", r)
	}
	for _, n := range []string{NameIdentity, NameBackupAge, NameBackupCount, NameObjectLock} {
		if r := byName[n]; r.OK || !strings.Contains(r.Detail, "not checked") || !strings.Contains(r.Detail, "not reachable") {
			t.Errorf("%s: %+v", n, r)
		}
	}
	asked := 0
	for _, op := range []storagetest.Op{storagetest.OpStat, storagetest.OpGet, storagetest.OpList, storagetest.OpPut, storagetest.OpDelete} {
		asked += stalled.Calls(op)
	}
	if asked != 1 {
		t.Errorf("the stalled repository was asked %d times, want once", asked)
	}
}

// TestArchiveVerdict: once the proof ran, its verdict decides the
// archive_command line, whatever the command's words.
func TestArchiveVerdict(t *testing.T) {
	c, _ := newChecker(t)
	c.srv.settings = map[string]setting{"archive_mode": {value: "on"}, "archive_library": {value: ""}, "archive_command": {value: "/usr/local/bin/archive.sh %p"}}
	c.loc = &local{why: "not here"}
	c.proofRan, c.proof = true, archiveproof.Proof{Segment: "000000010000000000000003", Switched: true, Waited: time.Second}
	if r := c.checkArchiveCommand(); !r.OK || !strings.Contains(r.Detail, `"/usr/local/bin/archive.sh %p" reaches this repository: segment 000000010000000000000003`) {
		t.Errorf("a wrapper script that reaches the repository: %+v, want OK", r)
	}
	// The archiver stuck on an earlier segment while push-ahead stored
	// the proof's: archiving is stuck all the same.
	c.failingAfterProof = "000000010000000000000002"
	if r := c.checkArchiveCommand(); r.OK || !strings.Contains(r.Detail, "archive_command call for 000000010000000000000002 keeps failing") {
		t.Errorf("the archiver stuck behind a segment pushed ahead: %+v, want FAILED naming where it is stuck", r)
	}
	// Stuck on the very segment the proof found in the repository.
	c.failingAfterProof = "000000010000000000000003"
	if r := c.checkArchiveCommand(); r.OK || !strings.Contains(r.Detail, "archive_command call for 000000010000000000000003 keeps failing") {
		t.Errorf("the archiver stuck on the segment the repository holds: %+v, want FAILED", r)
	}
	c.failingAfterProof = "000000010000000000000004"
	if r := c.checkArchiveCommand(); !r.OK {
		t.Errorf("the archiver failing on a segment after the proof's: %+v, want OK (archiving got past the proof)", r)
	}
	c.failingAfterProof = ""
	c.srv.settings["archive_command"] = setting{value: "walvault wal-push %p"}
	c.proofErr = &archiveproof.NotReachedError{Location: "mem://x", Segment: "000000010000000000000003", Settings: pg.Settings{ArchiveMode: "on", ArchiveCommand: "walvault wal-push %p"}, Timeout: time.Second, Switched: true}
	if r := c.checkArchiveCommand(); r.OK || !strings.HasPrefix(r.Detail, `archive_command is "walvault wal-push %p"`) || !strings.Contains(r.Detail, "did not reach mem://x") {
		t.Errorf("a walvault command that does not reach the repository: %+v, want FAILED quoting it", r)
	}
	// The repository did not answer, so the proof did not run: words
	// that look right are not checked, not OK (explore23a F2).
	c.proofRan, c.proofErr, c.repoDown = false, nil, "is not reachable"
	c.loc = &local{why: "not here"}
	c.srv.settings["archive_command"] = setting{value: "WALVAULT_REPO=" + c.opts.Repo + " walvault wal-push %p"}
	if r := c.checkArchiveCommand(); r.OK || !strings.HasPrefix(r.Detail, "not checked: ") || !strings.Contains(r.Detail, "runs walvault wal-push into this repository") {
		t.Errorf("the repository unreachable: %+v, want FAILED, not checked, with what the words say", r)
	}
}

// TestPostgreSQLVersion: a server outside PostgreSQL 15 to 18 fails the
// PostgreSQL line and says which version it is.
func TestPostgreSQLVersion(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool
		want    string
	}{
		{"15.10 (Debian 15.10-1.pgdg120+1)", true, "PostgreSQL 15.10, primary"},
		{"18.1", true, "PostgreSQL 18.1, primary"},
		{"14.12", false, "PostgreSQL 14.12 is too old"},
		{"19devel", false, "PostgreSQL 19.0 is not supported"},
	} {
		c, _ := newChecker(t)
		c.srv.version = tc.version
		r := c.checkPostgreSQL()
		if r.OK != tc.ok || !strings.Contains(r.Detail, tc.want) {
			t.Errorf("server %s: got ok=%v %q, want ok=%v and %q", tc.version, r.OK, r.Detail, tc.ok, tc.want)
		}
	}
}

// TestArchiveCommandUnreadVariables: a WALVAULT_* variable walvault reads
// none of, set in front of archive_command or in the server's environment,
// is named on the archive_command line (wal-push ignores a misspelled
// setting); known ones and other variables are not.
func TestArchiveCommandUnreadVariables(t *testing.T) {
	c, _ := newChecker(t)
	c.srv.settings = map[string]setting{
		"archive_mode":    {value: "on"},
		"archive_command": {value: "WALVAULT_COMPRESION=zstd WALVAULT_REPO=s3://mine/p walvault wal-push %p"},
		"archive_library": {value: ""},
	}
	c.opts.Repo = "s3://mine/p"
	c.loc = &local{why: "not here", envNames: []string{"PATH", "WALVAULT_LOCK_DAY", "WALVAULT_REPO"}}
	c.opts.UnknownEnvVars = func(names []string) []string {
		var unknown []string
		for _, n := range names {
			if n, _, _ = strings.Cut(n, "="); strings.HasPrefix(n, "WALVAULT_") && n != "WALVAULT_REPO" {
				unknown = append(unknown, n)
			}
		}
		return unknown
	}
	r := c.checkArchiveCommand()
	if !r.OK || !strings.Contains(r.Detail, "walvault reads no variable named WALVAULT_COMPRESION or WALVAULT_LOCK_DAY") {
		t.Errorf("misspelled variables in front of the command and in the server's environment: %+v, want OK naming both", r)
	}
	c.loc.envNames = []string{"WALVAULT_REPO"}
	c.srv.settings["archive_command"] = setting{value: "WALVAULT_REPO=s3://mine/p walvault wal-push %p"}
	if r := c.checkArchiveCommand(); !r.OK || strings.Contains(r.Detail, "reads no") {
		t.Errorf("only known variables: %+v, want OK naming none", r)
	}
}
