// Package bench holds walvault's performance benchmarks: wal-push and
// wal-fetch of a real 16 MiB WAL segment on both backends (file:// and
// s3:// on a loopback Versity S3 Gateway), next to `cp` and `lz4 -1` of the
// same segment measured in the same run as baselines.
//
// The package has no code of its own: everything is in wal_bench_test.go,
// so `go test ./...` compiles it and runs nothing (there are no Test
// functions, and the servers start only when a benchmark needs them).
//
//	go test -run '^$' -bench . -benchtime 20x ./bench/
//	./scripts/bench.sh              # -count 3, raw output in bench/results/, ratio table
//
// Benchmarks and what they run, one process per segment as PostgreSQL runs
// archive_command and restore_command:
//
//	BenchmarkWALPush/baseline=cp            cp pg_wal/SEG OUT/
//	BenchmarkWALPush/baseline=lz4-1         lz4 -1 -q -f pg_wal/SEG OUT/SEG.lz4
//	BenchmarkWALPush/baseline=lz4-1+fsync   the same, then sync(1) of the file and its directory
//	BenchmarkWALPush/walvault=file|s3       walvault wal-push pg_wal/SEG
//	BenchmarkWALPushIncompressible/...      lz4 -1 and wal-push of a segment lz4 cannot shrink (worst case for memory)
//	BenchmarkWALPushInProcess/file|s3       archive.Push in this process (allocations, no start-up)
//	BenchmarkWALPushStages/...              the parts of a push alone: process start, read, sha256, lz4, Put
//	BenchmarkWALFetch/baseline=cp           cp SEG DEST
//	BenchmarkWALFetch/baseline=lz4-d        lz4 -d -q -f SEG.lz4 DEST
//	BenchmarkWALFetch/walvault=file|s3      walvault wal-fetch SEG DEST
//	BenchmarkWALFetchInProcess/file|s3      restore.Fetch in this process
//
// Every benchmark sets 16 MiB per operation, so `go test` prints MB/s; the
// exec'd ones also report peak-RSS-MiB, the largest resident set of any of
// their processes. That figure is not the ru_maxrss of a child this binary
// execs: Linux folds the exec'ing process's own peak RSS into it (tens of
// MiB here, even for cp). After the timed loop, each exec'd benchmark runs
// its commands b.N more times through bench/internal/maxrss, a 2 MiB
// helper that reports its child's ru_maxrss; the timed loop itself execs
// directly. GNU time(1) agrees with the helper to within 1%.
//
// Targets (from the issue), judged by scripts/bench.sh as ratios against
// the baselines of the same run, never as absolute times and never in
// unit tests: one wal-push of a 16 MiB segment to loopback S3 within 1.5x
// of `lz4 -1` to a local file (stretch: 1.0x), and wal-push peak RSS under
// 40 MiB.
//
// Setup, once per test binary and only when a benchmark runs: build
// walvault, start PostgreSQL 15 (archiving off), fill pg_wal with pgbench
// (-i -s 10, a CHECKPOINT so the next writes carry full-page images as on
// a production server, then -T runs), and copy one segment written
// entirely by the pgbench run, neither the first nor the last. Because
// wal-push refuses a name already archived with other content and
// short-circuits the same content ("already archived"), every push gets a
// fresh segment name: a copy of the real segment whose first page header
// carries the new name's start LSN (xlp_pageaddr), the only header walvault
// checks. The copies are written to a tmpfs spool (pg_wal is in the page
// cache when the archiver runs) before the timer starts; outputs go to disk,
// and pushed objects are deleted after each run, outside the timer.
//
// Environment: what internal/testenv needs (PostgreSQL 15, versitygw; see
// scripts/install-deps.sh), plus cp, lz4, sync and sh on PATH. WALVAULT_BIN
// benchmarks a given binary instead of building ./cmd/walvault.
package bench
