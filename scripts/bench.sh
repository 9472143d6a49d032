#!/usr/bin/env bash
# Performance benchmarks: wal-push and wal-fetch of a real 16 MiB WAL
# segment on file:// and on s3:// (a loopback Versity gateway), with cp and
# lz4 -1 of the same segment measured in the same run as baselines. See
# bench/doc.go.
#
# Keeps the raw `go test -bench` output in bench/results/ (benchstat reads
# it) and prints medians over the -count runs and the ratios the targets are
# judged by. Needs what ./scripts/test.sh needs (PostgreSQL 15, versitygw:
# ./scripts/install-deps.sh) plus lz4.
#
#   BENCHTIME=20x   iterations per benchmark run (go test -benchtime)
#   COUNT=3         runs of each benchmark (go test -count); the table shows medians
#   BENCH=.         benchmarks to run (go test -bench regexp)
#   STRICT=1        exit 1 when a target is missed (ratio or peak RSS)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"

benchtime="${BENCHTIME:-20x}"
count="${COUNT:-3}"
mkdir -p bench/results
raw="bench/results/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
	# benchstat reads "key: value" lines as labels of the results below.
	dirty=""
	if [ -n "$(git status --porcelain 2>/dev/null)" ]; then dirty="-dirty"; fi
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$dirty"
	echo "benchtime: $benchtime"
	echo "count: $count"
	echo "nproc: $(nproc)"
} >"$raw"

echo "bench.sh: go test -bench ${BENCH:-.} -benchtime $benchtime -count $count ./bench/ (raw output: $raw)"
set +e
go test -run '^$' -bench "${BENCH:-.}" -benchtime "$benchtime" -count "$count" -timeout 60m ./bench/ 2>&1 | tee -a "$raw"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
	echo "bench.sh: the benchmarks failed (go test exit $status); raw output in $raw" >&2
	exit "$status"
fi

go run ./bench/cmd/ratios ${STRICT:+-strict} "$raw" | tee "${raw%.txt}.ratios.txt"
echo "bench.sh: raw output $raw, table ${raw%.txt}.ratios.txt"
