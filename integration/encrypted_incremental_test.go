package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
)

// TestEncryptedIncremental: in an encrypted repository (PostgreSQL 17, on
// MinIO),
// backup-push, holding only the public key, keeps a plain copy of each
// backup_manifest in its cache directory, and an incremental backup
// uploads its parent's copy: a full backup and two incrementals restore as
// a chain, with the identity, to the rows the source had. From a host
// without the copy (another cache directory) --incremental is refused
// saying so, and --fallback-full takes a full backup; a copy changed since
// is refused too. No secret appears anywhere.
func TestEncryptedIncremental(t *testing.T) {
	r := s3RepoOn(t, testenv.StartMinIO(t))
	enc, _, leak := encryptedRepo(t, r)
	cache := t.TempDir()
	enc.env = append(enc.env, "XDG_CACHE_HOME="+cache)
	primary, _ := archivingServerWith(t, enc, testenv.PostgresOptions{Major: 17, Conf: map[string]string{"summarize_wal": "on"}})
	primary.Pgbench(t, "-i", "-s", "2", "-q")

	full := backupPush(t, enc, primary)
	waitDone(t, enc, full)
	primary.Pgbench(t, "-n", "-t", "300", "-c", "2")
	inc1 := backupPush(t, enc, primary, "--incremental")
	waitDone(t, enc, inc1)
	primary.Pgbench(t, "-n", "-t", "300", "-c", "2")
	atInc2 := pgbenchState(t, primary) // nothing writes while inc2 runs
	inc2 := backupPush(t, enc, primary, "--incremental")
	waitDone(t, enc, inc2)
	for _, c := range []struct{ id, parent string }{{inc1, full}, {inc2, inc1}} {
		m := loadManifest(t, enc, c.id)
		if m.Type != repository.BackupIncremental || m.Parent != c.parent || m.PGManifest.Encryption == "" {
			t.Fatalf("backup %s: type %q on %q, backup_manifest encryption %q; want an encrypted incremental on %s", c.id, m.Type, m.Parent, m.PGManifest.Encryption, c.parent)
		}
	}

	// check opens the whole chain the newest backup restores with.
	lines, cres := checkJSON(t, enc.env, "--pg-conn", primary.ConnString())
	if d := checkByName(lines)["decryption"]; !d.OK || !strings.Contains(d.Detail, inc2+" and the 2 backups it builds on") {
		t.Fatalf("check's decryption line: %+v, want the chain of %s opened\n%v", d, inc2, cres)
	}

	dir, res := restoreInto(t, enc, "--backup", inc2, "--target-immediate", "--target-action", "promote", "--verify", "both", "--pg-bin", primary.ClientBinDir)
	leak.add(res)
	if !strings.Contains(res.stdout, "reconstructed from incremental ones") {
		t.Errorf("restore of %s: output does not say the chain was combined:\n%s", inc2, res.stdout)
	}
	restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: enc.env})
	waitPromoted(t, restored)
	checkRestoredChain(t, restored, atInc2)
	restored.Stop(t)

	// The copies live in one folder per repository, the newest kept.
	copies, err := filepath.Glob(filepath.Join(cache, "walvault", "manifests", "*", "*.backup_manifest"))
	if err != nil || len(copies) != 3 || filepath.Base(copies[2]) != inc2+".backup_manifest" {
		t.Fatalf("kept copies %v (%v), want those of %s, %s and %s", copies, err, full, inc1, inc2)
	}

	otherHost := append(append([]string{}, enc.env...), "XDG_CACHE_HOME="+t.TempDir())
	res = leak.add(walvault(t, otherHost, "backup-push", "--pg-conn", primary.ConnString(), "--incremental"))
	if res.code == 0 || !strings.Contains(res.stderr, "has none") || !strings.Contains(res.stderr, inc2) {
		t.Fatalf("backup-push --incremental without a copy of %s's backup_manifest: want exit 1 saying there is none, got %v", inc2, res)
	}
	res = leak.add(walvault(t, otherHost, "backup-push", "--pg-conn", primary.ConnString(), "--incremental", "--fallback-full"))
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "taking a full backup instead") {
		t.Fatalf("backup-push --incremental --fallback-full without a copy: want a full backup, got %v", res)
	}

	body := readFile(t, copies[2])
	changed := strings.Replace(string(body), `"Size": `, `"Size":  `, 1)[:len(body)]
	if err := os.WriteFile(copies[2], []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	res = leak.add(walvault(t, enc.env, "backup-push", "--pg-conn", primary.ConnString(), "--incremental", "--parent", inc2))
	if res.code == 0 || !strings.Contains(res.stderr, "is not the one stored with the backup") {
		t.Fatalf("backup-push --incremental on a changed copy of %s's backup_manifest: want a refusal, got %v", inc2, res)
	}
	leak.check(t, []string{primary.LogTail(1 << 20)}, cache)
}
