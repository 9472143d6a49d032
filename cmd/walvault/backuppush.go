package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/basebackup"
	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/repository"
)

// backupPushOptions are the settings and flags of backup-push.
type backupPushOptions struct {
	Config
	lockSettings
	// Incremental, Parent and FallbackFull: see basebackup.Options.
	Incremental  bool
	Parent       string
	FallbackFull bool

	encryptSettings

	PGConn            string
	Timeout           time.Duration
	Label             string
	Checkpoint        string
	NoVerifyChecksums bool
	PartSize          string
	partSize          int64 // PartSize parsed
	maxRate

	Compression repository.Setting
}

// backup-push's own multipart defaults, below the other commands' 16MiB x
// 4: backup-push's Puts share one set of part buffers (two overlap at a
// part boundary; storage/s3 bounds the buffers across them), and those were
// most of backup-push's peak RSS (110 MiB, against 64 MiB targeted for
// any database size). 5 MiB parts (S3's least) still allow objects of 48
// GiB, far above a --part-size of compressed tar; three in flight keep a
// link busy at tens of milliseconds of latency.
const (
	backupS3PartSize    = "5MiB"
	backupS3Concurrency = "3"
	// backupMemoryBase is backup-push's soft memory limit besides the S3
	// part buffers.
	backupMemoryBase = 24 << 20
)

func (o *backupPushOptions) bind(b *binder) {
	o.bindUploads(b)
	for i := range b.bound {
		switch b.bound[i].name {
		case "s3-part-size":
			b.bound[i].def = backupS3PartSize
		case "s3-concurrency":
			b.bound[i].def = backupS3Concurrency
		}
	}
	bindPGConn(b, &o.PGConn)
	bindCompression(b, &o.Compression)
	o.lockSettings.bind(b, &o.Repo)
	o.maxRate.bind(b, "limit on the bytes a second read from PostgreSQL (so on its disk reads and on the upload), such as 50MiB; unset: no limit")
	o.encryptSettings.bind(b)
	bindTimeout(b, &o.Timeout, "how long to wait for WAL to reach the repository: before the backup, for a segment archived after a WAL switch; after it, for the backup's WAL to be archived (or stored by wal-receive)")
}

func backupPushCommand() *cli.Command {
	var opts backupPushOptions
	return &cli.Command{
		Name:  "backup-push",
		Usage: "take a base backup over the replication protocol and store it in the repository",
		Description: `Runs BASE_BACKUP on a replication connection and streams each tar archive,
lz4-compressed, into the repository without touching local disk. Run it from
cron or by hand, as a role with REPLICATION (or a superuser):

   walvault backup-push --pg-conn 'host=/var/run/postgresql user=postgres'

The connection also honours the usual PGHOST, PGPORT, PGUSER, PGPASSWORD and
PGDATABASE variables and ~/.pgpass; pg_hba.conf needs a "replication" line for
the role. A backup is restorable only with the WAL from its start to its end,
and backup-list shows it as DONE once that WAL is in the repository, so the
server's WAL must reach the same repository, in one of two ways (the log says
which one the backup relies on, "WAL source: ..."):

   archive_command   archive_mode = on, archive_command = 'walvault wal-push %p'
                     (or a script that runs it); judged by its effect: when the
                     segment archived last is not in this repository,
                     backup-push runs pg_switch_wal() and waits, up to
                     --timeout, for that segment to arrive (so a new
                     repository just works); at the end it waits, up to
                     --timeout, until the archiver has stored the backup's
                     last segment (from a standby, PostgreSQL waits)
   wal-receive       walvault wal-receive streaming from an active physical slot
                     into this repository (used when archiving is not set up for
                     walvault); backup-push waits, up to --timeout, until the
                     backup's last segment is complete in the repository

Without either, the backup is refused and the message says how to set one up.
If the backup's WAL does not reach the repository within --timeout, the backup is
recorded anyway (WAITING_FOR_WALS, DONE once the WAL lands) and backup-push
exits 1.

A backup exists only once its manifest is written, last; an interrupted push
leaves parts that backup-list shows as INCOMPLETE and restore never uses.
The first failed upload, Ctrl-C or SIGTERM ends backup-push at once: the
server's backup is cancelled, the upload in flight aborted, exit 1.

With --incremental (PostgreSQL 17+, summarize_wal = on) the server sends only
what changed since the parent backup (--parent, default the newest DONE
backup of the cluster's timeline); the backup is stored like a full one and
records its parent. Where an incremental backup is impossible (PostgreSQL
15/16, summarize_wal off, WAL summaries no longer reaching back to the parent,
no parent yet) it is refused, or, with --fallback-full, a full backup is
taken instead and the log says why. In an encrypted repository the parent's
backup_manifest goes up from the plain copy backup-push kept when it stored
that backup ($XDG_CACHE_HOME/walvault, else ~/.cache/walvault), so the
parent must have been taken from this host, as this user.

With lock-mode and lock-days, every object of the backup is written under S3
Object Lock; they must match the policy walvault.json records.`,
		Flags: settingFlags(&opts,
			&cli.StringFlag{Name: "label", Usage: "backup label (default: walvault and the time backup-push asked, as an id; the id itself is the backup's start, after the checkpoint)", Destination: &opts.Label},
			&cli.StringFlag{Name: "checkpoint", Value: "fast", Usage: "fast (start at once, with an immediate checkpoint) or spread (wait for the next checkpoint, gentler on I/O)", Destination: &opts.Checkpoint},
			&cli.BoolFlag{Name: "incremental", Usage: "take an incremental backup (PostgreSQL 17+ with summarize_wal = on) on the newest DONE backup of the cluster's timeline", Destination: &opts.Incremental},
			&cli.StringFlag{Name: "parent", Usage: "with --incremental: the backup id to build on (default: the newest DONE one)", Destination: &opts.Parent},
			&cli.BoolFlag{Name: "fallback-full", Usage: "with --incremental: take a full backup instead where an incremental one is impossible (PostgreSQL 15/16, summarize_wal off, WAL summaries not reaching back to the parent, no parent), logging why", Destination: &opts.FallbackFull},
			&cli.BoolFlag{Name: "no-verify-checksums", Usage: "do not have PostgreSQL verify page checksums as it reads (a damaged page fails the backup otherwise): for a backup before repairing one; the manifest records it", Destination: &opts.NoVerifyChecksums},
			&cli.StringFlag{Name: "part-size", Value: "256MiB", Usage: "raw bytes per stored part of a tar archive (at least 1MiB); parts restore in parallel", Destination: &opts.PartSize},
		),
		Action: repoAction(&opts, backupPush),
	}
}

