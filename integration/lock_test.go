package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
	"github.com/walvault/walvault/wal/waltest"
)

// lockedRepo is an s3:// repository on a lock-enabled (so versioned)
// bucket, pushed to with lock-mode governance and lock-days 1.
func lockedRepo(t *testing.T, gw *testenv.S3Server, bucket, prefix string) *repo {
	gw.CreateBucket(t, bucket, true)
	for _, kv := range gw.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v) // the test's own backend reads the AWS chain too
	}
	b, err := s3.New(context.Background(), s3.Config{Bucket: bucket, Prefix: prefix, Endpoint: gw.Endpoint, PathStyle: true, Region: gw.Region})
	if err != nil {
		t.Fatal(err)
	}
	url := "s3://" + bucket + "/" + prefix
	return &repo{
		name:    "s3-locked",
		url:     url,
		env:     append(gw.Env(), "WALVAULT_REPO="+url, "WALVAULT_LOCK_MODE=governance", "WALVAULT_LOCK_DAYS=1"),
		backend: b,
	}
}

// TestObjectLock is the immutable-repository scenario: PostgreSQL archives
// with Object Lock, a backup is taken, and then "the attacker", with the
// very credentials walvault uses, deletes a WAL segment and a backup part.
// Without a version id the deletes only hide them; with one they are
// refused. A restore still succeeds (with warnings), and repair removes
// the delete markers. It runs on the Versity gateway and on MinIO.
func TestObjectLock(t *testing.T) {
	for _, server := range []struct {
		name  string
		start func(testing.TB) *testenv.S3Server
	}{{"Versity", testenv.StartVersity}, {"MinIO", testenv.StartMinIO}} {
		t.Run(server.name, func(t *testing.T) { testObjectLock(t, server.start(t)) })
	}
}

