package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// receiveSecondsEnv sets how long BenchmarkReceive's pgbench load runs
// before the crash.
const receiveSecondsEnv = "WALVAULT_RECEIVE_SECONDS"

// receiveTick is how often the ticker commits a marker row.
const receiveTick = 50 * time.Millisecond

// BenchmarkReceive measures wal-receive's RPO and cost. One PostgreSQL 15
// server (archiving to walvault only for the base backup) streams WAL to
// two receivers at once, each on its own physical slot:
//
//	walvault wal-receive --max-lag 1s into s3:// on a loopback Versity gateway (plain http)
//	pg_receivewal -D DIR -n (PostgreSQL 15's, to a local directory; not --synchronous,
//	                         its default: it fsyncs at the end of each segment)
//
// while pgbench -n -c 2 -j 2 runs on a scale-10 database for
// WALVAULT_RECEIVE_SECONDS (default 30) and a ticker commits a row holding
// clock_timestamp() every 50 ms. Then the host "crashes": wal-receive is
// killed with SIGKILL (no final flush can help it) and, at once, the
// primary is stopped in immediate mode (no shutdown checkpoint, no more
// WAL). The repository is restored with no target (latest) into a new
// directory and started; the newest ticker row there gives
//
//	rpo-s   crash time (the SIGKILL) - newest restored row's clock_timestamp()
//
// Alongside, from wal-receive's own log (each "partial stored" / "segment
// stored" line stamped when this process reads it, just after the upload
// returned) and the LSN each ticker commit left the WAL at:
//
//	rpo-max-s   the largest RPO a crash at any moment of the load would have
//	            had (just before each upload landed), conservative by up to
//	            one tick (50 ms)
//	rpo-mean-s  the RPO averaged over the load's time
//
// Cost, over the load (pgbench start to the crash), of both receivers
// measured in the same run on the same WAL: walvault-cpu-s and
// pg_receivewal-cpu-s (user+system, /proc/PID/stat), cpu-ratio (walvault
// ÷ pg_receivewal), walvault-rss-MiB and pg_receivewal-rss-MiB (VmHWM:
// the process's peak resident set over its whole life), gateway-cpu-s (the
// S3 gateway storing wal-receive's uploads: on a real deployment that work
// is elsewhere), wal-MiB/s and tps (commits/s, the ticker's included).
// The machine's load: host-busy-% (all CPUs, /proc/stat) and
// other-cpu-% (processes that are not this benchmark's: other people's
// work on a shared machine), both in percent of all CPUs.
//
// wal-receive being killed is the worst case: it runs on the database host
// (as archive_command does) and goes down with it, so only what it had
// uploaded before the crash counts. A receiver that survives the primary
// (another host; or SIGTERM) uploads what it received in a final flush and
// loses nothing the server had sent.
//
// Targets (from the issue): rpo-s at most 1 s at --max-lag 1s; walvault
// peak RSS under 50 MiB. One operation per run, about a minute and a half
// with the setup (restore and replay included): -benchtime 1x, and -count
// for more crashes.
func BenchmarkReceive(b *testing.B) {
	if b.N > 1 {
		b.Fatalf("BenchmarkReceive is one crash per run: use -benchtime 1x (and -count N for N crashes), not b.N = %d", b.N)
	}
	seconds := 30
	if v := os.Getenv(receiveSecondsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 {
			b.Fatalf("%s=%q: want a whole number of seconds, at least 5", receiveSecondsEnv, v)
		}
		seconds = n
	}
	bin := testenv.BuildWalvault(b)
	pgBin := testenv.PGBinDir(b)
	for _, prog := range []string{"pg_receivewal", "pgbench"} {
		if _, err := os.Stat(filepath.Join(pgBin, prog)); err != nil {
			b.Fatalf("%s of PostgreSQL 15 is missing from %s (%v): install it (Debian/Ubuntu: apt-get install -y postgresql-15, or ./scripts/install-deps.sh) or set WALVAULT_PG_BIN", prog, pgBin, err)
		}
	}

	// The repository: s3:// on a loopback gateway, as the WAL benchmarks.
	gw := testenv.StartVersity(b)
	const bucket, prefix = "walvault-receive", "db1"
	gw.CreateBucket(b, bucket, false)
	repoURL := "s3://" + bucket + "/" + prefix
	repoEnv := append(gw.Env(), "WALVAULT_REPO="+repoURL)
	var awsEnv []string
	for _, kv := range gw.Env() {
		if strings.HasPrefix(kv, "AWS_") {
			awsEnv = append(awsEnv, kv)
		}
	}

	// The primary. Loading archives nothing; walvault's archive_command is
	// on only around the base backup (backup-push wants WAL archiving to
	// this repository); during the load wal-receive is the only way WAL
	// reaches the repository.
	pg := testenv.StartPostgres(b, testenv.PostgresOptions{ArchiveCommand: "/bin/true", Env: awsEnv})
	pg.Pgbench(b, "-i", "-s", "10", "-q")
	pg.SQL(b, "CREATE TABLE receive_marks (id bigserial PRIMARY KEY, ts timestamptz NOT NULL)")
	archiveCommand := fmt.Sprintf("%s wal-push --repo %s --s3-endpoint %s --s3-region %s --s3-path-style --s3-allow-http %%p",
		bin, repoURL, gw.Endpoint, gw.Region)
	setArchiveCommand(b, pg, archiveCommand)
	pg.WaitArchived(b, pg.SwitchWAL(b), 2*time.Minute)
	// The slot reserves WAL from the last checkpoint's redo position: a
	// checkpoint now keeps wal-receive from streaming the load's WAL.
	pg.SQL(b, "CHECKPOINT")

	// wal-receive first, so its slot holds every WAL byte from before the
	// backup on.
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	rc := startWalReceive(b, bin, uint32(pg.WalSegSize), repoEnv, "--slot", "walvault", "--create-slot", "--max-lag", "1s",
		"--pg-conn", pg.ConnString(), "--spool-dir", testenv.UserDir(b), "--metrics", metricsAddr,
		"--log-level", "debug", "--log-format", "json")
	waitSlotActive(b, pg, "walvault", rc.exited, rc.output)

	backup := exec.Command(bin, "backup-push", "--pg-conn", pg.ConnString())
	backup.Dir, backup.Env = "/", cleanEnv(repoEnv...)
	out, err := backup.CombinedOutput()
	m := backupDoneRE.FindSubmatch(out)
	if err != nil || m == nil {
		b.Fatalf("backup-push: %v\n%s", err, out)
	}
	b.Logf("base backup %s", m[1])
	setArchiveCommand(b, pg, "/bin/true")

	// pg_receivewal on a slot of its own, as the server user.
	pg.SQL(b, "SELECT pg_create_physical_replication_slot('pg_receivewal', true)")
	pgrwDir := testenv.UserDir(b)
	pgrw := pg.Command(b, "pg_receivewal", "-D", pgrwDir, "-S", "pg_receivewal", "-n", "-w", "-d", pg.ConnString())
	pgrwOut := &testenv.SyncBuffer{}
	pgrw.Stdout, pgrw.Stderr = pgrwOut, pgrwOut
	if err := pgrw.Start(); err != nil {
		b.Fatalf("start pg_receivewal: %v", err)
	}
	pgrwDone := make(chan struct{})
	go func() { pgrw.Wait(); close(pgrwDone) }()
	b.Cleanup(func() {
		select {
		case <-pgrwDone:
		default:
			pgrw.Process.Kill()
			<-pgrwDone
		}
	})
	waitSlotActive(b, pg, "pg_receivewal", pgrwDone, pgrwOut.String)

	// A checkpoint now, as on a server that checkpoints every few
	// minutes: the load starts with full-page images.
	pg.SQL(b, "CHECKPOINT")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mon, err := pgx.Connect(ctx, pg.ConnString())
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	defer mon.Close(context.Background())
	tk := startTicker(b, ctx, pg.ConnString())
	time.Sleep(2 * time.Second) // markers made durable before the load starts

	pgbench := pg.Command(b, "pgbench", "-n", "-c", "2", "-j", "2", "-T", strconv.Itoa(seconds+300))
	pgbenchOut := &testenv.SyncBuffer{}
	pgbench.Stdout, pgbench.Stderr = pgbenchOut, pgbenchOut
	startLSN, startCommits := walAndCommits(b, mon)
	scrape0 := scrapeMetrics(b, metricsAddr)
	procs0 := readProcs()
	busy0 := hostBusy()
	loadStart := time.Now()
	b.ResetTimer()
	if err := pgbench.Start(); err != nil {
		b.Fatalf("start pgbench: %v", err)
	}
	pgbenchDone := make(chan error, 1)
	go func() { pgbenchDone <- pgbench.Wait() }()
	select {
	case err := <-pgbenchDone:
		b.Fatalf("pgbench exited early: %v\n%s", err, pgbenchOut)
	case <-time.After(time.Duration(seconds) * time.Second):
	}

	// The end of the load: measure, then crash.
	endLSN, endCommits := walAndCommits(b, mon)
	scrape1 := scrapeMetrics(b, metricsAddr)
	postmaster := postmasterPID(b, pg)
	procs1 := readProcs()
	busy1 := hostBusy()
	wvHWM, pgrwHWM := vmHWM(rc.cmd.Process.Pid), vmHWM(pgrw.Process.Pid)
	tk.expectEnd()
	crash := time.Now()
	rc.cmd.Process.Signal(syscall.SIGKILL)
	b.StopTimer()
	pg.StopImmediate(b)
	window := crash.Sub(loadStart)
	<-rc.exited
	tk.stop()
	select {
	case <-pgbenchDone:
	case <-time.After(30 * time.Second):
		pgbench.Process.Kill()
		<-pgbenchDone
	}
	select {
	case <-pgrwDone:
	case <-time.After(30 * time.Second):
		pgrw.Process.Kill()
		<-pgrwDone
	}
	if tk.err != nil {
		b.Fatalf("ticker: %v", tk.err)
	}

	// Restore the latest state and find the newest marker.
	restored := filepath.Join(testenv.UserDir(b), "restored")
	restore := exec.Command(bin, "restore", "--pgdata", restored)
	restore.Dir, restore.Env = "/", cleanEnv(repoEnv...)
	restoreStart := time.Now()
	if out, err := restore.CombinedOutput(); err != nil {
		b.Fatalf("walvault restore (latest): %v\n%s", err, out)
	}
	rpg := testenv.StartPostgres(b, testenv.PostgresOptions{DataDir: restored, Env: repoEnv})
	deadline := time.Now().Add(5 * time.Minute)
	for rpg.SQL(b, "SELECT pg_is_in_recovery()") != "f" {
		if time.Now().After(deadline) {
			b.Fatalf("restored server still in recovery after 5 minutes:\n%s", rpg.LogTail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	restoreTime := time.Since(restoreStart)
	row := strings.Split(rpg.SQL(b, "SELECT count(*), coalesce(extract(epoch FROM max(ts))::text, '') FROM receive_marks"), "|")
	if len(row) != 2 || row[1] == "" {
		b.Fatalf("no marker row after the restore: %q", row)
	}
	lastRestored, err := strconv.ParseFloat(row[1], 64)
	if err != nil {
		b.Fatalf("max(ts) %q: %v", row[1], err)
	}
	rpo := float64(crash.UnixMicro())/1e6 - lastRestored
	if rpo < 0 || lastRestored < float64(loadStart.UnixMicro())/1e6 {
		b.Fatalf("newest restored marker at %.6f, load from %s to the crash at %s: not a plausible RPO (%.3f s)",
			lastRestored, loadStart.Format(time.RFC3339Nano), crash.Format(time.RFC3339Nano), rpo)
	}

	// The RPO a crash at any moment of the load would have had.
	events := rc.durable()
	if len(events) == 0 {
		b.Fatalf("no \"partial stored\" or \"segment stored\" line in wal-receive's log (has its log changed?):\n%s", rc.output())
	}
	markers := tk.list()
	exp := exposure(events, markers, loadStart, crash)

	// CPU and memory.
	wvCPU := procCPU(procs0, procs1, rc.cmd.Process.Pid)
	pgrwCPU := procCPU(procs0, procs1, pgrw.Process.Pid)
	gwPID := findVersity(procs1, gw.Endpoint)
	gwCPU := procCPU(procs0, procs1, gwPID)
	ours := 0.0
	for pid := range descendants(procs1, os.Getpid(), postmaster) {
		ours += procCPU(procs0, procs1, pid)
	}
	host := (busy1 - busy0).Seconds()
	capacity := window.Seconds() * float64(numCPU())
	walBytes := float64(endLSN - startLSN)
	tps := float64(endCommits-startCommits) / window.Seconds()

	b.ReportMetric(rpo, "rpo-s")
	b.ReportMetric(exp.max, "rpo-max-s")
	b.ReportMetric(exp.mean, "rpo-mean-s")
	b.ReportMetric(wvCPU, "walvault-cpu-s")
	b.ReportMetric(pgrwCPU, "pg_receivewal-cpu-s")
	if pgrwCPU > 0 {
		b.ReportMetric(wvCPU/pgrwCPU, "cpu-ratio")
	}
	b.ReportMetric(float64(wvHWM)/1024, "walvault-rss-MiB")
	b.ReportMetric(float64(pgrwHWM)/1024, "pg_receivewal-rss-MiB")
	b.ReportMetric(gwCPU, "gateway-cpu-s")
	b.ReportMetric(walBytes/(1<<20)/window.Seconds(), "wal-MiB/s")
	b.ReportMetric(tps, "tps")
	b.ReportMetric(100*host/capacity, "host-busy-%")
	b.ReportMetric(100*math.Max(0, host-ours)/capacity, "other-cpu-%")

	metricsCPU := scrape1["process_cpu_seconds_total"] - scrape0["process_cpu_seconds_total"]
	b.Logf("load: pgbench -n -c 2 -j 2 for %.1f s, %.0f MiB of WAL (%.2f MiB/s), %.0f commits/s; ticker every %v, %d markers",
		window.Seconds(), walBytes/(1<<20), walBytes/(1<<20)/window.Seconds(), tps, receiveTick, len(markers))
	b.Logf("RPO: %.3f s measured (crash %s, newest of %s restored rows from %s, restore + replay %.1f s); "+
		"from wal-receive's log: %.3f s predicted for this crash, at most %.3f s and %.3f s on average over the load (%d uploads landed during it, every %.2f s on average)",
		rpo, crash.Format("15:04:05.000"), row[0], time.UnixMicro(int64(lastRestored*1e6)).Format("15:04:05.000"), restoreTime.Seconds(),
		exp.atCrash, exp.max, exp.mean, exp.uploads, exp.interval)
	b.Logf("wal-receive: %.2f s CPU over the load (its metrics say %.2f s), peak RSS %.1f MiB (%.1f MiB at the end by its metrics), %.0f partials and %.0f segments stored during the load, %.0f upload errors",
		wvCPU, metricsCPU, float64(wvHWM)/1024, scrape1["process_resident_memory_bytes"]/(1<<20),
		scrape1["walvault_receive_partials_stored_total"]-scrape0["walvault_receive_partials_stored_total"],
		scrape1["walvault_receive_segments_stored_total"]-scrape0["walvault_receive_segments_stored_total"],
		scrape1["walvault_receive_upload_errors_total"])
	b.Logf("wal-receive's Go runtime at the crash: heap in use %.1f MiB, next GC at %.1f MiB, %.1f MiB obtained from the OS",
		scrape1["go_memstats_heap_inuse_bytes"]/(1<<20), scrape1["go_memstats_next_gc_bytes"]/(1<<20), scrape1["go_memstats_sys_bytes"]/(1<<20))
	b.Logf("pg_receivewal: %.2f s CPU, peak RSS %.1f MiB; CPU ratio walvault/pg_receivewal %.1fx; S3 gateway %.2f s CPU",
		pgrwCPU, float64(pgrwHWM)/1024, wvCPU/math.Max(pgrwCPU, 0.01), gwCPU)
	b.Logf("machine: %d CPUs, %.1f s busy of %.1f s (%.0f%%), %.1f s of it by processes outside this benchmark (%.0f%%); load average at the crash: %s",
		numCPU(), host, capacity, 100*host/capacity, math.Max(0, host-ours), 100*math.Max(0, host-ours)/capacity, loadAvg())
}

// setArchiveCommand sets archive_command with a reload and waits until the
// server uses it.
func setArchiveCommand(b *testing.B, pg *testenv.Postgres, cmd string) {
	b.Helper()
	pg.SQL(b, "ALTER SYSTEM SET archive_command = '"+strings.ReplaceAll(cmd, "'", "''")+"'; SELECT pg_reload_conf()")
	deadline := time.Now().Add(30 * time.Second)
	for pg.SQL(b, "SHOW archive_command") != cmd {
		if time.Now().After(deadline) {
			b.Fatalf("archive_command is not %q 30 s after a reload", cmd)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSlotActive waits until a receiver streams from slot.
func waitSlotActive(b *testing.B, pg *testenv.Postgres, slot string, exited <-chan struct{}, output func() string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for pg.SQL(b, "SELECT coalesce((SELECT active::text FROM pg_replication_slots WHERE slot_name = '"+slot+"'), 'none')") != "true" {
		select {
		case <-exited:
			b.Fatalf("the receiver on slot %s exited:\n%s", slot, output())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("slot %s not active after 30 s:\n%s", slot, output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// walAndCommits reads the current WAL position and the commits so far.
func walAndCommits(b *testing.B, conn *pgx.Conn) (wal.LSN, int64) {
	b.Helper()
	var lsn string
	var commits int64
	if err := conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text, (SELECT sum(xact_commit)::bigint FROM pg_stat_database)").Scan(&lsn, &commits); err != nil {
		b.Fatalf("read WAL position: %v", err)
	}
	l, err := wal.ParseLSN(lsn)
	if err != nil {
		b.Fatalf("%v", err)
	}
	return l, commits
}

// postmasterPID reads the first line of postmaster.pid.
func postmasterPID(b *testing.B, pg *testenv.Postgres) int {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(pg.DataDir, "postmaster.pid"))
	if err != nil {
		b.Fatalf("%v", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		b.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// ---------------------------------------------------------------------------
// wal-receive

// walReceive is a wal-receive process whose log lines are read as they come.
type walReceive struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	segSize uint32

	mu     sync.Mutex
	log    bytes.Buffer      // everything it printed
	events []durabilityEvent // uploads, in the order they landed
}

// durabilityEvent is an upload that landed: from at on, the repository
// holds the WAL up to lsn.
type durabilityEvent struct {
	at  time.Time
	lsn wal.LSN
}

func startWalReceive(b *testing.B, bin string, segSize uint32, env []string, args ...string) *walReceive {
	b.Helper()
	// As the server user, as pg_receivewal runs.
	cmd := testenv.ServerCommand(b, bin, append([]string{"wal-receive"}, args...)...)
	cmd.Env = cleanEnv(env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatalf("%v", err)
	}
	rc := &walReceive{cmd: cmd, exited: make(chan struct{}), segSize: segSize}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start wal-receive: %v", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			rc.line(time.Now(), sc.Bytes())
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-read
		cmd.Wait()
		close(rc.exited)
	}()
	b.Cleanup(func() {
		select {
		case <-rc.exited:
		default:
			cmd.Process.Kill()
			<-rc.exited
		}
	})
	return rc
}

// line takes one JSON log line read at time at.
func (rc *walReceive) line(at time.Time, text []byte) {
	var l struct {
		Msg     string `json:"msg"`
		Key     string `json:"key"`
		Segment string `json:"segment"`
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.log.Len() < 4<<20 {
		rc.log.Write(text)
		rc.log.WriteByte('\n')
	}
	if json.Unmarshal(text, &l) != nil {
		return
	}
	switch {
	case l.Msg == "partial stored":
		if p, ok := repository.ParsePartialKey(l.Key); ok {
			rc.events = append(rc.events, durabilityEvent{at, p.End})
		}
	case strings.HasPrefix(l.Msg, "segment ") && l.Segment != "":
		// "segment stored", "segment already archived with the same content"
		s, err := wal.ParseSegmentName(l.Segment)
		if err != nil {
			return
		}
		if next, err := s.Next(rc.segSize); err == nil {
			if end, err := next.StartLSN(rc.segSize); err == nil {
				rc.events = append(rc.events, durabilityEvent{at, end})
			}
		}
	}
}

func (rc *walReceive) output() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.log.String()
}

func (rc *walReceive) durable() []durabilityEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]durabilityEvent(nil), rc.events...)
}

// scrapeMetrics reads wal-receive's --metrics listener (unlabelled samples).
func scrapeMetrics(b *testing.B, addr string) map[string]float64 {
	b.Helper()
	m, err := testenv.ScrapeMetrics(addr)
	if err != nil {
		b.Fatalf("scrape wal-receive's metrics: %v", err)
	}
	return m
}

// ---------------------------------------------------------------------------
// The ticker

// marker is one committed ticker row: its clock_timestamp() and the WAL
// insert position right after its commit returned (at or past the end of
// its commit record).
type marker struct {
	ts  time.Time
	lsn wal.LSN
}

type ticker struct {
	mu      sync.Mutex
	markers []marker
	err     error
	crashed bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// startTicker commits a marker row every receiveTick on a connection of
// its own until stop.
func startTicker(b *testing.B, parent context.Context, connString string) *ticker {
	b.Helper()
	ctx, cancel := context.WithCancel(parent)
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		cancel()
		b.Fatalf("ticker: connect: %v", err)
	}
	tk := &ticker{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tk.done)
		defer conn.Close(context.Background())
		t := time.NewTicker(receiveTick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var ts time.Time
			var lsn string
			err := conn.QueryRow(ctx, "INSERT INTO receive_marks (ts) VALUES (clock_timestamp()) RETURNING ts").Scan(&ts)
			if err == nil {
				err = conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn)
			}
			var l wal.LSN
			if err == nil {
				l, err = wal.ParseLSN(lsn)
			}
			tk.mu.Lock()
			if err != nil {
				if !tk.crashed && ctx.Err() == nil {
					tk.err = err
				}
				tk.mu.Unlock()
				return
			}
			tk.markers = append(tk.markers, marker{ts, l})
			tk.mu.Unlock()
		}
	}()
	return tk
}

// expectEnd says the server is about to go: from then on the ticker's
// errors are expected.
func (tk *ticker) expectEnd() {
	tk.mu.Lock()
	tk.crashed = true
	tk.mu.Unlock()
}

// stop ends the ticker.
func (tk *ticker) stop() {
	tk.expectEnd()
	tk.cancel()
	<-tk.done
}

func (tk *ticker) list() []marker {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return append([]marker(nil), tk.markers...)
}

// exposureStats is the RPO a crash would have had over time.
type exposureStats struct {
	max, mean, atCrash float64 // seconds
	uploads            int     // uploads that landed during the load
	interval           float64 // mean seconds between them
}

// exposure works out, for every moment t of [from, to], the RPO of a crash
// at t: t minus the timestamp of the newest marker whose WAL the
// repository held at t. It is a sawtooth that drops when an upload lands;
// its peaks are just before each upload and at the end.
func exposure(events []durabilityEvent, markers []marker, from, to time.Time) exposureStats {
	var st exposureStats
	sort.SliceStable(events, func(i, j int) bool { return events[i].at.Before(events[j].at) })
	safe := func(lsn wal.LSN) (time.Time, bool) {
		i := sort.Search(len(markers), func(i int) bool { return markers[i].lsn > lsn })
		if i == 0 {
			return time.Time{}, false
		}
		return markers[i-1].ts, true
	}
	var durable wal.LSN
	var integral, covered float64
	var first, last time.Time
	segment := func(a, b time.Time) {
		if !b.After(a) {
			return
		}
		ts, ok := safe(durable)
		if !ok {
			return
		}
		x, y := a.Sub(ts).Seconds(), b.Sub(ts).Seconds()
		integral += (y*y - x*x) / 2
		covered += y - x
		st.max = math.Max(st.max, y)
	}
	cursor := from
	for _, e := range events {
		if e.at.After(to) {
			break
		}
		if e.at.After(from) {
			segment(cursor, e.at)
			cursor = e.at
			st.uploads++
			if first.IsZero() {
				first = e.at
			}
			last = e.at
		}
		if e.lsn > durable {
			durable = e.lsn
		}
	}
	segment(cursor, to)
	if ts, ok := safe(durable); ok {
		st.atCrash = to.Sub(ts).Seconds()
	}
	if covered > 0 {
		st.mean = integral / covered
	}
	if st.uploads > 1 {
		st.interval = last.Sub(first).Seconds() / float64(st.uploads-1)
	}
	return st
}

// ---------------------------------------------------------------------------
// Processes

// procStat is one process's line of /proc/PID/stat.
type procStat struct {
	ppid  int
	start uint64        // starttime: tells a reused pid apart
	cpu   time.Duration // utime + stime
	comm  string
}

// readProcs reads every process's /proc/PID/stat.
func readProcs() map[int]procStat {
	out := map[int]procStat{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if st, ok := readProc(pid); ok {
			out[pid] = st
		}
	}
	return out
}

func readProc(pid int) (procStat, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procStat{}, false
	}
	// Fields after the command name, from field 3 (state) on.
	f := strings.Fields(s[closing+1:])
	if len(f) < 20 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procStat{ppid: ppid, start: start, cpu: time.Duration(utime+stime) * time.Second / 100, comm: s[open+1 : closing]}, true // USER_HZ = 100
}

// procCPU is the CPU seconds pid used between two snapshots (all of it
// when it started in between).
func procCPU(before, after map[int]procStat, pid int) float64 {
	a, ok := after[pid]
	if !ok {
		return 0
	}
	if b, ok := before[pid]; ok && b.start == a.start {
		return (a.cpu - b.cpu).Seconds()
	}
	return a.cpu.Seconds()
}

// descendants is roots and every process below them.
func descendants(procs map[int]procStat, roots ...int) map[int]bool {
	in := map[int]bool{}
	for _, r := range roots {
		in[r] = true
	}
	for changed := true; changed; {
		changed = false
		for pid, st := range procs {
			if !in[pid] && in[st.ppid] {
				in[pid] = true
				changed = true
			}
		}
	}
	return in
}

// findVersity is the pid of the gateway listening at endpoint (0 when not
// found).
func findVersity(procs map[int]procStat, endpoint string) int {
	addr := endpoint[strings.Index(endpoint, "://")+3:]
	for pid, st := range procs {
		if st.comm != "versitygw" {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(cmdline, []byte("\x00"+addr+"\x00")) {
			return pid
		}
	}
	return 0
}

// vmHWM is a process's peak resident set size in KiB (0 when unreadable).
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// numCPU counts the CPUs /proc/stat reports (cpu0, cpu1, ...).
func numCPU() int {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
