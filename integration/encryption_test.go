package integration

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// ageKey is an age key pair for a test: the identity file (mode 600,
// the test's own) and the public key.
type ageKey struct {
	path, public, secret string
}

func newAgeKey(t *testing.T, dir, name string) ageKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("# walvault test key\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return ageKey{path, id.Recipient().String(), id.String()}
}

// secretLeakCheck collects everything walvault printed or stored during a
// test and fails if an identity's secret appears in any of it.
type secretLeakCheck struct {
	secrets []string
	outputs []string
}

func (c *secretLeakCheck) add(r result) result {
	c.outputs = append(c.outputs, r.stdout, r.stderr)
	return r
}

// check greps every output collected, the logs and every file under dirs.
func (c *secretLeakCheck) check(t *testing.T, logs []string, dirs ...string) {
	t.Helper()
	hay := append(append([]string{}, c.outputs...), logs...)
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			hay = append(hay, string(b))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range c.secrets {
		// The secret's body, so a differently cased or cut copy is caught too.
		body := strings.ToLower(strings.TrimPrefix(s, "AGE-SECRET-KEY-1"))[:40]
		for _, h := range hay {
			if strings.Contains(strings.ToLower(h), body) {
				t.Fatalf("the secret identity appears in walvault's output, a log or a stored object")
			}
		}
	}
}

