// Command ratios reads the output of the benchmarks in package bench
// (go test -bench, any -count) and prints their medians and the ratios the
// performance targets are judged by, against the baselines measured in the
// same run: wal-push and wal-fetch time (÷ cp, lz4 -1), backup-push time
// (÷ pg_basebackup -Ft -z, -Ft with client-side lz4, plain -Ft), restore
// time (÷ untar of base.tar.gz and of base.tar), RTO, restore until the
// server accepts a write (÷ the same from pg_basebackup -Ft -z's and -Ft's
// output), and peak RSS; and
// wal-receive's RPO and its CPU and peak RSS beside pg_receivewal's.
//
//	go run ./bench/cmd/ratios [-strict] FILE...   (or standard input)
//
// With -strict it exits 1 when a target is missed. scripts/bench.sh runs it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Targets from the issue.
const (
	targetPushS3  = 1.5 // wal-push to loopback S3 ÷ lz4 -1 to a local file
	stretchPushS3 = 1.0
	targetRSSMiB  = 40.0 // wal-push peak RSS

	targetBacklogSpeedup = 4.0 // wal-push segments/s with a .ready backlog, upload-concurrency 8 ÷ 0
	targetFetchCp        = 1.0 // wal-fetch during recovery, prefetch on, ÷ cp from a local directory
	targetKeepUpReady    = 2.0 // .ready files waiting under pgbench, at most

	targetBackupSpeedup = 2.0   // backup-push throughput ÷ pg_basebackup -Ft -z's
	targetRTO           = 0.5   // restore to a read-write server ÷ the same from pg_basebackup -Ft -z's output
	targetBackupRSSMiB  = 150.0 // backup-push and restore peak RSS, at any database size

	targetReceiveRPO    = 1.0  // seconds: crash time - newest restored commit, --max-lag 1s, under pgbench
	targetReceiveRSSMiB = 50.0 // wal-receive peak RSS

	targetStart = 1.5 // process start of wal-push and wal-fetch ÷ a minimal Go program (3 ms against 2 ms)

	targetOneCall = 1.2 // wal-push of one segment ÷ lz4 -1, wal-fetch ÷ cp (issue 17: the per-segment commands)

	// Over a link of targetRTT round trip (WALVAULT_BENCH_LATENCY).
	targetRTT                = "rtt=40ms"
	targetLinkBacklogSpeedup = 4.0   // wal-push backlog segments/s, upload-concurrency 8 ÷ 0
	targetLinkFetchMiBs      = 150.0 // wal-fetch during recovery with prefetch, MiB/s
	targetLinkThroughput     = 0.8   // backup-push and restore throughput ÷ the same on loopback
)

// Names of the backlog, recovery and keep-up benchmarks (after stripProcs).
const (
	backlogLZ4     = "BenchmarkWALPushBacklog/baseline=lz4-1"
	backlogSerial  = "BenchmarkWALPushBacklog/walvault=s3/upload-concurrency=0"
	backlogAhead   = "BenchmarkWALPushBacklog/walvault=s3/upload-concurrency=8"
	backlogHelper  = "BenchmarkWALPushBacklog/helper=s3/upload-concurrency=8"
	recoveryCp     = "BenchmarkWALFetchRecovery/baseline=cp"
	recoveryOff    = "BenchmarkWALFetchRecovery/walvault=s3/prefetch=0"
	recoveryOn     = "BenchmarkWALFetchRecovery/walvault=s3/prefetch=8"
	recoveryOffGap = "BenchmarkWALFetchRecovery/walvault=s3/prefetch=0/replay=50ms"
	recoveryOnGap  = "BenchmarkWALFetchRecovery/walvault=s3/prefetch=8/replay=50ms"
	// The same calls handed to a wal-helper.
	recoveryHelper    = "BenchmarkWALFetchRecovery/helper=s3/prefetch=8"
	recoveryHelperGap = "BenchmarkWALFetchRecovery/helper=s3/prefetch=8/replay=50ms"
	// Over TLS, beside pgBackRest's asynchronous archive-get.
	recoveryPeer    = "BenchmarkWALFetchRecovery/peer=pgbackrest-s3-tls/async"
	recoveryPeerGap = "BenchmarkWALFetchRecovery/peer=pgbackrest-s3-tls/async/replay=50ms"
	keepUp          = "BenchmarkKeepUp"
	receive         = "BenchmarkReceive"
	start           = "BenchmarkStart"
)

