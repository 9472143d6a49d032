package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/wal"
)

// BenchmarkKeepUp is the archive keep-up test: PostgreSQL 15 with
// archive_command = 'walvault wal-push %p' (defaults: upload-concurrency 8)
// into a loopback Versity S3 gateway, pgbench at full speed for
// WALVAULT_KEEPUP_SECONDS (default 120), and every 100 ms a sample of the
// .ready files waiting in pg_wal/archive_status and of the archive lag. It
// reports the largest of each: max-ready (target: never more than 2),
// max-lag-segs (completed segments not yet archived: the segment being
// written minus pg_stat_archiver's last_archived_wal, minus one) and
// max-lag-s (how long the oldest .ready file had been waiting), plus the
// WAL rate and pgbench's tps. Two loads, each on a server of its own:
// load=pgbench is the TPC-B-like run above on a scale-10 database;
// load=pgbench-init is pgbench -i -s WALVAULT_KEEPUP_INIT_SCALE (default
// 50), a bulk load (COPY, index builds, VACUUM), which writes WAL many times
// faster: the busiest primary this machine can make.
//
// It takes minutes and a server of its own, so it runs only when
// WALVAULT_KEEPUP=1 (BENCH=KeepUp ./scripts/bench.sh sets it), one
// operation per run: -benchtime 1x.
func BenchmarkKeepUp(b *testing.B) {
	if os.Getenv("WALVAULT_KEEPUP") != "1" {
		b.Skip("the keep-up test runs only with WALVAULT_KEEPUP=1 (BENCH=KeepUp ./scripts/bench.sh)")
	}
	seconds := 120
	if v := os.Getenv("WALVAULT_KEEPUP_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("WALVAULT_KEEPUP_SECONDS=%q: want a whole number of seconds", v)
		}
		seconds = n
	}
	bin := testenv.BuildWalvault(b)
	scale := 50
	if v := os.Getenv("WALVAULT_KEEPUP_INIT_SCALE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("WALVAULT_KEEPUP_INIT_SCALE=%q: want a whole number", v)
		}
		scale = n
	}
	b.Run("load=pgbench", func(b *testing.B) {
		keepUp(b, bin, []string{"-i", "-s", "10", "-q"}, []string{"-n", "-c", "4", "-j", "2", "-T", strconv.Itoa(seconds)})
	})
	b.Run("load=pgbench-init", func(b *testing.B) {
		keepUp(b, bin, nil, []string{"-i", "-s", strconv.Itoa(scale), "-q"})
	})
}