// TestEncryptedArchiveAndFetch: archive_command with encrypt-to stores
// every WAL file encrypted; wal-fetch with the identity gives each back
// byte-identical; without it, or with bad settings, walvault says so on
// one line with the exit code the README's table gives, and writes
// nothing; the secret never leaves its file.
func TestEncryptedArchiveAndFetch(t *testing.T) {
	r := fileRepo(t)
	keyDir := t.TempDir()
	key := newAgeKey(t, keyDir, "key.txt")
	leak := &secretLeakCheck{secrets: []string{key.secret}}
	recipientsFile := filepath.Join(testenv.UserDir(t), "recipients.txt")
	if err := os.WriteFile(recipientsFile, []byte("# ops team\n"+key.public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pushEnv := append(append([]string{}, r.env...), "WALVAULT_ENCRYPT_TO=@"+recipientsFile, "WALVAULT_LOG_LEVEL=debug")
	pg, copies := archivingServer(t, &repo{name: r.name, url: r.url, env: pushEnv, backend: r.backend})
	pg.Pgbench(t, "-i", "-s", "1", "-q")
	pg.SQL(t, "SELECT pg_backup_start('walvault-it', true); SELECT * FROM pg_backup_stop()")
	last := pg.SwitchWAL(t)
	pg.WaitArchived(t, last, 60*time.Second)

	id, err := repository.LoadIdentity(t.Context(), r.backend)
	if err != nil || id.Encryption != "age" || len(id.Recipients) != 1 {
		t.Fatalf("walvault.json = %+v, %v: want encryption age with one recipient", id, err)
	}
	fetchEnv := append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+key.path, "WALVAULT_LOG_LEVEL=debug")
	entries := fetchEveryArchivedFileWith(t, fetchEnv, copies, func(res result) { leak.add(res) })
	out := t.TempDir()
	seg := firstSegment(t, entries)
	body, info := getObject(t, r.backend, repository.WALKey(seg, repository.LZ4))
	if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) || info.Metadata[repository.MetaSHA256] != "" || info.Metadata[repository.MetaFingerprints] == "" {
		t.Fatalf("%s: stored %q…, metadata %v: want an age file with fingerprints and no sha256", seg, body[:16], info.Metadata)
	}

	emergencyDecrypt(t, key, body, readFile(t, filepath.Join(copies, seg.String())))

	// wal-fetch without an identity: exit 200 (never 1, "not archived",
	// which would end recovery early), one line naming the setting.
	res := leak.add(walvault(t, r.env, "wal-fetch", seg.String(), filepath.Join(out, "none")))
	if res.code != 200 || !strings.Contains(res.stderr, "decrypt-with") || !strings.Contains(res.stderr, id.Recipients[0]) {
		t.Fatalf("wal-fetch without identity: %v; want exit 200 naming decrypt-with and %s", res, id.Recipients[0])
	}
	assertAbsent(t, filepath.Join(out, "none"))
	// With another key: exit 200, naming both keys.
	other := newAgeKey(t, keyDir, "other.txt")
	res = leak.add(walvault(t, append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+other.path), "wal-fetch", seg.String(), filepath.Join(out, "other")))
	if res.code != 200 || !strings.Contains(res.stderr, id.Recipients[0]) {
		t.Fatalf("wal-fetch with another key: %v", res)
	}
	// A malformed identity file: exit 200 for wal-fetch, one line.
	bad := filepath.Join(keyDir, "bad.txt")
	os.WriteFile(bad, []byte(key.secret[:len(key.secret)-4]+"\n"), 0o600)
	res = leak.add(walvault(t, append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+bad), "wal-fetch", seg.String(), filepath.Join(out, "bad")))
	if res.code != 200 || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 || !strings.Contains(res.stderr, "decrypt-with") {
		t.Fatalf("wal-fetch with a malformed identity: %v", res)
	}
	// An identity file readable by others: works, with a warning naming the mode.
	if err := os.Chmod(key.path, 0o644); err != nil {
		t.Fatal(err)
	}
	res = leak.add(walvault(t, fetchEnv, "wal-fetch", seg.String(), filepath.Join(out, "warned")))
	if res.code != 0 || !strings.Contains(res.stderr, "0644") {
		t.Fatalf("wal-fetch with a mode 644 identity: %v; want exit 0 and a warning naming the mode", res)
	}
	os.Chmod(key.path, 0o600)

	// Settings that disagree with the repository: one line, nothing written.
	copyOf := filepath.Join(out, "push", seg.String())
	os.MkdirAll(filepath.Dir(copyOf), 0o700)
	os.WriteFile(copyOf, readFile(t, filepath.Join(copies, seg.String())), 0o600)
	r.backend.Delete(t.Context(), repository.WALKey(seg, repository.LZ4)) // so only the settings can refuse
	before := listKeys(t, r, "")
	res = leak.add(walvault(t, r.env, "wal-push", copyOf))
	if res.code != 1 || !strings.Contains(res.stderr, "encrypt-to is not set") || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
		t.Fatalf("clear wal-push into an encrypted repository: %v", res)
	}
	res = leak.add(walvault(t, append(append([]string{}, r.env...), "WALVAULT_ENCRYPT_TO=age1notakey"), "wal-push", copyOf))
	if res.code != 2 || !strings.Contains(res.stderr, "encrypt-to") || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
		t.Fatalf("wal-push with a malformed recipient: %v", res)
	}
	res = leak.add(walvault(t, append(append([]string{}, r.env...), "WALVAULT_ENCRYPT_TO="+key.secret), "wal-push", copyOf))
	if res.code != 2 {
		t.Fatalf("wal-push with a secret key as recipient: %v", res)
	}
	if after := listKeys(t, r, ""); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("refused pushes changed the repository: %v, then %v", before, after)
	}
	leak.check(t, []string{pg.LogTail(1 << 20)}, strings.TrimPrefix(r.url, "file://"))
}

// encryptedRepo is r with encrypt-to and decrypt-with set to a new key
// (readable by the server's user, as restore_command needs) and debug
// logging, and a check that the key's secret appears in no output.
func encryptedRepo(t *testing.T, r *repo) (*repo, ageKey, *secretLeakCheck) {
	t.Helper()
	key := newAgeKey(t, testenv.UserDir(t), "key.txt")
	testenv.ChownToServerUser(t, key.path)
	enc := &repo{name: r.name, url: r.url, backend: r.backend, tamper: r.tamper,
		env: append(append([]string{}, r.env...), "WALVAULT_ENCRYPT_TO="+key.public, "WALVAULT_DECRYPT_WITH="+key.path, "WALVAULT_LOG_LEVEL=debug")}
	return enc, key, &secretLeakCheck{secrets: []string{key.secret}}
}

