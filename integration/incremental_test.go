package integration

import (
	"archive/tar"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
)

// TestIncrementalBackup takes, on PostgreSQL 17 with summarize_wal on, a
// full backup, an incremental on it after pgbench changes, and a second
// incremental on the first; each incremental records its parent, stores
// PostgreSQL's backup_manifest and INCREMENTAL.* files, and is far smaller
// than the full one. summarize_wal off, and PostgreSQL 15, are refused
// with a line saying what to change; with --fallback-full, 15 takes a full
// backup instead.
func TestIncrementalBackup(t *testing.T) {
	r := fileRepo(t)
	primary, _ := archivingServerWith(t, r, testenv.PostgresOptions{Major: 17, Conf: map[string]string{"summarize_wal": "on"}})
	primary.Pgbench(t, "-i", "-s", "4", "-q")

	full := backupPush(t, r, primary)
	waitDone(t, r, full)
	primary.SQL(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 4000")
	inc1 := backupPush(t, r, primary, "--incremental")
	waitDone(t, r, inc1)
	primary.SQL(t, "UPDATE pgbench_accounts SET abalance = abalance + 2 WHERE aid BETWEEN 100000 AND 104000; CREATE TABLE later AS SELECT 1 AS x")
	inc2 := backupPush(t, r, primary, "--incremental", "--parent", inc1)
	waitDone(t, r, inc2)

	fullM := loadManifest(t, r, full)
	if fullM.Type != repository.BackupFull || fullM.Parent != "" {
		t.Fatalf("full backup %s records type %q parent %q, want full without parent", full, fullM.Type, fullM.Parent)
	}
	for _, c := range []struct{ id, parent string }{{inc1, full}, {inc2, inc1}} {
		m := loadManifest(t, r, c.id)
		if m.Type != repository.BackupIncremental || m.Parent != c.parent {
			t.Fatalf("backup %s records type %q parent %q, want incremental on %s", c.id, m.Type, m.Parent, c.parent)
		}
		if m.PGManifest.Key == "" {
			t.Fatalf("incremental backup %s has no backup_manifest", c.id)
		}
		getObject(t, r.backend, m.PGManifest.Key)
		names := storedTarNames(t, r, m, "base.tar")
		incremental := 0
		for _, n := range names {
			if _, ok := restore.IncrementalTarget(n); ok {
				incremental++
			}
		}
		if incremental == 0 {
			t.Fatalf("incremental backup %s holds no INCREMENTAL.* file among %d files", c.id, len(names))
		}
		if m.RawBytes*4 > fullM.RawBytes {
			t.Fatalf("incremental backup %s has %d raw bytes, the full one %d: want far less", c.id, m.RawBytes, fullM.RawBytes)
		}
	}

	// The chain is kept whole: a dry run of REDUNDANCY 1 keeps the full
	// backup and the first incremental for the second, and the full
	// backup cannot be deleted on its own.
	res := walvault(t, r.env, "delete", "--retain", "REDUNDANCY 1")
	if res.code != 0 || strings.Count(res.stdout, "ancestor of incremental backup "+inc2) != 2 {
		t.Fatalf("delete --retain 'REDUNDANCY 1' (dry run): want the full backup and the first incremental kept as ancestors of %s, got %v", inc2, res)
	}
	res = walvault(t, r.env, "delete", "--backup", full, "--confirm")
	if res.code == 0 || !strings.Contains(res.stderr, inc1+", "+inc2) {
		t.Fatalf("delete --backup %s: want a refusal naming %s and %s, got %v", full, inc1, inc2, res)
	}

	// summarize_wal off: refused before any checkpoint, saying what to set.
	primary.SQL(t, "ALTER SYSTEM SET summarize_wal = off; SELECT pg_reload_conf()")
	waitSetting(t, primary, "summarize_wal", "off")
	primary.WaitArchived(t, primary.SwitchWAL(t), 60*time.Second)
	res = walvault(t, r.env, "backup-push", "--pg-conn", primary.ConnString(), "--incremental")
	if res.code == 0 || !strings.Contains(res.stderr, "summarize_wal = on") {
		t.Fatalf("backup-push --incremental with summarize_wal off: want a refusal saying to set summarize_wal = on, got %v", res)
	}

	t.Run("PostgreSQL 15", func(t *testing.T) {
		r := fileRepo(t)
		old, _ := archivingServerWith(t, r, testenv.PostgresOptions{Major: 15})
		old.WaitArchived(t, old.SwitchWAL(t), 60*time.Second)
		res := walvault(t, r.env, "backup-push", "--pg-conn", old.ConnString(), "--incremental")
		if res.code == 0 || !strings.Contains(res.stderr, "needs PostgreSQL 17 or later") {
			t.Fatalf("backup-push --incremental on PostgreSQL 15: want a refusal saying it needs 17, got %v", res)
		}
		// Asked for, a full backup instead, saying why.
		res = walvault(t, r.env, "backup-push", "--pg-conn", old.ConnString(), "--incremental", "--fallback-full")
		if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "taking a full backup instead") || !strings.Contains(res.stdout+res.stderr, "needs PostgreSQL 17 or later") {
			t.Fatalf("backup-push --incremental --fallback-full on PostgreSQL 15: want a full backup and the reason, got %v", res)
		}
		backups, err := repository.ListBackups(t.Context(), r.backend)
		if err != nil || len(backups) != 1 || backups[0].Manifest == nil || backups[0].Manifest.IsIncremental() {
			t.Fatalf("after --fallback-full on PostgreSQL 15: backups %+v, %v; want one full backup", backups, err)
		}
	})
}

func loadManifest(t *testing.T, r *repo, id string) repository.BackupManifest {
	t.Helper()
	m, err := repository.LoadBackupManifest(t.Context(), r.backend, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// storedTarNames lists the entries of one stored archive of a backup.
func storedTarNames(t *testing.T, r *repo, m repository.BackupManifest, archive string) []string {
	t.Helper()
	var readers []io.Reader
	for _, a := range m.Archives {
		if a.Name != archive {
			continue
		}
		for _, p := range a.Parts {
			body, _ := getObject(t, r.backend, p.Key)
			dec, err := p.Compression.NewReader(strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			readers = append(readers, dec)
		}
	}
	if len(readers) == 0 {
		t.Fatalf("backup %s has no archive %s", m.ID, archive)
	}
	tr := tar.NewReader(io.MultiReader(readers...))
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("backup %s, %s: %v", m.ID, archive, err)
		}
		names = append(names, h.Name)
		if _, ok := restore.IncrementalTarget(h.Name); ok {
			// walvault reads PostgreSQL's INCREMENTAL format as the
			// server wrote it: the header accounts for every byte.
			ih, err := restore.ReadIncrementalHeader(tr, 8192)
			if err != nil || ih.FileSize() != h.Size {
				t.Fatalf("backup %s, %s: header %+v, %v; the file has %d bytes", m.ID, h.Name, ih, err, h.Size)
			}
		}
	}
}

// waitSetting waits until a reloaded setting shows its new value.
func waitSetting(t *testing.T, pg *testenv.Postgres, name, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pg.SQL(t, "SHOW "+name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s is not %s 10s after the reload", name, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
