package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage/file"
)

// incrementalScaleEnv names the pgbench scale of BenchmarkIncremental
// (default incrementalDefaultScale).
const (
	incrementalScaleEnv     = "WALVAULT_BENCH_INCR_SCALE"
	incrementalDefaultScale = 20
)

// incrementalDoneRE finds the id in backup-push's last line, full or
// incremental.
var incrementalDoneRE = regexp.MustCompile(`(?m)^backup (\S+)(?: \(incremental on \S+\))? done: `)

// BenchmarkIncremental measures incremental backups against full ones, on
// one PostgreSQL 17 cluster (summarize_wal on) archiving into a file://
// repository, every ratio against a baseline of the same run:
//
//   - push: a full backup-push; then, three times, about 1% of
//     pgbench_accounts' rows updated (a contiguous range of aid) and an
//     incremental backup-push on the previous backup. incr-push-ratio and
//     incr-size-ratio are the first incremental's time and stored size
//     against the full backup's.
//   - restore: a second full backup of the state the third incremental
//     holds, then walvault restore of that full backup and of the chain
//     (full + 3 incrementals) of the same data: chain-restore-ratio is
//     their times, chain-restore-peak-RSS-MiB the chain restore's peak RSS.
//
// Each iteration does all of it (run it with -benchtime 1x). The scale is
// WALVAULT_BENCH_INCR_SCALE.
func BenchmarkIncremental(b *testing.B) {
	scale := incrementalDefaultScale
	if s := os.Getenv(incrementalScaleEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a pgbench scale, a whole number of at least 1", incrementalScaleEnv, s)
		}
		scale = n
	}
	e := &backupEnv{bin: testenv.BuildWalvault(b), maxrss: buildMaxRSS(b), scale: scale, out: testenv.UserDir(b)}
	if err := os.Chmod(e.out, 0o755); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(testenv.UserDir(b), "repo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	testenv.ChownToServerUser(b, dir)
	fb, err := file.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	r := &backupRepo{name: "file", url: "file://" + dir, env: []string{"WALVAULT_REPO=file://" + dir}}
	e.pg = testenv.StartPostgres(b, testenv.PostgresOptions{
		Major:          17,
		ArchiveCommand: "/bin/true", // the load needs no WAL archived
		Conf: map[string]string{
			"summarize_wal":      "on",
			"autovacuum":         "off",
			"max_wal_size":       "4GB",
			"checkpoint_timeout": "1h",
		},
	})
	start := time.Now()
	e.pg.Pgbench(b, "-i", "-s", strconv.Itoa(scale), "-q")
	e.pg.SQL(b, "CHECKPOINT")
	archiveCommand := fmt.Sprintf("%s wal-push --repo %s %%p", e.bin, r.url)
	e.pg.SQL(b, "ALTER SYSTEM SET archive_command = '"+strings.ReplaceAll(archiveCommand, "'", "''")+"'; SELECT pg_reload_conf()")
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if e.pg.SQL(b, "SHOW archive_command") == archiveCommand {
			e.pg.WaitArchived(b, e.pg.SwitchWAL(b), 2*time.Minute)
			if _, err := os.Stat(filepath.Join(dir, repository.IdentityKey)); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("WAL did not reach %s within 2 minutes:\n%s", r.url, e.pg.LogTail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	size, err := strconv.ParseInt(e.pg.SQL(b, "SELECT sum(pg_database_size(oid)) FROM pg_database"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("pgbench scale %d: %.0f MiB, ready in %v", scale, float64(size)/(1<<20), time.Since(start).Round(time.Second))
	rows := int64(scale) * 100000

	// run times cmd (after the archiver went idle) and returns its time,
	// peak RSS and output.
	run := func(args ...string) (time.Duration, usage, string) {
		e.quiesce(b)
		t0 := time.Now()
		u, out, err := e.measure(e.walvaultCmd(r, args...))
		d := time.Since(t0)
		if err != nil {
			b.Fatalf("walvault %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return d, u, out
	}
	push := func(args ...string) (string, time.Duration, int64) {
		d, _, out := run(append([]string{"backup-push", "--pg-conn", e.pg.ConnString()}, args...)...)
		m := incrementalDoneRE.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("backup-push did not say which backup it made:\n%s", out)
		}
		bm, err := repository.LoadBackupManifest(context.Background(), fb, m[1])
		if err != nil {
			b.Fatal(err)
		}
		return m[1], d, bm.Stored
	}
	restore := func(id string) (time.Duration, usage) {
		target := filepath.Join(e.newDir(b, "restored-"), "pgdata")
		d, u, out := run("restore", "--pgdata", target, "--backup", id, "--target-immediate")
		if !strings.Contains(out, "restored backup "+id) {
			b.Fatalf("restore of %s did not say it restored it:\n%s", id, out)
		}
		if err := checkRestored(target, func(dir string) error { return os.RemoveAll(filepath.Dir(dir)) }); err != nil {
			b.Fatal(err)
		}
		return d, u
	}

	b.ResetTimer()
	var pushRatio, sizeRatio, restoreRatio, peak float64
	for i := range b.N {
		b.StopTimer()
		full, fullTime, fullSize := push()
		b.Logf("full backup %s: %v, %.1f MiB stored", full, fullTime.Round(time.Millisecond), float64(fullSize)/(1<<20))
		parent := full
		for k := range 3 {
			from := (int64(i*3+k)*rows/100)%rows + 1
			e.pg.SQL(b, fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN %d AND %d", from, from+rows/100-1))
			id, d, n := push("--incremental", "--parent", parent)
			b.Logf("incremental backup %s on %s: %v, %.1f MiB stored", id, parent, d.Round(time.Millisecond), float64(n)/(1<<20))
			if k == 0 {
				pushRatio += d.Seconds() / fullTime.Seconds()
				sizeRatio += float64(n) / float64(fullSize)
			}
			parent = id
		}
		// A full backup of the data the chain holds. Some WAL first: right
		// after a backup, backup-push's WAL switch has been seen to wait
		// for a segment that never completes.
		e.pg.SQL(b, "SELECT pg_logical_emit_message(false, 'walvault-bench', 'same data')")
		same, _, _ := push()
		// A first restore of a run pays for the page cache's first fill of
		// this much written data (see "restore at 40 ms" in the README):
		// one unmeasured restore first, so both measured ones start alike.
		restore(same)
		fullRestore, _ := restore(same)
		chainRestore, u := restore(parent)
		b.Logf("restore of full backup %s: %v; of the chain ending in %s: %v, peak RSS %.0f MiB",
			same, fullRestore.Round(time.Millisecond), parent, chainRestore.Round(time.Millisecond), float64(u.rss)/1024)
		restoreRatio += chainRestore.Seconds() / fullRestore.Seconds()
		peak = max(peak, float64(u.rss)/1024)
	}
	n := float64(b.N)
	b.ReportMetric(pushRatio/n, "incr-push-ratio")
	b.ReportMetric(sizeRatio/n, "incr-size-ratio")
	b.ReportMetric(restoreRatio/n, "chain-restore-ratio")
	b.ReportMetric(peak, "chain-restore-peak-RSS-MiB")
}