// TestEncryptedBackupAndPITR: with encrypt-to, backup-push stores every
// part and backup_manifest encrypted; restore with decrypt-with brings the
// cluster back to a point in time (restore_command decrypting the WAL);
// one flipped ciphertext byte in a part is refused like a checksum
// mismatch, with nothing left at the destination.
func TestEncryptedBackupAndPITR(t *testing.T) {
	r := fileRepo(t)
	// restore_command runs as the server's user: it must read the key.
	enc, key, leak := encryptedRepo(t, r)
	cache := t.TempDir()
	enc.env = append(enc.env, "XDG_CACHE_HOME="+cache)
	pg, _ := archivingServer(t, enc)
	pg.SQL(t, "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 5000) g;"+
		"CREATE TABLE audit_log (id serial PRIMARY KEY, note text, at timestamptz DEFAULT clock_timestamp())")
	id := backupPush(t, enc, pg)
	// PostgreSQL 15 takes no incremental backups: no plain copy of its
	// backup_manifest is kept.
	if entries, err := os.ReadDir(cache); err != nil || len(entries) != 0 {
		t.Errorf("cache directory after a PostgreSQL 15 backup: %d entries (%v), want none", len(entries), err)
	}
	pg.SQL(t, "INSERT INTO audit_log (note) VALUES ('marker')")
	target := pg.SQL(t, utcNow)
	pg.SwitchWAL(t)
	time.Sleep(50 * time.Millisecond)
	pg.SQL(t, "INSERT INTO audit_log (note) VALUES ('after the target'); DROP TABLE users")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, enc, id)

	m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]repository.BackupPart{m.PGManifest}, m.Archives[0].Parts...) {
		body, info := getObject(t, r.backend, p.Key)
		if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) || p.SHA256 != "" || p.Fingerprints == "" || info.Metadata[repository.MetaEncryption] != "age" {
			t.Fatalf("%s: stored %q…, record %+v, metadata %v: want an age file, fingerprints and no sha256", p.Key, body[:16], p, info.Metadata)
		}
	}

	restored := restoreAndStart(t, enc, true, "--target-time", target, "--target-action", "promote")
	if got := restored.SQL(t, "SELECT count(*) FROM users"); got != "5000" {
		t.Errorf("users after restore: %s rows, want 5000", got)
	}
	if got := restored.SQL(t, "SELECT string_agg(note, ',' ORDER BY id) FROM audit_log"); got != "marker" {
		t.Errorf("audit_log after restore: %q, want only the marker", got)
	}
	logs := []string{pg.LogTail(1 << 20), restored.LogTail(1 << 20)}
	restored.Stop(t)

	// Without the identity: refused before anything is restored.
	noKey := append(append([]string{}, r.env...), "WALVAULT_ENCRYPT_TO="+key.public)
	dir := filepath.Join(testenv.UserDir(t), "nokey")
	res := leak.add(walvault(t, noKey, "restore", "--pgdata", dir))
	if res.code == 0 || !strings.Contains(res.stderr, "decrypt-with") {
		t.Fatalf("restore without identity: %v", res)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("a refused restore left %d entries in %s", len(entries), dir)
	}

	// One flipped byte in the middle of the ciphertext of a part.
	part := m.Archives[len(m.Archives)-1].Parts[0]
	body, _ := getObject(t, r.backend, part.Key)
	flipped := bytes.Clone(body)
	flipped[len(flipped)/2] ^= 0x01
	r.tamper(t, part.Key, flipped)
	dir = filepath.Join(testenv.UserDir(t), "tampered")
	res = leak.add(walvault(t, enc.env, "restore", "--pgdata", dir))
	if res.code == 0 || !strings.Contains(res.stderr, part.Key) || !strings.Contains(res.stderr, "corrupt") {
		t.Fatalf("restore of a tampered part: want a corruption failure naming %s, got %v", part.Key, res)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("a failed restore left %d entries in %s", len(entries), dir)
	}
	res = leak.add(walvault(t, enc.env, "verify", "--full"))
	if res.code == 0 || !strings.Contains(res.stdout+res.stderr, part.Key) {
		t.Fatalf("verify --full of a tampered part: %v", res)
	}
	leak.check(t, logs, strings.TrimPrefix(r.url, "file://"))
}

