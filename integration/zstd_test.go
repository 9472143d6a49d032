package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// TestZstdSwitchAndPITR: a cluster archives in lz4 (the default) and takes
// a backup, then its compression setting changes to zstd:9 (archive_command
// reads it from a config file) and it archives on, takes a zstd backup and
// is damaged. A restore from the lz4 backup to a point in time replays WAL
// stored in both codecs; the zstd backup restores too; verify --full is
// clean; and `zstd -d`, without walvault, turns a stored zstd segment back
// into the archived file byte for byte.
func TestZstdSwitchAndPITR(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatalf("zstd is not installed: apt-get install zstd (scripts/install-deps.sh does)")
	}
	r := fileRepo(t)
	config := filepath.Join(testenv.UserDir(t), "walvault.yaml")
	setCompression := func(v string) {
		t.Helper()
		if err := os.WriteFile(config, []byte("compression: "+v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setCompression("lz4")
	cr := &repo{name: r.name, url: r.url, backend: r.backend, tamper: r.tamper, env: append(append([]string{}, r.env...), "WALVAULT_CONFIG="+config)}
	pg, copies := archivingServer(t, cr)
	pg.SQL(t, "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 5000) g;"+
		"CREATE TABLE audit_log (id serial PRIMARY KEY, note text, at timestamptz DEFAULT clock_timestamp())")
	lz4Backup := backupPush(t, cr, pg)
	pg.SQL(t, "INSERT INTO users SELECT g, 'lz4 era ' || g FROM generate_series(5001, 6000) g")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)

	setCompression("zstd:9")
	pg.SQL(t, "INSERT INTO users SELECT g, 'zstd era ' || g FROM generate_series(6001, 7000) g")
	pg.SQL(t, "INSERT INTO audit_log (note) VALUES ('marker')")
	target := pg.SQL(t, utcNow)
	pg.SwitchWAL(t)
	time.Sleep(50 * time.Millisecond)
	zstdBackup := backupPush(t, cr, pg)
	pg.SQL(t, "INSERT INTO audit_log (note) VALUES ('after the target'); DROP TABLE users")
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, cr, lz4Backup)
	waitDone(t, cr, zstdBackup)

	// Both codecs are in the repository, each object saying its own.
	var zstdSegment string
	byCodec := map[repository.Compression]int{}
	for _, key := range listKeys(t, r, repository.WALPrefix) {
		f, c, ok := repository.ParseWALKey(key)
		if !ok || f.Kind != wal.KindSegment {
			continue
		}
		byCodec[c]++
		if _, info := getObject(t, r.backend, key); info.Metadata[repository.MetaCompression] != string(c) {
			t.Errorf("%s: metadata compression %q, want %q", key, info.Metadata[repository.MetaCompression], c)
		}
		if c == repository.Zstd && zstdSegment == "" {
			zstdSegment = key
		}
	}
	if byCodec[repository.LZ4] == 0 || byCodec[repository.Zstd] == 0 {
		t.Fatalf("segments per codec: %v, want both lz4 and zstd", byCodec)
	}
	for id, want := range map[string]repository.Compression{lz4Backup: repository.LZ4, zstdBackup: repository.Zstd} {
		m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Archives[0].Parts {
			if p.Compression != want || !strings.HasSuffix(p.Key, want.Ext()) {
				t.Fatalf("backup %s: part %s in %s, want %s", id, p.Key, p.Compression, want)
			}
		}
	}

	// The emergency path: zstd -d alone, on the stored object.
	body, _ := getObject(t, r.backend, zstdSegment)
	f, _, _ := repository.ParseWALKey(zstdSegment)
	obj := filepath.Join(t.TempDir(), f.String()+".zst")
	if err := os.WriteFile(obj, body, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("zstd", "-d", "-c", obj)
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if want := readFile(t, filepath.Join(copies, f.String())); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("zstd -d %s: %v (%s); %d bytes, want the %d-byte archived segment", zstdSegment, err, stderr.String(), len(got), len(want))
	}

	if res := walvault(t, r.env, "verify", "--full"); res.code != 0 {
		t.Fatalf("verify --full of a repository holding both codecs: %v", res)
	}

	// Replay from the lz4 backup crosses from lz4 to zstd segments; the
	// restore_command prefers lz4 (this process's setting) and finds the
	// zstd ones under their own key.
	restored := restoreAndStart(t, r, true, "--backup", lz4Backup, "--target-time", target, "--target-action", "promote")
	if got := restored.SQL(t, "SELECT count(*) FROM users"); got != "7000" {
		t.Errorf("users after restore: %s rows, want 7000 (both eras, the DROP undone)", got)
	}
	if got := restored.SQL(t, "SELECT string_agg(note, ',' ORDER BY id) FROM audit_log"); got != "marker" {
		t.Errorf("audit_log after restore: %q, want only the marker", got)
	}
	restored.Stop(t)

	// The zstd backup restores, checked against its manifest.
	restoreInto(t, r, "--backup", zstdBackup, "--target-immediate")
}
