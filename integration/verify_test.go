package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage/s3"
	"github.com/walvault/walvault/wal/waltest"
)

// verifyReport is the documented verify --json schema (the fields the
// tests rely on).
type verifyReport struct {
	OK      bool `json:"ok"`
	Summary struct {
		Problems    int   `json:"problems"`
		WALObjects  int64 `json:"wal_objects"`
		Backups     int   `json:"backups"`
		ObjectsRead int64 `json:"objects_read"`
	} `json:"summary"`
	Problems []struct {
		Kind         string   `json:"kind"`
		Key          string   `json:"key"`
		Detail       string   `json:"detail"`
		MissingFirst string   `json:"missing_first"`
		Missing      []string `json:"missing"`
	} `json:"problems"`
	Backups []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"backups"`
}

func verifyJSON(t *testing.T, env []string, args ...string) (verifyReport, result) {
	t.Helper()
	res := walvault(t, env, append([]string{"verify", "--json"}, args...)...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("verify --json is not the documented JSON: %v\n%v", err, res)
	}
	return rep, res
}

// archivedHistory is a server archiving into r with a backup and a few
// segments after it; it returns the server, the backup id and the names of
// segments archived after the backup (the last one is the newest archived).
func archivedHistory(t *testing.T, r *repo) (*testenv.Postgres, string, []string) {
	t.Helper()
	pg, _ := archivingServer(t, r)
	pg.SQL(t, "CREATE TABLE t AS SELECT g AS i FROM generate_series(1, 10000) g")
	id := backupPush(t, r, pg, "--part-size", "1MiB")
	var after []string
	for range 3 {
		pg.SQL(t, "INSERT INTO t SELECT g FROM generate_series(1, 1000) g")
		after = append(after, pg.SwitchWAL(t))
	}
	pg.WaitArchived(t, after[len(after)-1], 60*time.Second)
	waitDone(t, r, id)
	return pg, id, after
}

func TestVerifyHealthyAndRemovedSegment(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		_, id, after := archivedHistory(t, r)

		res := walvault(t, r.env, "verify")
		if res.code != 0 || !strings.Contains(res.stdout, "summary: repository is healthy: 0 problems") || !strings.Contains(res.stdout, "OK: backup "+id) {
			t.Fatalf("verify of a healthy repository: %v", res)
		}
		t.Logf("verify:\n%s", res.stdout)
		rep, res := verifyJSON(t, r.env, "--full")
		if res.code != 0 || !rep.OK || rep.Summary.Backups != 1 || rep.Summary.ObjectsRead < rep.Summary.WALObjects {
			t.Fatalf("verify --full of a healthy repository: %+v\n%v", rep, res)
		}

		// Remove a segment between the backup and the newest one.
		gone := after[1]
		key := repository.WALKey(waltest.FileName(t, gone), repository.LZ4)
		if err := r.backend.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		res = walvault(t, r.env, "verify")
		if res.code != 1 || !strings.Contains(res.stdout, "PROBLEM: timeline 1: WAL missing: "+gone) {
			t.Fatalf("verify after removing %s: want exit 1 and a PROBLEM line naming it, got %v", gone, res)
		}
		rep, _ = verifyJSON(t, r.env)
		if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != "wal_gap" || rep.Problems[0].MissingFirst != gone || rep.Problems[0].Key != key {
			t.Fatalf("verify --json after removing %s: %+v", gone, rep)
		}
	})
}

func TestVerifyFullFindsCorruption(t *testing.T) {
	repos(t, func(t *testing.T, r *repo) {
		_, id, after := archivedHistory(t, r)
		// A WAL segment and a backup part, each with one byte of its stored
		// body changed and its metadata kept: the last byte, in the lz4
		// frame's content checksum, so the damage is certain to show (a flip
		// in the middle may hit a match offset between equal bytes of a
		// redundant tar, which changes nothing that is read back).
		segKey := repository.WALKey(waltest.FileName(t, after[0]), repository.LZ4)
		m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
		if err != nil {
			t.Fatal(err)
		}
		partKey := m.Archives[0].Parts[0].Key
		for _, key := range []string{segKey, partKey} {
			body, _ := getObject(t, r.backend, key)
			body[len(body)-1] ^= 0x01
			r.tamper(t, key, body)
		}
		if res := walvault(t, r.env, "verify"); res.code != 0 {
			t.Fatalf("without --full, sizes are unchanged and verify says OK: %v", res)
		}
		rep, res := verifyJSON(t, r.env, "--full")
		if res.code != 1 {
			t.Fatalf("verify --full of corrupted objects: want exit 1, got %v", res)
		}
		found := map[string]string{}
		for _, p := range rep.Problems {
			found[p.Key] = p.Kind
		}
		if found[segKey] != "wal_checksum" || found[partKey] != "part_checksum" || len(rep.Problems) != 2 {
			t.Fatalf("problems %+v, want wal_checksum for %s and part_checksum for %s", rep.Problems, segKey, partKey)
		}
		if rep.Backups[0].Status != "PROBLEM" {
			t.Errorf("backup status %s, want PROBLEM", rep.Backups[0].Status)
		}
	})
}

// TestVerifyFindsHiddenObject: on a lock-enabled (versioned) bucket, a
// plain DeleteObject only adds a delete marker; verify reports the hidden
// segment (and not a gap: wal-fetch still finds it) and says to run repair.
func TestVerifyFindsHiddenObject(t *testing.T) {
	gw := testenv.StartVersity(t)
	const bucket, prefix = "walvault-verify-locked", "c1"
	gw.CreateBucket(t, bucket, true)
	for _, kv := range gw.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	b, err := s3.New(context.Background(), s3.Config{Bucket: bucket, Prefix: prefix, Endpoint: gw.Endpoint, PathStyle: true, Region: gw.Region})
	if err != nil {
		t.Fatal(err)
	}
	url := "s3://" + bucket + "/" + prefix
	r := &repo{name: "s3-locked", url: url, backend: b,
		env: append(gw.Env(), "WALVAULT_REPO="+url, "WALVAULT_LOCK_MODE=governance", "WALVAULT_LOCK_DAYS=1")}
	pg, _, after := archivedHistory(t, r)
	if res := walvault(t, r.env, "verify"); res.code != 0 || !strings.Contains(res.stdout, "no object is hidden") {
		t.Fatalf("verify before the delete: %v", res)
	}
	// check on a locked repository: the bucket has Object Lock, and the
	// capability probe, written under the lock mode, comes back locked and
	// its delete is refused (so it stays until its retention ends). But
	// the gateway's root credentials may bypass governance: check shortens
	// its probe's lock with them, and fails the Object Lock line.
	if res := walvault(t, r.env, "check", "--pg-conn", pg.ConnString()); res.code != 1 ||
		!strings.Contains(res.stdout, "Object Lock: FAILED (new objects are locked GOVERNANCE for 1 day, but the credentials walvault runs with lifted such a lock") ||
		!strings.Contains(res.stdout, "a conditional create of it was refused") ||
		!strings.Contains(res.stdout, "its delete was refused") {
		t.Fatalf("check of a locked repository written with root credentials: %v", res)
	}

	key := repository.WALKey(waltest.FileName(t, after[1]), repository.LZ4)
	out, err := gw.Client(t).DeleteObject(t.Context(), &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + key)})
	if err != nil || !aws.ToBool(out.DeleteMarker) {
		t.Fatalf("DeleteObject without a version id: %v, want a delete marker", err)
	}
	rep, res := verifyJSON(t, r.env)
	if res.code != 1 || len(rep.Problems) != 1 || rep.Problems[0].Kind != "hidden" || rep.Problems[0].Key != key || !strings.Contains(rep.Problems[0].Detail, "walvault repair") {
		t.Fatalf("verify after hiding %s: want exactly one 'hidden' problem saying to run walvault repair, got %+v\n%v", key, rep.Problems, res)
	}
	if res := walvault(t, r.env, "verify"); !strings.Contains(res.stdout, "PROBLEM: "+key+" is hidden behind a delete marker") {
		t.Fatalf("human output: %v", res)
	}

	// Another segment's object put over a third key, metadata and all (a
	// newer version; the locked original stays below it): verify names
	// the key written over, and wal-fetch serves the original.
	over := repository.WALKey(waltest.FileName(t, after[2]), repository.LZ4)
	from := repository.WALKey(waltest.FileName(t, after[0]), repository.LZ4)
	if _, err := gw.Client(t).CopyObject(t.Context(), &awss3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + over),
		CopySource: aws.String(bucket + "/" + prefix + "/" + from), MetadataDirective: "COPY"}); err != nil {
		t.Fatalf("copy %s over %s: %v", from, over, err)
	}
	rep, res = verifyJSON(t, r.env)
	var written bool
	for _, p := range rep.Problems {
		written = written || p.Kind == "wal_overwritten" && p.Key == over
	}
	if res.code != 1 || !written {
		t.Fatalf("verify after writing over %s: want a wal_overwritten problem naming it, got %+v\n%v", over, rep.Problems, res)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if res := walvault(t, r.env, "wal-fetch", after[2], dest); res.code != 0 || !strings.Contains(res.stderr, "object overwritten") {
		t.Fatalf("wal-fetch of the key written over: %v; want its original, with a warning", res)
	}
}