// TestEncryptedKeyRotation: the recipients file archive_command reads
// switches from key A to key B between a backup and the WAL after it, no
// object rewritten. An identity file with only B fails the restore before
// anything is written, naming A and the first object that needs it; one
// with A and B restores across the switch.
func TestEncryptedKeyRotation(t *testing.T) {
	r := fileRepo(t)
	dir := testenv.UserDir(t)
	keyA, keyB := newAgeKey(t, dir, "a.txt"), newAgeKey(t, dir, "b.txt")
	both := filepath.Join(dir, "both.txt")
	if err := os.WriteFile(both, append(readFile(t, keyA.path), readFile(t, keyB.path)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{keyA.path, keyB.path, both} {
		testenv.ChownToServerUser(t, p)
	}
	recipientsFile := filepath.Join(dir, "recipients.txt")
	if err := os.WriteFile(recipientsFile, []byte(keyA.public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	enc := &repo{name: r.name, url: r.url, backend: r.backend, tamper: r.tamper,
		env: append(append([]string{}, r.env...), "WALVAULT_ENCRYPT_TO=@"+recipientsFile)}
	pg, _ := archivingServer(t, enc)
	pg.SQL(t, "CREATE TABLE rotation (id int PRIMARY KEY, note text); INSERT INTO rotation VALUES (1, 'before')")
	id := backupPush(t, enc, pg)
	waitDone(t, enc, id)
	// Rotate: new objects go to B only.
	if err := os.WriteFile(recipientsFile, []byte("# rotated\n"+keyB.public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pg.SQL(t, "INSERT INTO rotation VALUES (2, 'after')")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)

	m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
	if err != nil {
		t.Fatal(err)
	}
	idA := repository.ObjectRecipients(m.PGManifest.Meta())
	// keys: A decrypts the backup and the WAL before the switch, B the WAL after.
	res := walvault(t, r.env, "keys")
	idB := otherID(t, idA[0], res.stdout)
	blocks := map[string]string{}
	for _, block := range strings.Split(res.stdout, "\nage:")[1:] {
		id, rest, _ := strings.Cut(block, "\n")
		blocks["age:"+id] = rest
	}
	if a := blocks[idA[0]]; res.code != 0 || !strings.Contains(a, "backups: 1 ("+id+")") || !strings.Contains(a, "WAL: ") {
		t.Fatalf("keys: %v; want %s with backup %s and a WAL range", res, idA[0], id)
	}
	if bk := blocks[idB]; !strings.Contains(bk, "backups: 0") || !strings.Contains(bk, "WAL: ") {
		t.Fatalf("keys: %v; want %s with no backup and a WAL range", res, idB)
	}
	// The new key was recorded when it came into use.
	if !strings.Contains(res.stdout, "recorded keys (walvault.json and recipients/): "+strings.Join(sortedIDs(idA[0], idB), ", ")+"\n") {
		t.Fatalf("keys: %v; want both %s and %s recorded", res, idA[0], idB)
	}
	// check proves the identity decrypts the newest backup and the WAL since.
	lines, cres := checkJSON(t, append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+both), "--pg-conn", pg.ConnString())
	if d := checkByName(lines)["decryption"]; !d.OK || !strings.Contains(d.Detail, id) {
		t.Fatalf("check with both keys: decryption %+v\n%v", d, cres)
	}
	lines, cres = checkJSON(t, append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+keyA.path), "--pg-conn", pg.ConnString())
	if d := checkByName(lines)["decryption"]; d.OK || !strings.Contains(d.Detail, idB) {
		t.Fatalf("check with only the old key: decryption %+v, want FAILED naming %s\n%v", d, idB, cres)
	}
	// A key the server's user cannot read would fail recovery at its
	// first WAL file: refused before anything is restored.
	rootOnly := filepath.Join(t.TempDir(), "root-only.txt")
	if err := os.WriteFile(rootOnly, readFile(t, both), 0o600); err != nil {
		t.Fatal(err)
	}
	res = walvault(t, append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+rootOnly), "restore", "--pgdata", filepath.Join(dir, "rootonly"))
	if res.code == 0 || !strings.Contains(res.stderr, "cannot read it") {
		t.Fatalf("restore with a key file only root reads: %v; want a refusal naming it", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "rootonly")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore with a key file only root reads created the data directory: %v", err)
	}
	onlyB := append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+keyB.path)
	target := filepath.Join(dir, "onlyB")
	res = walvault(t, onlyB, "restore", "--pgdata", target)
	if res.code == 0 || len(idA) != 1 || !strings.Contains(res.stderr, idA[0]) || !strings.Contains(res.stderr, m.PGManifest.Key) {
		t.Fatalf("restore with only the new key: %v; want a failure naming %v and %s", res, idA, m.PGManifest.Key)
	}
	if entries, _ := os.ReadDir(target); len(entries) > 0 {
		t.Fatalf("a refused restore left %d entries in %s", len(entries), target)
	}

	withBoth := &repo{name: r.name, url: r.url, backend: r.backend,
		env: append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+both)}
	restored := restoreAndStart(t, withBoth, true)
	if got := restored.SQL(t, "SELECT string_agg(note, ',' ORDER BY id) FROM rotation"); got != "before,after" {
		t.Fatalf("rows after a restore across the key switch: %q, want before,after", got)
	}
}