// The peer measured in the same run, pgBackRest: archive-push and
// archive-get over the same TLS gateway, one process per segment, and a
// full backup to a repository on local disk.
const (
	onePeer     = "BenchmarkWALPushOne/peer=pgbackrest-s3-tls"
	fetchPeer   = "BenchmarkWALFetch/peer=pgbackrest-s3-tls"
	backupPeer  = "BenchmarkBackup/peer=pgbackrest-posix"
	restorePeer = "BenchmarkRestore/peer=pgbackrest-posix"
)

// Names of the base backup benchmarks (after stripProcs).
const (
	backupZ        = "BenchmarkBackup/baseline=pg_basebackup-Ft-z"
	backupLZ4      = "BenchmarkBackup/baseline=pg_basebackup-Ft-client-lz4"
	backupTar      = "BenchmarkBackup/baseline=pg_basebackup-Ft"
	restoreGz      = "BenchmarkRestore/baseline=untar-gz"
	restoreTar     = "BenchmarkRestore/baseline=untar"
	restoreGzSync  = "BenchmarkRestore/baseline=untar-gz+sync"
	restoreTarSync = "BenchmarkRestore/baseline=untar+sync"
	rtoGz          = "BenchmarkRTO/baseline=untar-gz"
	rtoTar         = "BenchmarkRTO/baseline=untar"
)

var (
	backupNames  = []string{"BenchmarkBackup/walvault=file", "BenchmarkBackup/walvault=s3"}
	restoreNames = []string{"BenchmarkRestore/walvault=file", "BenchmarkRestore/walvault=s3"}
	rtoNames     = []string{"BenchmarkRTO/walvault=file", "BenchmarkRTO/walvault=s3"}
)

// isBaseBackup reports whether a benchmark is one of BenchmarkBackup,
// BenchmarkRestore and BenchmarkRTO, which get their own table (seconds,
// CPU, stored size).
func isBaseBackup(name string) bool {
	return strings.HasPrefix(name, "BenchmarkBackup/") || strings.HasPrefix(name, "BenchmarkRestore/") || strings.HasPrefix(name, "BenchmarkRTO/")
}

// result is one benchmark: its metrics (unit -> one value per run) in the
// order the runs came.
type result struct {
	name    string
	metrics map[string][]float64
}

func (r *result) median(unit string) (float64, bool) {
	v := r.metrics[unit]
	if len(v) == 0 {
		return 0, false
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// spread is (max-min)/median of ns/op, in percent: how noisy the runs were.
func (r *result) spread() float64 {
	v := r.metrics["ns/op"]
	m, ok := r.median("ns/op")
	if !ok || m == 0 || len(v) < 2 {
		return 0
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return 100 * (hi - lo) / m
}

var lineRE = regexp.MustCompile(`^(Benchmark\S+)\s+(\d+)\s+(.+)$`)

func parse(r io.Reader, order *[]string, byName map[string]*result) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		if len(f)%2 != 0 {
			continue
		}
		res := byName[m[1]]
		if res == nil {
			res = &result{name: m[1], metrics: map[string][]float64{}}
			byName[m[1]] = res
			*order = append(*order, m[1])
		}
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res.metrics[f[i+1]] = append(res.metrics[f[i+1]], v)
		}
	}
	return sc.Err()
}

// stripProcs removes the -GOMAXPROCS suffix go test adds to every name
// when GOMAXPROCS > 1 (and to none when it is 1: "baseline=lz4-1" must
// then stay whole).
func stripProcs(order []string, byName map[string]*result) ([]string, map[string]*result) {
	suffix := regexp.MustCompile(`-\d+$`)
	common := ""
	for i, n := range order {
		s := suffix.FindString(n)
		if s == "" || (i > 0 && s != common) {
			return order, byName
		}
		common = s
	}
	out := map[string]*result{}
	var names []string
	for _, n := range order {
		short := strings.TrimSuffix(n, common)
		byName[n].name = short
		out[short] = byName[n]
		names = append(names, short)
	}
	return names, out
}

func main() {
	strict := flag.Bool("strict", false, "exit 1 when a target is missed")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: ratios [-strict] [FILE...]  (go test -bench output of ./bench; standard input without FILE)")
		flag.PrintDefaults()
	}
	flag.Parse()

	var order []string
	byName := map[string]*result{}
	if flag.NArg() == 0 {
		if err := parse(os.Stdin, &order, byName); err != nil {
			fail(err)
		}
	}
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			fail(err)
		}
		err = parse(f, &order, byName)
		f.Close()
		if err != nil {
			fail(err)
		}
	}
	if len(order) == 0 {
		fail(fmt.Errorf("no benchmark results in the input"))
	}
	order, byName = stripProcs(order, byName)
	missed := report(os.Stdout, order, byName)
	if *strict && missed > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ratios:", err)
	os.Exit(2)
}