func (o *backupPushOptions) precheck(c *cli.Context) error {
	if err := noArgs(c, "backup-push takes no arguments"); err != nil {
		return err
	}
	if cp := o.Checkpoint; cp != "fast" && cp != "spread" {
		return usagef("--checkpoint must be fast or spread, not %q", cp)
	}
	if o.Parent != "" && !o.Incremental {
		return usagef("--parent is for incremental backups: add --incremental")
	}
	if o.FallbackFull && !o.Incremental {
		return usagef("--fallback-full is for incremental backups: add --incremental")
	}
	var err error
	o.partSize, err = parseSize(o.PartSize)
	if err != nil || o.partSize < basebackup.MinPartSize {
		return usagef("--part-size must be a size of at least 1MiB, such as 256MiB")
	}
	return nil
}

// backupPush has no total deadline: a backup takes as long as the database
// is big. Ctrl-C or SIGTERM cancels it; stalls are caught by the storage
// transport's timeouts.
func backupPush(c *cli.Context, opts *backupPushOptions, s *session) error {
	// A soft memory limit: the collector runs before the heap doubles, so
	// peak RSS stays near what a backup holds (the S3 part buffers, shared by its Puts,
	// the compressor's, hasher's and read buffers), whatever the database
	// size; the buffers are pooled, so collections are rare.
	debug.SetMemoryLimit(backupMemoryBase + opts.S3.PartSize*int64(max(opts.S3.Concurrency, 1)))

	host, _ := os.Hostname()
	start := time.Now()
	m, err := basebackup.Push(s.ctx, s.b, basebackup.Options{
		ConnString:        opts.PGConn,
		Label:             opts.Label,
		Checkpoint:        opts.Checkpoint,
		NoVerifyChecksums: opts.NoVerifyChecksums,
		Compression:       opts.Compression.Compression,
		ZstdLevel:         opts.Compression.Level,
		PartSize:          opts.partSize,
		Host:              host,
		Version:           walvaultVersion(),
		Lock:              opts.policy(),
		WALTimeout:        opts.Timeout,
		QueryTimeout:      opts.Timeout,
		Incremental:       opts.Incremental,
		Parent:            opts.Parent,
		FallbackFull:      opts.FallbackFull,
		Recipients:        opts.Recipients,
		ManifestCopies:    manifestCopiesDir(),
		Log:               s.log,
		Progress:          s.out,
		MaxRate:           opts.MaxRate,
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "XX001" && !opts.NoVerifyChecksums {
			// data_corrupted: a page's checksum did not match.
			err = fmt.Errorf("%w; a damaged page (PostgreSQL's log names the file and block): repair it, or take a backup anyway before repairing it with --no-verify-checksums", err)
		}
		return lockHint(err, opts.lockSettings, s.b.Location())
	}
	kind := ""
	if m.IsIncremental() {
		kind = " (incremental on " + m.Parent + ")"
	}
	fmt.Fprintf(c.App.Writer, "backup %s%s done: %s of data stored as %s, WAL %s to %s (LSN %s to %s), in %s\n",
		m.ID, kind, units.Bytes(m.RawBytes), units.Bytes(m.Stored), m.StartWAL, m.StopWAL, m.StartLSN, m.StopLSN, time.Since(start).Round(time.Second/10))
	return nil
}

// isTerminal says whether w is a terminal: progress is drawn as a bar
// there, and logged every few seconds elsewhere.
func isTerminal(w io.Writer) bool { return progress.IsTerminal(w) }

// manifestCopiesDir is where backup-push keeps plain copies of the
// backup_manifests of an encrypted repository (basebackup.Options.
// ManifestCopies, which Push uses only for an encrypted one): walvault's
// folder of the user's cache directory ($XDG_CACHE_HOME, else ~/.cache);
// "" without one, and then Push's refusal of an incremental backup says
// to set it.
func manifestCopiesDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "walvault")
}
