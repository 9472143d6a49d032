package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
)

// TestIncrementalRestore restores an incremental chain on PostgreSQL 17
// and 18: a full backup, pgbench changes, an incremental, more changes, a
// second incremental on the first. The chain restored to its end and to a
// point in time after it holds what the source held at that point (row
// counts and an md5 over each pgbench table's rows), passes pg_amcheck
// and the manifest checks, and lacks the files of a table dropped before
// the newest backup, and of a tablespace dropped before it. A table lives
// in a tablespace the source keeps using: restores map it elsewhere, and
// a drill takes the chain (on 17) with the tablespace in its scratch
// directory. A corrupted part in the middle of the chain and a missing
// part of its newest backup are refused with nothing left in the target.
func TestIncrementalRestore(t *testing.T) {
	for _, major := range []int{17, 18} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			start := time.Now()
			testIncrementalRestore(t, major)
			t.Logf("PostgreSQL %d: %v", major, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

func testIncrementalRestore(t *testing.T, major int) {
	r := fileRepo(t)
	primary, _ := archivingServerWith(t, r, testenv.PostgresOptions{Major: major, Conf: map[string]string{"summarize_wal": "on"}})
	primary.Pgbench(t, "-i", "-s", "2", "-q")
	primary.SQL(t, "CREATE TABLE dropped AS SELECT g FROM generate_series(1, 20000) g")
	droppedFile := primary.SQL(t, "SELECT pg_relation_filepath('dropped')")
	// A tablespace the source cluster keeps using at its location: each
	// restore maps it elsewhere, the drill into its scratch directory.
	tsa := filepath.Join(testenv.UserDir(t), "tsa")
	if err := os.Mkdir(tsa, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, tsa)
	primary.SQL(t, "CREATE TABLESPACE tsa LOCATION '"+tsa+"'")
	primary.SQL(t, "CREATE TABLE inspace TABLESPACE tsa AS SELECT g, 'full' AS note FROM generate_series(1, 20000) g")
	inspace := func(pg *testenv.Postgres) string {
		return pg.SQL(t, "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM inspace t")
	}
	// And one dropped between the incrementals: the newest backup lacks
	// it, the older ones hold it.
	tsb := filepath.Join(testenv.UserDir(t), "tsb")
	if err := os.Mkdir(tsb, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, tsb)
	primary.SQL(t, "CREATE TABLESPACE tsb LOCATION '"+tsb+"'")
	primary.SQL(t, "CREATE TABLE intsb TABLESPACE tsb AS SELECT g FROM generate_series(1, 20000) g")
	tsbOID := primary.SQL(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'tsb'")
	mapTSA := func() []string {
		return []string{"--tablespace-mapping", tsa + "=" + filepath.Join(testenv.UserDir(t), "tsa")}
	}

	full := backupPush(t, r, primary, "--part-size", "1MiB")
	waitDone(t, r, full)
	primary.Pgbench(t, "-n", "-t", "300", "-c", "2")
	inc1 := backupPush(t, r, primary, "--incremental", "--part-size", "1MiB")
	waitDone(t, r, inc1)
	primary.Pgbench(t, "-n", "-t", "300", "-c", "2")
	primary.SQL(t, "UPDATE inspace SET note = 'inc2' WHERE g % 100 = 0")
	primary.SQL(t, "DROP TABLE dropped")
	primary.SQL(t, "DROP TABLE intsb")
	primary.SQL(t, "DROP TABLESPACE tsb")
	atInc2 := pgbenchState(t, primary) // nothing writes while inc2 runs
	inspaceAtInc2 := inspace(primary)
	inc2 := backupPush(t, r, primary, "--incremental", "--parent", inc1, "--part-size", "1MiB")
	waitDone(t, r, inc2)
	if m := loadManifest(t, r, inc2); m.Parent != inc1 || m.Type != repository.BackupIncremental {
		t.Fatalf("backup %s: type %q on %q, want incremental on %s", inc2, m.Type, m.Parent, inc1)
	}
	primary.Pgbench(t, "-n", "-t", "200", "-c", "2")
	atTarget := pgbenchState(t, primary)
	target := primary.SQL(t, utcNow)
	primary.SwitchWAL(t)
	time.Sleep(50 * time.Millisecond)
	primary.Pgbench(t, "-n", "-t", "200", "-c", "2") // after the target: not restored
	primary.WaitArchived(t, primary.SwitchWAL(t), 60*time.Second)

	t.Run("chain to its end", func(t *testing.T) {
		dir, res := restoreInto(t, r, append(mapTSA(), "--backup", inc2, "--target-immediate", "--target-action", "promote", "--verify", "both", "--pg-bin", primary.ClientBinDir)...)
		for _, want := range []string{"each backup_manifest of the chain's 3 backups checked by walvault as the files were written", "reconstructed from incremental ones", "backup_manifest checked by walvault"} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("restore of %s: output lacks %q:\n%s", inc2, want, res.stdout)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, droppedFile)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s, the file of a table dropped before backup %s: %v, want it gone", droppedFile, inc2, err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "pg_tblspc", tsbOID)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("pg_tblspc/%s, the link of tablespace tsb dropped before backup %s: %v, want it gone", tsbOID, inc2, err)
		}
		if names := dirNames(t, tsb); len(names) > 0 {
			t.Errorf("the restore wrote %q into %s, the location of tablespace tsb dropped before backup %s", names, tsb, inc2)
		}
		if label := string(readFile(t, filepath.Join(dir, "backup_label"))); strings.Contains(label, "INCREMENTAL FROM") {
			t.Errorf("backup_label still says the backup is incremental:\n%s", label)
		}
		restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: r.env})
		waitPromoted(t, restored)
		checkRestoredChain(t, restored, atInc2)
		if got := inspace(restored); got != inspaceAtInc2 {
			t.Errorf("restored table in tablespace tsa: %s, want %s as on the source", got, inspaceAtInc2)
		}
		restored.Stop(t)
	})

	t.Run("point in time after the chain", func(t *testing.T) {
		dir, res := restoreInto(t, r, append(mapTSA(), "--target-time", target, "--target-action", "promote")...)
		if !strings.Contains(res.stdout, inc2) {
			t.Errorf("restore to %s did not take backup %s, the newest before it:\n%s", target, inc2, res.stdout)
		}
		restored := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dir, Env: r.env})
		waitPromoted(t, restored)
		checkRestoredChain(t, restored, atTarget)
		restored.Stop(t)
	})

	if major == 17 {
		t.Run("drill", func(t *testing.T) {
			// The source cluster runs on this host with tablespace tsa at
			// its location: the drill must restore it into its scratch
			// directory, not refuse (or, elsewhere, write) the original.
			before := dirNames(t, tsa)
			scratch := testenv.UserDir(t)
			res := walvault(t, r.env, "drill", "--scratch-dir", scratch, "--pg-bin", testenv.ServerBinDir(t, major), "--amcheck", "off",
				"--check-sql", "SELECT 1 FROM inspace WHERE note = 'inc2'")
			if res.code != 0 || !strings.Contains(res.stdout, "drill OK: backup "+inc2) {
				t.Fatalf("drill of incremental backup %s: %v", inc2, res)
			}
			assertDrillCleanedUp(t, scratch)
			if after := dirNames(t, tsa); !slices.Equal(after, before) {
				t.Errorf("the drill changed the source's tablespace location %s: %q, was %q", tsa, after, before)
			}
		})
	}

	// Damage is found before anything is written, or removed with what
	// was written.
	refused := func(t *testing.T, want string, mayCreate bool) {
		t.Helper()
		dir := filepath.Join(testenv.UserDir(t), "restored")
		res := walvault(t, r.env, append([]string{"restore", "--pgdata", dir, "--backup", inc2}, mapTSA()...)...)
		if res.code == 0 || !strings.Contains(res.stderr, want) {
			t.Fatalf("restore of %s: want a failure naming %s, got %v", inc2, want, res)
		}
		entries, err := os.ReadDir(dir)
		if !mayCreate && !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a restore refused before writing created %s (%v)", dir, err)
		}
		if len(entries) > 0 {
			t.Fatalf("a failed restore left %d entries in %s", len(entries), dir)
		}
	}
	// base.tar's parts: a tablespace archive of inc1 may be tsb's, which
	// the restore of inc2 does not read.
	baseParts := func(id string) []repository.BackupPart {
		for _, a := range loadManifest(t, r, id).Archives {
			if a.Name == "base.tar" {
				return a.Parts
			}
		}
		t.Fatalf("backup %s has no base.tar", id)
		return nil
	}
	t.Run("corrupted part in the middle of the chain", func(t *testing.T) {
		part := baseParts(inc1)[0]
		body, _ := getObject(t, r.backend, part.Key)
		r.tamper(t, part.Key, corruptDecoded(t, part.Compression, body))
		defer r.tamper(t, part.Key, body)
		refused(t, part.Key, true)
	})
	t.Run("missing part of the newest backup", func(t *testing.T) {
		parts := baseParts(inc2)
		key := parts[len(parts)-1].Key
		if err := r.backend.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		refused(t, key, false)
	})
}

// pgbenchState is, for each pgbench table, its row count and an md5 over
// its rows in a fixed order.
func pgbenchState(t *testing.T, pg *testenv.Postgres) string {
	t.Helper()
	var out []string
	for _, table := range []string{"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"} {
		out = append(out, table+" "+pg.SQL(t, fmt.Sprintf("SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') FROM %s t", table)))
	}
	return strings.Join(out, "; ")
}

// checkRestoredChain checks a cluster restored from an incremental chain
// and promoted: the pgbench tables as the source had them, pg_amcheck
// clean.
func checkRestoredChain(t *testing.T, restored *testenv.Postgres, want string) {
	t.Helper()
	if got := pgbenchState(t, restored); got != want {
		t.Errorf("restored pgbench tables:\n%s\nwant, as on the source:\n%s", got, want)
	}
	stdout, stderr, err := restored.Run(t, "pg_amcheck", "--all", "--install-missing", "--heapallindexed")
	if err != nil {
		t.Errorf("pg_amcheck on the restored cluster: %v\n%s%s", err, stdout, stderr)
	}
}

// dirNames lists the names in dir (not recursively: the files of a
// running server's tablespace come and go).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
