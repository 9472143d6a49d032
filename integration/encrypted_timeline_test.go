package integration

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
)

// TestEncryptedTimelineSwitch: in an encrypted repository on S3, the
// primary is replaced by a restore of its backup, which promotes to
// timeline 2 and archives into the same repository. Its history file is
// stored encrypted with its switch in the metadata, so verify without the
// identity follows timeline 2 from timeline 1 and finds nothing wrong,
// and info shows the branch.
func TestEncryptedTimelineSwitch(t *testing.T) {
	r := s3Repo(t)
	enc, key, leak := encryptedRepo(t, r)
	pg, _ := archivingServer(t, enc)
	pg.SQL(t, "CREATE TABLE steps (n int); INSERT INTO steps VALUES (1)")
	b1 := backupPush(t, enc, pg)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, enc, b1)
	pg.Stop(t) // the old primary is lost

	pg2 := restoreArchiving(t, enc, "--backup", b1)
	pg2.SQL(t, "INSERT INTO steps VALUES (2)")
	pg2.WaitArchived(t, pg2.SwitchWAL(t), 60*time.Second)
	sysID := pg2.SQL(t, "SELECT system_identifier FROM pg_control_system()")
	logs := []string{pg.LogTail(1 << 20), pg2.LogTail(1 << 20)}
	pg2.Stop(t)

	body, info := getObject(t, r.backend, "wal/00000002.history")
	if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) || !strings.HasPrefix(info.Metadata[repository.MetaHistory], "1:") {
		t.Fatalf("wal/00000002.history: stored %q…, metadata %v: want an age file whose metadata names its switch from timeline 1", body[:16], info.Metadata)
	}
	switchLSN := strings.TrimPrefix(info.Metadata[repository.MetaHistory], "1:")
	// Whose it is, read from the data directory archive_command runs in:
	// another cluster's is refused.
	if got := info.Metadata[repository.MetaSystemID]; got != sysID {
		t.Errorf("wal/00000002.history: system-id metadata %q, want the server's %s", got, sysID)
	}

	noKey := append(append([]string{}, r.env...), "WALVAULT_ENCRYPT_TO="+key.public)
	res := leak.add(walvault(t, noKey, "verify"))
	if res.code != 0 || strings.Contains(res.stdout, "PROBLEM") || strings.Contains(res.stdout, "WARNING") ||
		!strings.Contains(res.stdout, "branched from timeline 1 at "+switchLSN) {
		t.Fatalf("verify without the identity after a switch to timeline 2: %v; want exit 0, no problem or warning, timeline 2 branched from 1 at %s", res, switchLSN)
	}
	res = leak.add(walvault(t, noKey, "info"))
	if res.code != 0 || !strings.Contains(res.stdout, "timeline 2 (from timeline 1 at "+switchLSN+")") {
		t.Fatalf("info without the identity: %v; want timeline 2 from timeline 1 at %s", res, switchLSN)
	}
	leak.check(t, logs)
}