func report(w io.Writer, order []string, byName map[string]*result) (missed int) {
	runs := 0
	for _, n := range order {
		runs = max(runs, len(byName[n].metrics["ns/op"]))
	}
	fmt.Fprintf(w, "\nMedians of up to %d runs per benchmark; ratios are of median ns/op from this same run.\n\n", runs)

	var walOrder, bbOrder []string
	for _, n := range order {
		if strings.HasPrefix(n, keepUp) || strings.HasPrefix(n, receive) {
			continue // its own table below
		}
		if isBaseBackup(n) {
			bbOrder = append(bbOrder, n)
		} else {
			walOrder = append(walOrder, n)
		}
	}
	if len(walOrder) > 0 {
		fmt.Fprintf(w, "%-48s %4s %9s %7s %9s %10s %8s %9s\n", "benchmark", "runs", "ms/op", "spread", "MB/s", "B/op", "allocs", "peak RSS")
	}
	for _, n := range walOrder {
		r := byName[n]
		ns, _ := r.median("ns/op")
		fmt.Fprintf(w, "%-48s %4d %9.2f %6.0f%% %9s %10s %8s %9s\n", strings.TrimPrefix(n, "Benchmark"),
			len(r.metrics["ns/op"]), ns/1e6, r.spread(),
			opt(r, "MB/s", "%.0f"), opt(r, "B/op", "%.0f"), opt(r, "allocs/op", "%.0f"), opt(r, "peak-RSS-MiB", "%.1f MiB"))
	}
	if len(bbOrder) > 0 {
		if len(walOrder) > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Base backup and restore of the pgbench database (MB/s of its size; cpu-s: the command's own CPU time,\n"+
			"host-cpu-s: the whole machine's meanwhile, PostgreSQL and the S3 gateway included):\n")
		fmt.Fprintf(w, "%-42s %4s %8s %7s %7s %7s %10s %10s %9s\n", "benchmark", "runs", "seconds", "spread", "MB/s", "cpu-s", "host-cpu-s", "stored", "peak RSS")
	}
	for _, n := range bbOrder {
		r := byName[n]
		ns, _ := r.median("ns/op")
		fmt.Fprintf(w, "%-42s %4d %8.2f %6.0f%% %7s %7s %10s %10s %9s\n", strings.TrimPrefix(n, "Benchmark"),
			len(r.metrics["ns/op"]), ns/1e9, r.spread(),
			opt(r, "MB/s", "%.0f"), opt(r, "cpu-s", "%.2f"), opt(r, "host-cpu-s", "%.2f"), opt(r, "stored-MiB", "%.0f MiB"), opt(r, "peak-RSS-MiB", "%.1f MiB"))
	}

	ns := func(name string) (float64, bool) {
		r := byName[name]
		if r == nil {
			return 0, false
		}
		return r.median("ns/op")
	}
	ratio := func(a, b string) string {
		x, ok1 := ns(a)
		y, ok2 := ns(b)
		if !ok1 || !ok2 || y == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", x/y)
	}

	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		missed++
		return "MISSED"
	}
	section := func(names []string, title string, header ...any) {
		for _, n := range names {
			if byName[n] != nil {
				fmt.Fprintf(w, "\n%s\n", title)
				fmt.Fprintf(w, "%-36s"+strings.Repeat(" %13s", len(header))+"\n", append([]any{""}, header...)...)
				return
			}
		}
	}
	pushNames := []string{"BenchmarkWALPush/walvault=file", "BenchmarkWALPush/walvault=s3", "BenchmarkWALPushInProcess/file", "BenchmarkWALPushInProcess/s3", "BenchmarkWALPushIncompressible/walvault=file", "BenchmarkWALPushIncompressible/walvault=s3"}
	section(pushNames, "wal-push time ratios (one process per segment, as archive_command):", "÷ lz4-1", "÷ lz4-1+fsync", "÷ cp")
	for _, n := range []string{"BenchmarkWALPush/walvault=file", "BenchmarkWALPush/walvault=s3", "BenchmarkWALPushInProcess/file", "BenchmarkWALPushInProcess/s3"} {
		if byName[n] == nil {
			continue
		}
		fmt.Fprintf(w, "%-36s %13s %13s %13s\n", strings.TrimPrefix(n, "Benchmark"),
			ratio(n, "BenchmarkWALPush/baseline=lz4-1"), ratio(n, "BenchmarkWALPush/baseline=lz4-1+fsync"), ratio(n, "BenchmarkWALPush/baseline=cp"))
	}
	for _, n := range []string{"BenchmarkWALPushIncompressible/walvault=file", "BenchmarkWALPushIncompressible/walvault=s3"} {
		if byName[n] == nil {
			continue
		}
		fmt.Fprintf(w, "%-36s %13s   (÷ lz4 -1 of the same incompressible segment)\n", strings.TrimPrefix(n, "Benchmark"),
			ratio(n, "BenchmarkWALPushIncompressible/baseline=lz4-1"))
	}

	oneNames := []string{"BenchmarkWALPushOne/walvault=file", "BenchmarkWALPushOne/walvault=s3", "BenchmarkWALPushOne/walvault=s3-tls",
		"BenchmarkWALPushOne/helper=file", "BenchmarkWALPushOne/helper=s3", "BenchmarkWALPushOne/helper=s3-tls",
		"BenchmarkWALPushOne/resident=file", "BenchmarkWALPushOne/resident=s3", "BenchmarkWALPushOne/resident=s3-tls",
		onePeer}
	section(oneNames, "wal-push, one segment per call (walvault= a process each, helper= handed to wal-helper, resident= one long-lived process; peer=: pgBackRest's archive-push):", "÷ lz4-1", "÷ pgbackrest")
	for _, n := range oneNames {
		if byName[n] == nil {
			continue
		}
		fmt.Fprintf(w, "%-36s %13s %13s\n", strings.TrimPrefix(n, "Benchmark"), ratio(n, "BenchmarkWALPushOne/baseline=lz4-1"), ratio(n, onePeer))
	}

	fetchNames := []string{"BenchmarkWALFetch/walvault=file", "BenchmarkWALFetch/walvault=s3", "BenchmarkWALFetch/walvault=s3-tls",
		"BenchmarkWALFetch/helper=file", "BenchmarkWALFetch/helper=s3", "BenchmarkWALFetch/helper=s3-tls", fetchPeer,
		"BenchmarkWALFetchInProcess/file", "BenchmarkWALFetchInProcess/s3"}
	section(fetchNames, "wal-fetch time ratios (one process per segment, as restore_command; helper= handed to wal-helper; peer=: pgBackRest's archive-get):", "÷ cp", "÷ lz4-d", "÷ pgbackrest")
	for _, n := range fetchNames {
		if byName[n] == nil {
			continue
		}
		fmt.Fprintf(w, "%-36s %13s %13s %13s\n", strings.TrimPrefix(n, "Benchmark"),
			ratio(n, "BenchmarkWALFetch/baseline=cp"), ratio(n, "BenchmarkWALFetch/baseline=lz4-d"), ratio(n, fetchPeer))
	}

	section(backupNames, "backup-push time ratios (a throughput ratio is the inverse; peer=: pgBackRest's full backup to local disk):", "÷ Ft -z", "÷ Ft lz4", "÷ Ft", "÷ pgbackrest")
	for _, n := range append(append([]string(nil), backupNames...), backupPeer) {
		if byName[n] == nil {
			continue
		}
		fmt.Fprintf(w, "%-36s %13s %13s %13s %13s\n", strings.TrimPrefix(n, "Benchmark"),
			ratio(n, backupZ), ratio(n, backupLZ4), ratio(n, backupTar), ratio(n, backupPeer))
	}
	section(restoreNames, "restore time ratios (the restore command alone: no server start, no WAL replay; walvault restore syncs, plain untar does not; peer=: pgBackRest's restore from local disk):",
		"÷ untar-gz", "÷ gz+sync", "÷ untar", "÷ untar+sync", "÷ pgbackrest")
	for _, n := range append(append([]string(nil), restoreNames...), restorePeer) {
		if byName[n] == nil {
			continue
		}
		fmt.Fprintf(w, "%-36s %13s %13s %13s %13s %13s\n", strings.TrimPrefix(n, "Benchmark"),
			ratio(n, restoreGz), ratio(n, restoreGzSync), ratio(n, restoreTar), ratio(n, restoreTarSync), ratio(n, restorePeer))
	}

	section(append([]string{rtoTar}, rtoNames...), "RTO time ratios (restore, then the server started until it accepts a write):", "÷ untar-gz", "÷ untar")
	for _, n := range append([]string{rtoTar}, rtoNames...) {
		if byName[n] == nil {
			continue
		}
		fmt.Fprintf(w, "%-36s %13s %13s\n", strings.TrimPrefix(n, "Benchmark"), ratio(n, rtoGz), ratio(n, rtoTar))
	}

	if byName[backlogSerial] != nil || byName[backlogAhead] != nil || byName[backlogHelper] != nil {
		fmt.Fprintf(w, "\nwal-push with a backlog of .ready files (one process per segment, .ready -> .done after each, as the archiver):\n")
		fmt.Fprintf(w, "%-36s %13s %13s\n", "", "segments/s", "÷ lz4-1 time")
		for _, n := range []string{backlogLZ4, backlogSerial, backlogAhead, backlogHelper} {
			if x, ok := ns(n); ok && x > 0 {
				fmt.Fprintf(w, "%-36s %13.1f %13s\n", strings.TrimPrefix(n, "BenchmarkWALPushBacklog/"), 1e9/x, ratio(n, backlogLZ4))
			}
		}
	}
	if byName[recoveryOn] != nil || byName[recoveryOff] != nil || byName[recoveryHelper] != nil {
		fmt.Fprintf(w, "\nwal-fetch during recovery (one process per segment into pg_wal/RECOVERYXLOG; back to back, or 50 ms of untimed replay between calls):\n")
		fmt.Fprintf(w, "%-42s %13s %13s\n", "", "ms/segment", "÷ cp")
		for _, n := range []string{recoveryCp, recoveryOff, recoveryOn, recoveryOffGap, recoveryOnGap, recoveryHelper, recoveryHelperGap} {
			if x, ok := ns(n); ok {
				fmt.Fprintf(w, "%-42s %13.2f %13s\n", strings.TrimPrefix(n, "BenchmarkWALFetchRecovery/"), x/1e6, ratio(n, recoveryCp))
			}
		}
	}
	if byName[recoveryPeer] != nil || byName[recoveryPeerGap] != nil {
		fmt.Fprintf(w, "\nthe same over TLS, beside pgBackRest's asynchronous archive-get (each row ÷ the peer's row with the same replay):\n")
		fmt.Fprintf(w, "%-42s %13s %13s %13s\n", "", "ms/segment", "÷ cp", "÷ pgbackrest")
		const pre = "BenchmarkWALFetchRecovery/"
		for _, n := range []string{pre + "walvault=s3-tls/prefetch=8", pre + "helper=s3-tls/prefetch=8", recoveryPeer,
			pre + "walvault=s3-tls/prefetch=8/replay=50ms", pre + "helper=s3-tls/prefetch=8/replay=50ms", recoveryPeerGap} {
			peer := recoveryPeer
			if strings.HasSuffix(n, "/replay=50ms") {
				peer = recoveryPeerGap
			}
			if x, ok := ns(n); ok {
				fmt.Fprintf(w, "%-42s %13.2f %13s %13s\n", strings.TrimPrefix(n, pre), x/1e6, ratio(n, recoveryCp), ratio(n, peer))
			}
		}
	}
	var keepUps []string
	for _, n := range order {
		if strings.HasPrefix(n, keepUp) {
			keepUps = append(keepUps, n)
		}
	}
	for _, n := range keepUps {
		r := byName[n]
		fmt.Fprintf(w, "\narchive keep-up, %s (medians of %d runs; max over runs in brackets):\n", strings.TrimPrefix(n, keepUp+"/"), len(r.metrics["max-ready"]))
		for _, u := range []string{"max-ready", "max-lag-segs", "max-lag-s", "wal-segs/s", "tps", "archive-failures"} {
			if m, ok := r.median(u); ok {
				fmt.Fprintf(w, "  %-18s %10.2f  [%.2f]\n", u, m, maxOf(r.metrics[u]))
			}
		}
	}

	if r := byName[receive]; r != nil {
		fmt.Fprintf(w, "\nwal-receive --max-lag 1s to S3 beside pg_receivewal to a local directory, same pgbench run, crash, restore latest\n"+
			"(medians of %d runs; max over runs in brackets):\n", len(r.metrics["rpo-s"]))
		for _, u := range []string{"rpo-s", "rpo-max-s", "rpo-mean-s", "walvault-cpu-s", "pg_receivewal-cpu-s", "cpu-ratio",
			"walvault-rss-MiB", "pg_receivewal-rss-MiB", "gateway-cpu-s", "wal-MiB/s", "tps", "host-busy-%", "other-cpu-%"} {
			if m, ok := r.median(u); ok {
				fmt.Fprintf(w, "  %-22s %10.3f  [%.3f]\n", u, m, maxOf(r.metrics[u]))
			}
		}
	}

	if r := byName[start]; r != nil {
		fmt.Fprintf(w, "\nprocess start, each command interleaved with a minimal Go program (medians of %d runs; max over runs in brackets):\n", len(r.metrics["ns/op"]))
		for _, u := range []string{"go-minimal-ms", "version-ms", "wal-push-help-ms", "wal-fetch-help-ms", "lean-wal-push-help-ms", "handed-off-ms", "lean-handed-off-ms",
			"version-x", "wal-push-help-x", "wal-fetch-help-x", "lean-wal-push-help-x", "handed-off-x", "lean-handed-off-x",
			"go-minimal-cpu-ms", "wal-push-help-cpu-ms", "wal-fetch-help-cpu-ms", "lean-wal-push-help-cpu-ms", "handed-off-cpu-ms", "lean-handed-off-cpu-ms",
			"wal-push-help-cpu-x", "wal-fetch-help-cpu-x", "lean-wal-push-help-cpu-x", "handed-off-cpu-x", "lean-handed-off-cpu-x"} {
			if m, ok := r.median(u); ok {
				fmt.Fprintf(w, "  %-26s %10.2f  [%.2f]\n", u, m, maxOf(r.metrics[u]))
			}
		}
	}

	missed += reportLinks(w, order, byName)

	fmt.Fprintf(w, "\ntargets:\n")
	for _, u := range []string{"wal-push-help-x", "wal-fetch-help-x", "lean-wal-push-help-x", "handed-off-x", "lean-handed-off-x"} {
		if r := byName[start]; r != nil {
			if m, ok := r.median(u); ok {
				fmt.Fprintf(w, "  process start, %s = %.2fx a minimal Go program: target ≤ %.1fx %s\n", strings.TrimSuffix(u, "-x"), m, targetStart, verdict(m <= targetStart))
			}
		}
	}
	if x, ok1 := ns(backlogAhead); ok1 && x > 0 {
		if y, ok2 := ns(backlogSerial); ok2 {
			sp := y / x
			fmt.Fprintf(w, "  wal-push backlog segments/s, upload-concurrency 8 ÷ 0 = %.2fx: target ≥ %.0fx %s\n", sp, targetBacklogSpeedup, verdict(sp >= targetBacklogSpeedup))
		}
	}
	if x, ok1 := ns(backlogHelper); ok1 && x > 0 {
		if y, ok2 := ns(backlogSerial); ok2 {
			sp := y / x
			fmt.Fprintf(w, "  wal-push backlog segments/s, through wal-helper with upload-concurrency 8 ÷ 0 = %.2fx: target ≥ %.0fx %s\n", sp, targetBacklogSpeedup, verdict(sp >= targetBacklogSpeedup))
		}
	}
	for _, c := range [][2]string{
		{"BenchmarkWALPushOne/helper=s3-tls", "BenchmarkWALPushOne/baseline=lz4-1"},
		{"BenchmarkWALFetch/helper=s3", "BenchmarkWALFetch/baseline=cp"},
	} {
		if x, ok1 := ns(c[0]); ok1 {
			if y, ok2 := ns(c[1]); ok2 && y > 0 {
				fmt.Fprintf(w, "  %s ÷ %s = %.2fx: target ≤ %.1fx %s\n", strings.TrimPrefix(c[0], "Benchmark"), strings.TrimPrefix(c[1], "Benchmark"), x/y, targetOneCall, verdict(x/y <= targetOneCall))
			}
		}
	}
	for _, n := range []string{recoveryOn, recoveryOnGap, recoveryHelper, recoveryHelperGap} {
		x, ok1 := ns(n)
		y, ok2 := ns(recoveryCp)
		if ok1 && ok2 && y > 0 {
			rr := x / y
			fmt.Fprintf(w, "  wal-fetch during recovery, %s, ÷ cp = %.2fx: target ≤ %.1fx %s\n",
				strings.TrimPrefix(n, "BenchmarkWALFetchRecovery/"), rr, targetFetchCp, verdict(rr <= targetFetchCp))
		}
	}
	for _, n := range keepUps {
		if r := byName[n]; len(r.metrics["max-ready"]) > 0 {
			m := maxOf(r.metrics["max-ready"])
			fmt.Fprintf(w, "  keep-up %s: largest number of .ready files (max of all runs) = %.0f: target ≤ %.0f %s\n",
				strings.TrimPrefix(n, keepUp+"/"), m, targetKeepUpReady, verdict(m <= targetKeepUpReady))
		}
	}
	if r := byName[receive]; r != nil {
		if v := r.metrics["rpo-s"]; len(v) > 0 {
			m := maxOf(v)
			fmt.Fprintf(w, "  wal-receive RPO after a crash (max of all runs) = %.2f s: target ≤ %.0f s %s", m, targetReceiveRPO, verdict(m <= targetReceiveRPO))
			if worst := r.metrics["rpo-max-s"]; len(worst) > 0 {
				over := ""
				if maxOf(worst) > targetReceiveRPO {
					over = ", over the target"
				}
				fmt.Fprintf(w, " (a crash at the worst moment of the load: %.2f s%s)", maxOf(worst), over)
			}
			fmt.Fprintln(w)
		}
		if v := r.metrics["walvault-rss-MiB"]; len(v) > 0 {
			m := maxOf(v)
			fmt.Fprintf(w, "  wal-receive peak RSS (max of all runs) = %.1f MiB: target < %.0f MiB %s\n", m, targetReceiveRSSMiB, verdict(m < targetReceiveRSSMiB))
		}
	}
	if x, ok1 := ns("BenchmarkWALPush/walvault=s3"); ok1 {
		if y, ok2 := ns("BenchmarkWALPush/baseline=lz4-1"); ok2 && y > 0 {
			r := x / y
			stretch := "met"
			if r > stretchPushS3 {
				stretch = "missed"
			}
			fmt.Fprintf(w, "  wal-push to S3 ÷ lz4 -1 to a file = %.2fx: target ≤ %.1fx %s; stretch ≤ %.1fx %s\n",
				r, targetPushS3, verdict(r <= targetPushS3), stretchPushS3, stretch)
		}
	}
	for _, n := range []string{"BenchmarkWALPush/walvault=file", "BenchmarkWALPush/walvault=s3", "BenchmarkWALPushIncompressible/walvault=file", "BenchmarkWALPushIncompressible/walvault=s3"} {
		r := byName[n]
		if r == nil || len(r.metrics["peak-RSS-MiB"]) == 0 {
			continue
		}
		peak := 0.0
		for _, v := range r.metrics["peak-RSS-MiB"] {
			peak = math.Max(peak, v)
		}
		fmt.Fprintf(w, "  %-44s peak RSS %5.1f MiB (max of all runs): target < %.0f MiB %s\n",
			strings.TrimPrefix(n, "Benchmark"), peak, targetRSSMiB, verdict(peak < targetRSSMiB))
	}
	for _, n := range backupNames {
		x, ok1 := ns(n)
		y, ok2 := ns(backupZ)
		if !ok1 || !ok2 || x == 0 {
			continue
		}
		speedup := y / x
		fmt.Fprintf(w, "  %-44s throughput %.2fx pg_basebackup -Ft -z's: target ≥ %.0fx %s\n",
			strings.TrimPrefix(n, "Benchmark"), speedup, targetBackupSpeedup, verdict(speedup >= targetBackupSpeedup))
	}
	for _, n := range rtoNames {
		x, ok1 := ns(n)
		y, ok2 := ns(rtoGz)
		if !ok1 || !ok2 || y == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-44s RTO %.2fx the pg_basebackup -Ft -z path's: target ≤ %.1fx %s\n",
			strings.TrimPrefix(n, "Benchmark"), x/y, targetRTO, verdict(x/y <= targetRTO))
	}
	for _, n := range append(append([]string(nil), backupNames...), restoreNames...) {
		r := byName[n]
		if r == nil || len(r.metrics["peak-RSS-MiB"]) == 0 {
			continue
		}
		peak := 0.0
		for _, v := range r.metrics["peak-RSS-MiB"] {
			peak = math.Max(peak, v)
		}
		fmt.Fprintf(w, "  %-44s peak RSS %5.1f MiB (max of all runs): target < %.0f MiB %s\n",
			strings.TrimPrefix(n, "Benchmark"), peak, targetBackupRSSMiB, verdict(peak < targetBackupRSSMiB))
	}
	return missed
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

