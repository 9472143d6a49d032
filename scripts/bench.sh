#!/usr/bin/env bash
# Performance benchmarks (see bench/doc.go):
#   - wal-push and wal-fetch of a real 16 MiB WAL segment on file:// and on
#     s3:// (a loopback Versity gateway), with cp and lz4 -1 of the same
#     segment measured in the same run as baselines;
#   - backup-push and restore of a pgbench database (scale
#     WALVAULT_BENCH_SCALE, default 100: about 1.5 GB), with pg_basebackup
#     -Ft (-z, none, client-lz4) and untar of its output as baselines; the
#     RTO (restore, then the server started until it takes a write) against
#     the same from pg_basebackup -Ft -z's and -Ft's output;
#   - wal-push of a backlog of .ready segments (upload-concurrency 4 against
#     0, the serial case) and wal-fetch of a recovery-like sequence (prefetch
#     8 against 0, and cp from a local directory), in the WAL run;
#   - the archive keep-up test (BenchmarkKeepUp): PostgreSQL with
#     archive_command = walvault wal-push into loopback S3 under pgbench for
#     WALVAULT_KEEPUP_SECONDS (default 120), largest .ready backlog and lag;
#   - the streaming receiver (BenchmarkReceive): wal-receive --max-lag 1s
#     into loopback S3 and pg_receivewal into a local directory, both on the
#     same pgbench run of WALVAULT_RECEIVE_SECONDS (default 30), then a
#     crash and a restore of the latest state: RPO, CPU and peak RSS.
#
# Keeps the raw `go test -bench` output in bench/results/ (benchstat reads
# it) and prints medians over the -count runs and the ratios the targets are
# judged by. Needs what ./scripts/test.sh needs (PostgreSQL 15, versitygw:
# ./scripts/install-deps.sh) plus lz4, tar and gzip.
#
#   BENCH           benchmarks to run (go test -bench regexp). Unset: all of
#                   them, as four go test runs: the WAL benchmarks with
#                   BENCHTIME/COUNT, BenchmarkBackup and BenchmarkRestore
#                   with BACKUP_BENCHTIME/BACKUP_COUNT (they take minutes),
#                   BenchmarkKeepUp with KEEPUP_COUNT, then BenchmarkReceive
#                   with RECEIVE_COUNT.
#                   Set: one go test run; BENCHTIME and COUNT then default to
#                   1x and 1 when BENCH names Backup, Restore, RTO or Receive,
#                   and to 1x and 3 when it names KeepUp (BENCH=KeepUp: the
#                   keep-up test alone, WALVAULT_KEEPUP=1 is set for it).
#   BENCHTIME=20x   iterations per WAL benchmark run (go test -benchtime)
#   COUNT=3         runs of each WAL benchmark (go test -count); the table shows medians
#   BACKUP_BENCHTIME=1x, BACKUP_COUNT=1   the same for the base backup benchmarks
#   KEEPUP_COUNT=1  runs of the keep-up test in a full run (0: leave it out)
#   RECEIVE_COUNT=1 runs (crashes) of the receiver benchmark in a full run,
#                   about 1.5 minutes each (0: leave it out)
#   WALVAULT_RECEIVE_SECONDS=30   how long pgbench runs before the crash
#   WALVAULT_KEEPUP_SECONDS=120   how long pgbench runs in the keep-up test
#   WALVAULT_KEEPUP_INIT_SCALE=50 scale of the keep-up test's bulk load (pgbench -i)
#   WALVAULT_BENCH_SCALE=100   pgbench scale of the backed up database
#   WALVAULT_BENCH_LATENCY     round trips (e.g. 0s,10ms,40ms; 0s: the proxy alone) at which the S3 backlog,
#                   recovery, backup-push and restore benchmarks also run through
#                   a toxiproxy link (half each way, 1 Gbit/s), beside loopback
#   STRICT=1        exit 1 when a target is missed (ratio or peak RSS)
#
#   BENCH='Backup|Restore' ./scripts/bench.sh   # backup-push and restore only
#   BENCH=WAL ./scripts/bench.sh                # wal-push and wal-fetch only
#   BENCH=KeepUp ./scripts/bench.sh             # the archive keep-up test, 3 runs
#   BENCH=Receive ./scripts/bench.sh            # wal-receive RPO and cost, 1 crash
#   BENCH='WALPushBacklog|WALFetchRecovery' BENCHTIME=64x COUNT=1 WALVAULT_BENCH_LATENCY=0s,10ms,40ms ./scripts/bench.sh
#   BENCH='Backup/walvault=s3|Restore/walvault=s3' COUNT=3 WALVAULT_BENCH_SCALE=20 WALVAULT_BENCH_LATENCY=0s,10ms,40ms ./scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"

# Each run: regexp benchtime count.
runs=()
if [ -n "${BENCH:-}" ]; then
	if printf '%s' "$BENCH" | grep -Eq 'Backup|Restore|RTO|Receive'; then
		runs+=("$BENCH ${BENCHTIME:-1x} ${COUNT:-1}")
	elif printf '%s' "$BENCH" | grep -q 'KeepUp'; then
		runs+=("$BENCH ${BENCHTIME:-1x} ${COUNT:-3}")
	else
		runs+=("$BENCH ${BENCHTIME:-20x} ${COUNT:-3}")
	fi
else
	runs+=("^BenchmarkWAL ${BENCHTIME:-20x} ${COUNT:-3}")
	runs+=("^Benchmark(Backup|Restore|RTO)\$ ${BACKUP_BENCHTIME:-1x} ${BACKUP_COUNT:-1}")
	if [ "${KEEPUP_COUNT:-1}" != 0 ]; then
		runs+=("^BenchmarkKeepUp\$ 1x ${KEEPUP_COUNT:-1}")
	fi
	if [ "${RECEIVE_COUNT:-1}" != 0 ]; then
		runs+=("^BenchmarkReceive\$ 1x ${RECEIVE_COUNT:-1}")
	fi
fi
# BenchmarkKeepUp skips itself unless asked for: it takes minutes.
export WALVAULT_KEEPUP=1

mkdir -p bench/results
raw="bench/results/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
	# benchstat reads "key: value" lines as labels of the results below.
	dirty=""
	if [ -n "$(git status --porcelain 2>/dev/null)" ]; then dirty="-dirty"; fi
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$dirty"
	echo "nproc: $(nproc)"
	echo "scale: ${WALVAULT_BENCH_SCALE:-100}"
	echo "keepup-seconds: ${WALVAULT_KEEPUP_SECONDS:-120}"
	echo "receive-seconds: ${WALVAULT_RECEIVE_SECONDS:-30}"
	echo "latency: ${WALVAULT_BENCH_LATENCY:-none}"
} >"$raw"

for run in "${runs[@]}"; do
	read -r bench benchtime count <<<"$run"
	{
		echo "benchtime: $benchtime"
		echo "count: $count"
	} >>"$raw"
	echo "bench.sh: go test -bench '$bench' -benchtime $benchtime -count $count ./bench/ (raw output: $raw)"
	set +e
	go test -run '^$' -bench "$bench" -benchtime "$benchtime" -count "$count" -timeout 120m ./bench/ 2>&1 | tee -a "$raw"
	status=${PIPESTATUS[0]}
	set -e
	if [ "$status" -ne 0 ]; then
		echo "bench.sh: the benchmarks failed (go test exit $status); raw output in $raw" >&2
		exit "$status"
	fi
done

go run ./bench/cmd/ratios ${STRICT:+-strict} "$raw" | tee "${raw%.txt}.ratios.txt"
echo "bench.sh: raw output $raw, table ${raw%.txt}.ratios.txt"