func testObjectLock(t *testing.T, gw *testenv.S3Server) {
	const bucket, prefix = "walvault-locked", "cluster1"
	r := lockedRepo(t, gw, bucket, prefix)
	ctx := t.Context()
	attacker := gw.Client(t) // the gateway's keys: the ones walvault has
	okey := func(key string) string { return prefix + "/" + key }

	pg, copies := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE accounts (id int PRIMARY KEY, note text); INSERT INTO accounts SELECT g, 'in the backup' FROM generate_series(1, 1000) g")
	id := backupPush(t, r, pg, "--part-size", "1MiB")
	pg.SQL(t, "INSERT INTO accounts SELECT g, 'after the backup' FROM generate_series(1001, 1500) g")
	// The segment holding the rows written after the backup: a restore to
	// the latest point must replay it.
	segName := pg.SwitchWAL(t)
	pg.WaitArchived(t, segName, 60*time.Second)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)
	// check lists and reads the identity's versions, as wal-fetch must in
	// a locked repository, before it tries to lift its probe's lock (which
	// the gateway's root keys can: that fails the line).
	if res := walvault(t, r.env, "check", "--pg-conn", pg.ConnString()); !strings.Contains(res.stdout, "Object Lock: FAILED (new objects are locked GOVERNANCE for 1 day, but the credentials walvault runs with lifted such a lock") {
		t.Errorf("check on a locked repository, with keys that may read versions and lift locks: want the Object Lock line to fail on the lifted lock alone, got %v", res)
	}

	// The policy is recorded, and every kind of object is locked.
	ident, err := repository.LoadIdentity(ctx, r.backend)
	if err != nil {
		t.Fatal(err)
	}
	if want := (repository.LockPolicy{Mode: storage.Governance, Days: 1}); ident.Lock() != want {
		t.Fatalf("walvault.json records lock %v, want %v", ident.Lock(), want)
	}
	m, err := repository.LoadBackupManifest(ctx, r.backend, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Archives[0].Parts) < 2 {
		t.Fatalf("backup in 1 MiB parts has %d parts, want several", len(m.Archives[0].Parts))
	}
	seg := waltest.FileName(t, segName)
	segKey := repository.WALKey(seg, repository.LZ4)
	partKey := m.Archives[0].Parts[0].Key
	now := time.Now()
	for _, key := range []string{repository.IdentityKey, segKey, partKey, m.PGManifest.Key, repository.BackupManifestKey(id)} {
		info, err := r.backend.Stat(ctx, key)
		if err != nil {
			t.Fatalf("stat %s: %v", key, err)
		}
		if d := info.RetainUntil.Sub(now); d < 23*time.Hour || d > 25*time.Hour {
			t.Errorf("%s: locked until %v, want about a day from now", key, info.RetainUntil)
		}
	}

	// The attack. A DELETE without a version id "succeeds"...
	for _, key := range []string{segKey, partKey} {
		out, err := attacker.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(okey(key))})
		if err != nil || !aws.ToBool(out.DeleteMarker) {
			t.Fatalf("attacker's DELETE of %s without a version id: got %v, want success with a delete marker", key, err)
		}
		if _, err := r.backend.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s after the attacker's DELETE: got %v, want it hidden (not found)", key, err)
		}
	}
	// ...but deleting the data itself, by version id, is refused.
	for _, key := range []string{segKey, partKey} {
		versions, err := attacker.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(okey(key))})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range versions.Versions {
			if aws.ToString(v.Key) != okey(key) {
				continue
			}
			n++
			_, err := attacker.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: v.Key, VersionId: v.VersionId})
			if err == nil {
				t.Fatalf("attacker's DELETE of %s version %s: got success, want a refusal (locked)", key, aws.ToString(v.VersionId))
			}
			t.Logf("attacker's DELETE of %s by version id: %v", key, err)
		}
		if n != 1 {
			t.Fatalf("%s has %d data versions, want 1", key, n)
		}
	}

	dry := walvault(t, r.env, "repair", "--dry-run")
	if dry.code != 1 || !strings.Contains(dry.stdout, segKey) || !strings.Contains(dry.stdout, partKey) || !strings.Contains(dry.stdout, "2 objects hidden") {
		t.Fatalf("repair --dry-run with two hidden objects: want exit 1 listing %s and %s, got %v", segKey, partKey, dry)
	}
	t.Logf("repair --dry-run: %v", dry)

	// A restore to the latest point still succeeds: the hidden part and the
	// hidden segment are read from their locked versions, with warnings.
	dir := filepath.Join(testenv.UserDir(t), "restored")
	res := walvault(t, r.env, "restore", "--pgdata", dir)
	if res.code != 0 {
		t.Fatalf("restore after the attack: %v", res)
	}
	for _, want := range []string{"level=WARN", "hidden by a delete marker", "key=" + partKey, "walvault repair"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("restore's log lacks %q:\n%s", want, res.stderr)
		}
	}
	t.Logf("restore: %s", res.stderr)
	restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: r.env})
	waitPromoted(t, restored)
	if got := restored.SQL(t, "SELECT count(*) FROM accounts"); got != "1500" {
		t.Errorf("accounts after the restore: %s rows, want 1500 (the rows in the hidden segment too)\n%s", got, restored.LogTail(40))
	}
	if log := readFile(t, restored.LogFile); !strings.Contains(string(log), "key="+segKey) || !strings.Contains(string(log), "walvault repair") {
		t.Errorf("the restored server's log has no wal-fetch warning about %s:\n%s", segKey, restored.LogTail(60))
	}
	restored.Stop(t)

	// repair removes the delete markers: nothing is hidden any more.
	rep := walvault(t, r.env, "repair")
	if rep.code != 0 || strings.Count(rep.stdout, "unhidden") != 2 || !strings.Contains(rep.stdout, "nothing is hidden") {
		t.Fatalf("repair: want exit 0 with two unhidden objects, got %v", rep)
	}
	t.Logf("repair: %v", rep)
	for _, key := range []string{segKey, partKey} {
		if _, err := r.backend.Stat(ctx, key); err != nil {
			t.Errorf("%s after repair: got %v, want it visible", key, err)
		}
	}
	again := walvault(t, r.env, "repair", "--dry-run")
	if again.code != 0 || !strings.Contains(again.stdout, "nothing is hidden") {
		t.Errorf("repair --dry-run after repair: want exit 0, nothing hidden, got %v", again)
	}
	if got := listBackups(t, r.env); len(got) != 1 || got[0].Status != "DONE" {
		t.Errorf("backup-list after repair: got %+v, want one DONE backup", got)
	}

	t.Run("other policy refused", func(t *testing.T) {
		segFile := filepath.Join(copies, segName)
		for _, tc := range []struct {
			name string
			env  []string
			want []string
		}{
			{"compliance", []string{"WALVAULT_LOCK_MODE=compliance"}, []string{"COMPLIANCE for 1 day"}},
			{"other days", []string{"WALVAULT_LOCK_DAYS=30"}, []string{"GOVERNANCE for 30 days"}},
			{"off", []string{"WALVAULT_LOCK_MODE=off", "WALVAULT_LOCK_DAYS=0"}, []string{"configured with off"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env := append(append([]string{}, r.env...), tc.env...)
				want := append([]string{"records Object Lock GOVERNANCE for 1 day", "lock-mode governance and lock-days 1", "nothing was written"}, tc.want...)
				res := walvault(t, env, "wal-push", segFile)
				if res.code == 0 {
					t.Fatalf("wal-push under another lock policy: want a refusal, got %v", res)
				}
				bp := walvault(t, env, "backup-push", "--pg-conn", pg.ConnString())
				if bp.code == 0 {
					t.Fatalf("backup-push under another lock policy: want a refusal, got %v", bp)
				}
				t.Logf("wal-push: %s", res.stderr)
				for _, w := range want {
					if !strings.Contains(res.stderr, w) || !strings.Contains(bp.stderr, w) {
						t.Errorf("refusals lack %q:\nwal-push: %s\nbackup-push: %s", w, res.stderr, bp.stderr)
					}
				}
			})
		}
		if got := listBackups(t, r.env); len(got) != 1 {
			t.Errorf("refused backup-pushes left backups: %+v", got)
		}
	})

	t.Run("bucket without Object Lock", func(t *testing.T) {
		const plain = "walvault-plain"
		gw.CreateBucket(t, plain, false)
		env := append(append([]string{}, r.env...), "WALVAULT_REPO=s3://"+plain+"/cluster1")
		res := walvault(t, env, "wal-push", filepath.Join(copies, segName))
		if res.code == 0 || !strings.Contains(res.stderr, "enable Object Lock on the bucket") || !strings.Contains(res.stderr, "or set lock-mode off") {
			t.Fatalf("wal-push with lock settings to a bucket without Object Lock: want a refusal saying what to do, got %v", res)
		}
		t.Logf("wal-push: %s", res.stderr)
		out, err := attacker.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(plain)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Contents) != 0 {
			t.Errorf("the refused push stored %d objects, first %s", len(out.Contents), aws.ToString(out.Contents[0].Key))
		}
	})

	t.Run("file repository", func(t *testing.T) {
		dir := t.TempDir()
		res := walvault(t, []string{"WALVAULT_REPO=file://" + dir, "WALVAULT_LOCK_MODE=governance", "WALVAULT_LOCK_DAYS=1"}, "wal-push", filepath.Join(copies, segName))
		if res.code != 2 || !strings.Contains(res.stderr, "a file:// repository cannot be immutable") {
			t.Fatalf("wal-push with lock settings to file://: want exit 2 saying a directory cannot be immutable, got %v", res)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the refused push wrote %d entries into %s", len(entries), dir)
		}
	})
}