func opt(r *result, unit, format string) string {
	v, ok := r.median(unit)
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// rttRE finds the link element of a benchmark run over a simulated
// network: "/rtt=40ms".
var rttRE = regexp.MustCompile(`/rtt=[^/]+`)

// reportLinks prints every benchmark run over a link beside the same
// benchmark on loopback, and judges the targets at targetRTT. It returns
// the number of targets missed.
func reportLinks(w io.Writer, order []string, byName map[string]*result) (missed int) {
	var links []string
	for _, n := range order {
		if rttRE.MatchString(n) {
			links = append(links, n)
		}
	}
	if len(links) == 0 {
		return 0
	}
	mibs := func(name string) (float64, bool) {
		r := byName[name]
		if r == nil {
			return 0, false
		}
		v, ok := r.median("MB/s")
		return v * 1e6 / (1 << 20), ok
	}
	fmt.Fprintf(w, "\nover a network: a toxiproxy link adding half the round trip each way, 1 Gbit/s per connection and direction,\n"+
		"beside the same benchmark on loopback (MiB/s: of segments, or of the database for backups; link CPU: the proxy's own):\n")
	fmt.Fprintf(w, "%-58s %10s %10s %10s %10s %12s\n", "benchmark", "MiB/s", "loopback", "÷ loopback", "÷ rtt=0s", "link CPU")
	for _, n := range links {
		x, ok := mibs(n)
		if !ok {
			continue
		}
		lb := "-"
		ratio := "-"
		if y, ok := mibs(rttRE.ReplaceAllString(n, "")); ok && y > 0 {
			lb = fmt.Sprintf("%.1f", y)
			ratio = fmt.Sprintf("%.2fx", x/y)
		}
		// rtt=0s is the proxy without latency: what the simulation costs.
		ratio0 := "-"
		if y, ok := mibs(rttRE.ReplaceAllString(n, "/rtt=0s")); ok && y > 0 && !strings.Contains(n, "/rtt=0s") {
			ratio0 = fmt.Sprintf("%.2fx", x/y)
		}
		linkCPU := opt(byName[n], "link-cpu-ms", "%.1f ms/seg")
		if linkCPU == "-" {
			linkCPU = opt(byName[n], "link-cpu-s", "%.2f s")
		}
		fmt.Fprintf(w, "%-58s %10.1f %10s %10s %10s %12s\n", strings.TrimPrefix(n, "Benchmark"), x, lb, ratio, ratio0, linkCPU)
	}

	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		missed++
		return "MISSED"
	}
	fmt.Fprintf(w, "\ntargets over the link, %s:\n", targetRTT)
	serial, ok1 := mibs("BenchmarkWALPushBacklog/walvault=s3/" + targetRTT + "/upload-concurrency=0")
	ahead, ok2 := mibs("BenchmarkWALPushBacklog/walvault=s3/" + targetRTT + "/upload-concurrency=8")
	if ok1 && ok2 && serial > 0 {
		sp := ahead / serial
		fmt.Fprintf(w, "  wal-push backlog segments/s, upload-concurrency 8 ÷ 0 = %.2fx: target ≥ %.0fx %s\n", sp, targetLinkBacklogSpeedup, verdict(sp >= targetLinkBacklogSpeedup))
	}
	if helper, ok := mibs("BenchmarkWALPushBacklog/helper=s3/" + targetRTT + "/upload-concurrency=8"); ok && ok1 && serial > 0 {
		sp := helper / serial
		fmt.Fprintf(w, "  wal-push backlog segments/s, through wal-helper with upload-concurrency 8 ÷ 0 = %.2fx: target ≥ %.0fx %s\n", sp, targetLinkBacklogSpeedup, verdict(sp >= targetLinkBacklogSpeedup))
	}
	if peer, ok := mibs("BenchmarkWALPushBacklog/peer=pgbackrest-s3-tls/" + targetRTT); ok && peer > 0 {
		if v, ok := mibs("BenchmarkWALPushBacklog/helper=s3-tls/" + targetRTT + "/upload-concurrency=8"); ok {
			fmt.Fprintf(w, "  wal-push backlog segments/s over TLS, through wal-helper ÷ pgBackRest's asynchronous archive-push = %.2fx (no target)\n", v/peer)
		}
	}
	if v, ok := mibs("BenchmarkWALFetchRecovery/walvault=s3/" + targetRTT + "/prefetch=8"); ok {
		fmt.Fprintf(w, "  wal-fetch during recovery, prefetch 8 = %.0f MiB/s: target ≥ %.0f MiB/s %s\n", v, targetLinkFetchMiBs, verdict(v >= targetLinkFetchMiBs))
	}
	for _, n := range []string{"BenchmarkBackup/walvault=s3", "BenchmarkRestore/walvault=s3"} {
		x, ok1 := mibs(n + "/" + targetRTT)
		y, ok2 := mibs(n)
		if ok1 && ok2 && y > 0 {
			fmt.Fprintf(w, "  %-44s throughput %.2fx loopback's: target ≥ %.1fx %s\n",
				strings.TrimPrefix(n, "Benchmark")+"/"+targetRTT, x/y, targetLinkThroughput, verdict(x/y >= targetLinkThroughput))
		}
	}
	return missed
}
