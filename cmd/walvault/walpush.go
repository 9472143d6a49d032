package main

import (
	"math"
	"os"
	"runtime/debug"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
)

// pushMemoryLimit is the Go heap's soft limit during wal-push.
const pushMemoryLimit = 24 << 20

// walPushOptions are the settings wal-push reads.
type walPushOptions struct {
	Config
	lockSettings
	encryptSettings
	totalTimeout
	helperSetting
	Compression       repository.Setting
	UploadConcurrency int
}

func (o *walPushOptions) bind(b *binder) {
	o.bindUploads(b)
	o.helperSetting.bind(b)
	bindCompression(b, &o.Compression)
	o.lockSettings.bind(b, &o.Repo)
	o.encryptSettings.bind(b)
	b.add("upload-concurrency", intIn("upload-concurrency", &o.UploadConcurrency, 0, 64))
	bindTimeout(b, &o.Timeout, "deadline for the whole push, retries included: storage errors are retried until it, and a stalled transfer fails within it")
}

func walPushCommand() *cli.Command {
	var opts walPushOptions
	return &cli.Command{
		Name:      "wal-push",
		Usage:     "archive one WAL file (archive_command)",
		ArgsUsage: "PATH",
		Description: `Use it as PostgreSQL's archive_command:

   archive_mode    = on
   archive_command = 'walvault wal-push %p'

PostgreSQL runs it in the data directory with %p, the WAL file's path. The
file's header is checked against its name and the repository's cluster, the
file is compressed and uploaded with a conditional create, and walvault exits
0 only once the object is durable. A file already archived with the same
sha256 is a success ("already archived"); one archived with different content
is an error that names both checksums, and nothing is overwritten.

With lock-mode governance or compliance and lock-days N, every object is
written under S3 Object Lock until N days later. The policy is recorded in
walvault.json by the first push; a push configured with another policy is
refused.

Exit codes: 0 archived (or already archived), 1 failed (PostgreSQL retries),
2 bad arguments or configuration.

Transient storage errors (refused or reset connections, timeouts, 5xx,
throttling) are retried with backoff until --timeout (default 2m), then the
push fails. The deadline can be short because a failed push costs little:
PostgreSQL runs archive_command again itself and keeps the segment in pg_wal
meanwhile, whereas a push that waits holds up every segment behind it.
(wal-fetch, whose failure stops recovery, waits 10m by default.)

When more WAL files wait as .ready in pg_wal/archive_status, up to
upload-concurrency (default 8) of the next ones are pushed too, in parallel,
and recorded in pg_wal/walvault/pushed once durable. PostgreSQL's later call
for such a file exits 0 at once only if it is provably the file pushed: the
recorded size and mtime, and the recorded sha256 or, for a file unchanged for
3 s before it was pushed ahead, the same inode and change time; otherwise it
is pushed normally. archive_status itself is
never touched, and a failed push ahead is only logged. The requested file
comes first: pushes ahead still running when half of --timeout has passed
without it being durable are cut off, so that it has the link to itself,
and calls push nothing ahead for the next 10 minutes, or until a call's own
file takes at most 1/(4 x (upload-concurrency + 1)) of --timeout (the link
is fast again).

The repository identity (walvault.json: cluster, segment size, compression,
lock policy) is remembered in pg_wal/walvault/identity for 5 minutes after it
was read; each push still checks the segment against it, and a mismatch, an
older copy, or a failed or conflicting upload makes the push read
walvault.json again.`,
		Flags:  settingFlags(&opts),
		Action: repoAction(&opts, walPush),
	}
}

func (o *walPushOptions) precheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("wal-push takes exactly one argument, the WAL file's path (archive_command = 'walvault wal-push %%p')")
	}
	return nil
}

func walPush(c *cli.Context, opts *walPushOptions, s *session) error {
	log, b := s.log, s.b
	defer startAutoHelper(c, opts.AutoHelper, opts.Config, log)
	var pipeline *archive.Pipeline
	if h := helperOf(c); h != nil {
		pipeline = h.pipeline
	} else {
		limitPushMemory(opts.UploadConcurrency)
	}

	host, _ := os.Hostname()
	start := time.Now()
	res, err := archive.PushAhead(s.ctx, b, c.Args().First(), archive.AheadOptions{
		Options: archive.Options{
			Compression: opts.Compression.Compression,
			ZstdLevel:   opts.Compression.Level,
			Host:        host,
			Version:     walvaultVersion(),
			Lock:        opts.policy(),
			Recipients:  opts.Recipients,
			// PostgreSQL starts one wal-push per segment: remember the
			// checked repository identity across them (pg_wal/walvault).
			IdentityCacheTTL: archive.DefaultIdentityCacheTTL,
			Log:              log,
		},
		Concurrency: opts.UploadConcurrency,
		Pipeline:    pipeline,
	})
	if err != nil {
		return lockHint(err, opts.lockSettings, b.Location())
	}
	msg, proof := "archived", []any{}
	switch {
	case res.Skipped:
		msg = "already archived: pushed ahead by an earlier wal-push, unchanged since"
		proof = []any{"unchanged_by", res.Proof}
	case res.AlreadyArchived:
		msg = "already archived with the same content"
	}
	log.Info(msg, append([]any{"segment", res.File.String(), "key", res.Key, "bytes", res.RawSize, "ratio", ratio(res.StoredSize, res.RawSize)},
		append(proof, "elapsed", time.Since(start).Round(time.Millisecond))...)...)
	return nil
}

// limitPushMemory keeps a wal-push process's heap small. (A wal-helper's
// calls share its process, which keeps Go's defaults.) A push holds one
// compressed segment in memory; pushes ahead hold one segment each.
func limitPushMemory(concurrency int) {
	limitCallMemory(pushMemoryLimit * int64(1+concurrency))
}

// limitCallMemory sets the Go heap's soft limit of a process that serves
// one call of PostgreSQL's (wal-push, wal-fetch) and makes it the
// collector's only trigger. The limit makes the collector return garbage
// early instead of letting the heap double, which keeps the call's peak
// RSS low (see the benchmarks). A call on a 16 MiB segment makes little
// garbage and ends before reaching it, and a collection meanwhile would
// take one of the two cores that compress, decode and hash (measured:
// several ms of CPU per push, no lower peak RSS).
func limitCallMemory(limit int64) {
	debug.SetMemoryLimit(limit)
	debug.SetGCPercent(-1)
}

// ratio is stored bytes over raw bytes for the log, a number (nil when
// unknown).
func ratio(stored, raw int64) any {
	if stored < 0 || raw <= 0 {
		return nil // unknown: null in JSON
	}
	return math.Round(float64(stored)/float64(raw)*1000) / 1000
}