// emergencyDecrypt is the README's emergency path, without walvault: the
// stored object through `age -d -i key | lz4 -d` must give want back.
func emergencyDecrypt(t *testing.T, key ageKey, stored, want []byte) {
	t.Helper()
	for _, tool := range []string{"age", "lz4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: apt-get install %s (scripts/install-deps.sh does)", tool, tool)
		}
	}
	dir := t.TempDir()
	obj := filepath.Join(dir, "object.lz4")
	if err := os.WriteFile(obj, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `age -d -i "$1" "$2" | lz4 -d -c`, "sh", key.path, obj)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("age -d | lz4 -d: %v (%s); %d bytes, want the %d-byte original", err, stderr.String(), len(got), len(want))
	}
}

// otherID is the key id in keys' output that is not known.
func otherID(t *testing.T, known, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "age:") && line != known && !strings.Contains(line, " ") {
			return line
		}
	}
	t.Fatalf("keys lists no second key:\n%s", out)
	return ""
}

// TestEncryptedReceive: wal-receive with encrypt-to beside an encrypting
// archive_command: its partials are age files with fingerprints, the
// segment both store is settled without conflict, every archived file
// and the open segment (from its newest partial) come back with the
// identity.
func TestEncryptedReceive(t *testing.T) {
	r := fileRepo(t)
	key := newAgeKey(t, testenv.UserDir(t), "key.txt")
	leak := &secretLeakCheck{secrets: []string{key.secret}}
	enc := &repo{name: r.name, url: r.url, backend: r.backend,
		env: append(append([]string{}, r.env...), "WALVAULT_ENCRYPT_TO="+key.public)}
	pg, copies := archivingServer(t, enc)
	pg.SQL(t, "CREATE TABLE marks (id serial PRIMARY KEY, note text)")
	rc := startReceiver(t, enc, pg, testenv.UserDir(t), "--create-slot")
	waitStreaming(t, pg, rc)
	pg.SQL(t, "INSERT INTO marks (note) VALUES ('first')")
	switched := pg.SwitchWAL(t)
	pg.WaitArchived(t, switched, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(rc.stderr.String(), switched) {
		if time.Now().After(deadline) {
			t.Fatalf("wal-receive did not store %s:\n%s", switched, rc.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pg.SQL(t, "INSERT INTO marks (note) VALUES ('marker')")
	time.Sleep(1500 * time.Millisecond) // max-lag 300ms plus a margin
	rc.stop(t)
	if strings.Contains(rc.stderr.String(), "conflict") {
		t.Fatalf("wal-receive and wal-push conflicted:\n%s", rc.stderr)
	}
	partials := partialKeys(t, r.backend)
	if len(partials) == 0 {
		t.Fatalf("no partial after a commit:\n%s", rc.stderr)
	}
	body, info := getObject(t, r.backend, partials[len(partials)-1])
	if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) || info.Metadata[repository.MetaSHA256] != "" || info.Metadata[repository.MetaFingerprints] == "" {
		t.Fatalf("%s: stored %q…, metadata %v: want an age file with fingerprints and no sha256", partials[len(partials)-1], body[:16], info.Metadata)
	}

	fetchEnv := append(append([]string{}, r.env...), "WALVAULT_DECRYPT_WITH="+key.path)
	fetchEveryArchivedFileWith(t, fetchEnv, copies, func(res result) { leak.add(res) })
	p, ok := repository.ParsePartialKey(partials[len(partials)-1])
	if !ok {
		t.Fatalf("%s is not a partial key", partials[len(partials)-1])
	}
	open := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: p.Segment}.String()
	dest := filepath.Join(t.TempDir(), open)
	if res := leak.add(walvault(t, fetchEnv, "wal-fetch", open, dest)); res.code != 0 {
		t.Fatalf("wal-fetch of the open segment %s from its partial: %v", open, res)
	}
	raw, _ := strconv.Atoi(info.Metadata[repository.MetaRawSize])
	if got, live := readFile(t, dest), readFile(t, filepath.Join(pg.DataDir, "pg_wal", open)); raw == 0 || !bytes.Equal(got[:raw], live[:raw]) {
		t.Fatalf("%s from its partial: the first %d bytes differ from pg_wal's", open, raw)
	}
	leak.check(t, []string{rc.stderr.String(), pg.LogTail(1 << 20)}, strings.TrimPrefix(r.url, "file://"))
}

// sortedIDs are key ids in the order walvault lists them.
func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// TestEncryptedS3: on s3:// (the Versity gateway), archive_command and
// backup-push with encrypt-to store age files; restore with decrypt-with
// brings the data back (restore_command decrypting the WAL), and a drill
// with the identity passes.
func TestEncryptedS3(t *testing.T) {
	r := s3Repo(t)
	enc, _, leak := encryptedRepo(t, r)
	f := newDrillFixture(t, enc) // 1000 rows in the backup, one after it
	pg, id := f.pg, f.backupID

	m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
	if err != nil {
		t.Fatal(err)
	}
	segs := listKeys(t, r, repository.WALPrefix)
	for _, k := range append([]string{m.Archives[0].Parts[0].Key, m.PGManifest.Key}, segs[0]) {
		body, info := getObject(t, r.backend, k)
		if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) || info.Metadata[repository.MetaEncryption] != "age" {
			t.Fatalf("%s on S3: stored %q…, metadata %v: want an age file", k, body[:16], info.Metadata)
		}
	}

	restored := restoreAndStart(t, enc, true)
	if got := restored.SQL(t, "SELECT count(*) FROM drilltest"); got != "1001" {
		t.Fatalf("rows after restore from S3: %s, want 1001", got)
	}
	logs := []string{pg.LogTail(1 << 20), restored.LogTail(1 << 20)}
	restored.Stop(t)

	res := leak.add(walvault(t, enc.env, "drill", "--scratch-dir", testenv.UserDir(t), "--amcheck", "off", "--check-sql", "SELECT * FROM drilltest WHERE id = 1001"))
	if res.code != 0 || !strings.Contains(res.stdout, "drill OK: backup "+id) {
		t.Fatalf("drill with the identity on S3: %v", res)
	}
	leak.check(t, logs)
}