// keepUp runs one keep-up measurement on a server of its own: pgbench
// prepare (archived by /bin/true), then pgbench load under archive_command
// = walvault, sampled every 100 ms.
func keepUp(b *testing.B, bin string, prepare, load []string) {
	gw := testenv.StartVersity(b)
	const bucket = "walvault-keepup"
	gw.CreateBucket(b, bucket, false)
	var awsEnv []string
	for _, kv := range gw.Env() {
		if strings.HasPrefix(kv, "AWS_") {
			awsEnv = append(awsEnv, kv)
		}
	}
	archiveCommand := fmt.Sprintf("%s wal-push --repo s3://%s/db1 --s3-endpoint %s --s3-region %s --s3-path-style --s3-allow-http %%p",
		bin, bucket, gw.Endpoint, gw.Region)
	pg := testenv.StartPostgres(b, testenv.PostgresOptions{
		// pgbench -i archives nothing; walvault takes over for the load.
		ArchiveCommand: "/bin/true",
		Env:            awsEnv,
	})
	if prepare != nil {
		pg.Pgbench(b, prepare...)
	}
	pg.SQL(b, "ALTER SYSTEM SET archive_command = '"+strings.ReplaceAll(archiveCommand, "'", "''")+"'; SELECT pg_reload_conf()")
	for pg.SQL(b, "SHOW archive_command") != archiveCommand {
		time.Sleep(50 * time.Millisecond)
	}
	seg := pg.SwitchWAL(b)
	pg.WaitArchived(b, seg, 2*time.Minute)
	// A checkpoint now, as on a server that checkpoints every few minutes:
	// the load starts with full-page images, the most WAL per transaction.
	pg.SQL(b, "CHECKPOINT")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.ConnString())
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	segSize := uint32(pg.WalSegSize)
	segIndex := func(name string) (int64, bool) {
		s, err := wal.ParseSegmentName(name)
		if err != nil {
			return 0, false
		}
		lsn, err := s.StartLSN(segSize)
		if err != nil {
			return 0, false
		}
		return int64(lsn) / int64(segSize), true
	}
	var startLSN, endLSN string
	var failed0 int64
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text, (SELECT failed_count FROM pg_stat_archiver)").Scan(&startLSN, &failed0); err != nil {
		b.Fatal(err)
	}

	status := filepath.Join(pg.DataDir, "pg_wal", "archive_status")
	var (
		mu                         sync.Mutex
		samples, maxReady, maxSegs int
		maxLag                     time.Duration
		readyHist                  = map[int]int{}
		sampleErr                  error
	)
	sample := func(now time.Time) {
		entries, err := os.ReadDir(status)
		if err != nil {
			sampleErr = err
			return
		}
		ready := 0
		var oldest time.Time
		for _, en := range entries {
			if !strings.HasSuffix(en.Name(), ".ready") {
				continue
			}
			ready++
			if fi, err := en.Info(); err == nil && (oldest.IsZero() || fi.ModTime().Before(oldest)) {
				oldest = fi.ModTime()
			}
		}
		var cur, last string
		if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_lsn()), coalesce(last_archived_wal, '') FROM pg_stat_archiver").Scan(&cur, &last); err != nil {
			if ctx.Err() == nil {
				sampleErr = err
			}
			return
		}
		lagSegs := 0
		if c, ok1 := segIndex(cur); ok1 {
			if l, ok2 := segIndex(last); ok2 && c-l-1 > 0 {
				lagSegs = int(c - l - 1)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		samples++
		readyHist[ready]++
		maxReady = max(maxReady, ready)
		maxSegs = max(maxSegs, lagSegs)
		if !oldest.IsZero() {
			maxLag = max(maxLag, now.Sub(oldest))
		}
	}

	b.ResetTimer()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				sample(now)
			}
		}
	}()
	out := pg.Pgbench(b, load...)
	elapsed := time.Since(start)
	cancel()
	<-done
	b.StopTimer()
	if sampleErr != nil {
		b.Fatalf("sampling: %v", sampleErr)
	}

	pg.SQL(b, "SELECT 1") // the server is still up
	endLSN = pg.SQL(b, "SELECT pg_current_wal_lsn()::text")
	walBytes := pg.SQL(b, "SELECT pg_wal_lsn_diff('"+endLSN+"', '"+startLSN+"')::bigint")
	failed := pg.SQL(b, "SELECT failed_count FROM pg_stat_archiver")
	nb, _ := strconv.ParseFloat(walBytes, 64)
	nf, _ := strconv.ParseInt(failed, 10, 64)
	tps := 0.0
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "tps = "); ok {
			fmt.Sscan(v, &tps)
		}
	}
	b.ReportMetric(float64(maxReady), "max-ready")
	b.ReportMetric(float64(maxSegs), "max-lag-segs")
	b.ReportMetric(maxLag.Seconds(), "max-lag-s")
	b.ReportMetric(nb/float64(segSize)/elapsed.Seconds(), "wal-segs/s")
	if tps > 0 {
		b.ReportMetric(tps, "tps")
	}
	b.ReportMetric(float64(nf-failed0), "archive-failures")
	b.Logf("pgbench %s, %.0f s: %.0f MiB of WAL (%.1f segments/s), %.0f tps; %d samples; .ready files seen (count: samples) %v; largest lag %d segments, %.1f s; archive failures %d",
		strings.Join(load, " "), elapsed.Seconds(), nb/(1<<20), nb/float64(segSize)/elapsed.Seconds(), tps, samples, readyHist, maxSegs, maxLag.Seconds(), nf-failed0)
}
