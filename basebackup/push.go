package basebackup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/archiveproof"
	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/internal/throttle"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// DefaultPartSize is how many raw bytes of a tar stream go into one stored
// part unless Options say otherwise.
const DefaultPartSize int64 = 256 << 20

// MinPartSize is the smallest part size Options accept.
const MinPartSize int64 = 1 << 20

// Options are backup-push's settings, resolved by cmd.
type Options struct {
	// ConnString is a libpq-style conninfo ("host=db1 user=backup") or URL;
	// the PG* environment variables, ~/.pgpass and service files apply as
	// with libpq. Empty means the environment alone.
	ConnString string
	// Label is the backup label; empty means "walvault <id>".
	Label string
	// Checkpoint is "fast" (the default: an immediate checkpoint) or
	// "spread" (wait for a regular, throttled one).
	Checkpoint string
	// NoVerifyChecksums asks PostgreSQL not to verify page checksums as it
	// reads (a damaged page otherwise fails the backup); the manifest
	// records it.
	NoVerifyChecksums bool
	// Incremental takes an incremental backup (PostgreSQL 17+, summarize_wal
	// on) on Parent, or, when Parent is empty, on the newest DONE backup of
	// the cluster on the server's timeline.
	Incremental bool
	Parent      string
	// FallbackFull, with Incremental, takes a full backup where an
	// incremental one is impossible (see IncrementalImpossible), saying
	// why; without it that is refused.
	FallbackFull bool
	// Compression of the stored parts (zstd at ZstdLevel; 0: its
	// default); empty means the one walvault.json was created with.
	// Each part records its own in the manifest, so it may differ from
	// one backup to the next.
	Compression repository.Compression
	ZstdLevel   int
	// PartSize is the number of raw bytes of a tar stream per stored part;
	// 0 means DefaultPartSize, at least MinPartSize.
	PartSize int64
	// Host and Version are recorded in the manifest and with every object.
	Host, Version string
	// Lock is the Object Lock policy: every object of the backup is locked
	// until Now plus Lock.Days when it is written. It must be the policy
	// walvault.json records, or the backup is refused (an error wrapping
	// ErrRefused and repository.ErrLockPolicy). The zero value is off.
	Lock repository.LockPolicy
	// Recipients, when set, encrypts every object of the backup (after
	// compression); the repository must be encrypted too
	// (repository.ErrEncryptionSettings), and the other way round.
	Recipients *crypt.Recipients
	// ManifestCopies, with Recipients, is the directory where backup-push
	// keeps a plain copy of each backup's backup_manifest (the newest few
	// per repository; PostgreSQL 17 and later): an incremental backup of
	// an encrypted repository uploads its parent's copy, since the stored
	// one opens only with a secret key. Empty: none kept, and such incremental backups are
	// impossible.
	ManifestCopies string
	// Log receives one line at the start and one at the end, server notices
	// and, without a terminal, progress. nil discards.
	Log *slog.Logger
	// Progress shows the wait for the checkpoint and then the bytes read
	// of the server's estimate (nil: nothing): a bar on a terminal, else
	// a line through Log every few seconds (keys backup_id, bytes, total,
	// elapsed, ...).
	Progress *progress.Output
	// MaxRate, when above 0, limits the bytes read from PostgreSQL to this
	// many a second (and so what is read from its disks, and uploaded).
	MaxRate int64
	// Now is the clock for ids and recorded times; nil means time.Now.
	Now func() time.Time
	// WALTimeout bounds each wait for WAL to reach the repository: before
	// the backup, for the segment a WAL switch completes when archiving is
	// not yet seen to reach it (archiveproof); after it, for the archiver
	// to report the backup's last segment archived, or, when wal-receive
	// is the WAL source, for the backup's WAL to be complete in the
	// repository. 0 means DefaultWALTimeout. (From a standby archiving
	// with archive_mode = always, PostgreSQL itself waits for archiving
	// before BASE_BACKUP ends.)
	WALTimeout time.Duration
	// QueryTimeout bounds each question asked of PostgreSQL before the
	// backup starts (IDENTIFY_SYSTEM, settings, slots, the archiver's
	// state): a server that accepted the connection and then stopped
	// answering must fail the command, not hang it. 0 means
	// DefaultWALTimeout, like --timeout.
	QueryTimeout time.Duration
}

// DefaultWALTimeout is Options.WALTimeout's default.
const DefaultWALTimeout = 2 * time.Minute

func (o Options) withDefaults() (Options, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	switch o.Checkpoint {
	case "":
		o.Checkpoint = "fast"
	case "fast", "spread":
	default:
		return o, fmt.Errorf("unknown checkpoint mode %q: use fast or spread", o.Checkpoint)
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.WALTimeout <= 0 {
		o.WALTimeout = DefaultWALTimeout
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultWALTimeout
	}
	if o.PartSize < MinPartSize {
		return o, fmt.Errorf("part size %d is too small: use at least %d bytes (1 MiB)", o.PartSize, MinPartSize)
	}
	if o.Compression != "" {
		if _, err := repository.ParseCompression(string(o.Compression)); err != nil {
			return o, err
		}
	}
	return o, nil
}

// Push takes a base backup of the server opts.ConnString reaches and stores
// it in b as backups/<id>/: the tar streams in compressed parts, then
// PostgreSQL's backup_manifest, then, last, walvault's manifest, which it
// returns. Nothing is written to local disk.
//
// Before the backup it refuses (errors wrapping ErrRefused) a server whose
// WAL does not reach this repository and a repository that belongs to
// another cluster. WAL reaches the repository through archive_command,
// judged by its effect, not its words: the archiver's last segment is
// there, or else, when no wal-receive streams from the server either,
// Push switches WAL and waits up to opts.WALTimeout for the completed
// segment to arrive (so a repository no WAL has reached yet, and a
// wrapper script that runs wal-push, both work). Otherwise WAL reaches it
// through wal-receive streaming from an active physical slot into this
// repository. It logs which ("WAL source: ..."). PostgreSQL does not wait
// for the backup's WAL (but on a standby with archive_mode = always), so
// Push does: the manifest is written once the archiver reports the
// backup's last segment archived, or, with wal-receive or on a standby
// with archive_mode = on, once every segment from the backup's start to
// its stop is complete in the repository, which makes the backup DONE. If that takes longer than opts.WALTimeout, the manifest
// is written anyway (the backup shows as WAITING_FOR_WALS and becomes DONE
// when the segment lands) and Push returns an error saying so.
//
// On any other failure, the context's included, it returns an error and
// writes no manifest: the parts stored so far make an incomplete backup,
// which backup-list shows as such and restore never uses. The first failed
// upload ends the backup at once, whatever the server is doing (it may be
// waiting for archive_command, which the same outage may block): Push
// stops reading, cancels the BASE_BACKUP on the server and closes the
// connection, and the storage aborts the upload in flight. A cancelled
// context (Ctrl-C, SIGTERM) ends it the same way.
func Push(ctx context.Context, b storage.Backend, opts Options) (pushed repository.BackupManifest, pushErr error) {
	var parent *repository.BackupManifest // of an incremental backup
	defer func() {
		if parent != nil && pushErr != nil {
			pushErr = incrementalError(pushErr, parent)
		}
		pushed, pushErr = fallBackToFull(ctx, b, opts, pushed, pushErr)
	}()
	opts, err := opts.withDefaults()
	if err != nil {
		return repository.BackupManifest{}, err
	}
	cfg, err := pg.ParseConfig(opts.ConnString, "walvault")
	if err != nil {
		return repository.BackupManifest{}, err
	}

	// The replication connection first: a role that may not take backups
	// learns so before anything else.
	w, err := pg.Open(ctx, withReadBuffer(cfg), true)
	if err != nil {
		return repository.BackupManifest{}, err
	}
	defer w.Close()
	qctx, cancel := context.WithTimeout(ctx, opts.QueryTimeout)
	sys, err := pg.IdentifySystem(qctx, w)
	cancel()
	if err != nil {
		return repository.BackupManifest{}, err
	}

	// The label's id is looked for (a listing) while preflight asks its
	// questions: over a network each request in series costs a round trip.
	var asked <-chan askedID
	if opts.Label == "" {
		actx, cancel := context.WithCancel(ctx)
		asked = askBackupID(actx, b, opts.Now)
		defer func() {
			cancel()
			for range asked { // until its goroutine has ended
			}
		}()
	}
	settings, archiving, receivers, known, err := preflight(ctx, cfg, b, sys, opts)
	if err != nil {
		return repository.BackupManifest{}, err
	}
	whose := "the server's"
	switch {
	case settings.InRecovery && settings.PrimaryClockKnown:
		whose = "the primary's (as the standby's WAL receiver measures it)"
	case settings.InRecovery:
		whose = "the standby's"
		opts.Log.Warn("the primary's clock could not be compared with this host's (the standby has no WAL receiver, or this role may not read pg_stat_wal_receiver: GRANT pg_read_all_stats): the backup's times are the standby's, raised to the newest commit it replayed; recovery targets are the primary's times",
			"hint", "keep the clocks of the primary and standby right (NTP)")
	}
	if off := settings.ClockOffset; off.Abs() >= time.Second {
		way := "ahead of"
		if off < 0 {
			way = "behind"
		}
		opts.Log.Warn(fmt.Sprintf("%s clock is %s %s this host's: the backup's times are recorded by it", whose, off.Abs().Round(time.Millisecond), way),
			"hint", "set the clocks right (NTP): wal-push, the drill and check time things by this host's clock")
	}
	// Read again only when preflight found none: then the WAL it waited
	// for has created it since.
	var ident repository.Identity
	if known != nil {
		ident = *known
	} else if ident, err = checkRepository(ctx, b, sys, settings); err != nil {
		return repository.BackupManifest{}, err
	}
	if err := ident.CheckLock(opts.Lock, b.Location()); err != nil {
		return repository.BackupManifest{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if err := ident.CheckEncryption(opts.Recipients, b.Location()); err != nil {
		return repository.BackupManifest{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if _, err := repository.RecordRecipients(ctx, b, ident, opts.Recipients, opts.Host, opts.Now(), opts.Lock.Retention(opts.Now())); err != nil {
		return repository.BackupManifest{}, err
	}
	var src walSource
	if !archiving {
		if src, err = confirmReceiver(ctx, b, ident.Compression, sys.Timeline, settings.SegmentSize, receivers); err != nil {
			return repository.BackupManifest{}, err
		}
	}
	if src.Slot == "" {
		opts.Log.Info("WAL source: archive_command")
	} else if src.Flush == 0 {
		opts.Log.Info("WAL source: "+src.String(), "slot", src.Slot,
			"note", "its flushed position is not visible to this role (GRANT pg_monitor), so only the end of the backup confirms its WAL reaches this repository")
	} else {
		opts.Log.Info("WAL source: "+src.String(), "slot", src.Slot, "flushed", src.Flush.String())
	}
	if ident.Hidden {
		opts.Log.Warn(repository.IdentityKey+" is hidden by a delete marker (someone deleted it without a version id); the backup goes on with its hidden version",
			"key", repository.IdentityKey, "hint", "run `walvault repair` to make it visible again")
	}
	if ident.Overwritten != "" {
		opts.Log.Warn(repository.IdentityKey+" was written over; the backup goes on with walvault's first version", "why", ident.Overwritten, "hint", repository.IdentityOverwrittenFix)
	}
	if opts.Incremental {
		if parent, err = prepareIncremental(ctx, w, b, sys, settings, opts.Parent); err != nil {
			return repository.BackupManifest{}, err
		}
		opts.Log.Info("incremental backup", "parent", parent.ID, "parent_start_lsn", parent.StartLSN)
	}
	if opts.Compression == "" {
		opts.Compression = ident.Compression
	}

	// The backup's id is its start, known once PostgreSQL answers (after
	// the checkpoint); the label, sent before, names the time it was
	// asked for.
	label := opts.Label
	var freeID string
	if label == "" {
		a := <-asked
		if a.err != nil {
			return repository.BackupManifest{}, a.err
		}
		label, freeID = "walvault "+a.id, a.id
	}
	// A primary's BASE_BACKUP does not wait for archive_command (WAIT
	// false): PostgreSQL's own wait looks at the archive status once a
	// second, which cost every backup about a second. Push waits for the
	// same thing itself, without the second: until the archiver reports
	// the backup's last segment archived (waitForArchiver), or, with
	// wal-receive, until the repository holds it (waitForWAL). On a
	// standby the backup's last segment completes only when the primary
	// fills or switches it; there too Push waits on the repository
	// (waitForWAL), whatever archive_mode says: PostgreSQL's own wait (a
	// standby with archive_mode = always) has no bound and says nothing,
	// and a quiet primary kept a nightly backup waiting for hours
	// (explore25c F4), where walvault's logs what it waits for and ends at
	// --timeout with the backup WAITING_FOR_WALS.
	cmd, err := baseBackupCommand(label, opts.Checkpoint == "fast", false)
	if err != nil {
		return repository.BackupManifest{}, err
	}
	if opts.NoVerifyChecksums {
		cmd = unverifiedChecksumsCommand(cmd)
		opts.Log.Warn("page checksums are not verified: a damaged page is copied as it is", "hint", "repair it (the server log and pg_amcheck name it), then take a backup with checksums verified")
	}
	if settings.InRecovery {
		opts.Log.Info("taking the backup from a standby")
	}
	// Copies only where incremental backups can build on them.
	var copies manifestCopies
	if opts.Recipients != nil && settings.VersionNum >= minIncrementalVersion {
		copies = newManifestCopies(opts.ManifestCopies, b.Location(), opts.Log)
	}
	if parent != nil {
		// The manifest goes up on the connection BASE_BACKUP then runs on.
		if err := uploadParentManifest(ctx, w, b, parent, copies, opts.Recipients); err != nil {
			return repository.BackupManifest{}, err
		}
		cmd = incrementalCommand(cmd)
	}

	plainCopy := copies.create()
	defer plainCopy.discard()
	m, err := stream(ctx, w, cmd, b, opts, backupInfo{label: label, freeID: freeID, sys: sys, settings: settings, manifestCopy: plainCopy})
	id := m.ID
	if err != nil {
		abandonBackup(w, opts.Log, id)
		if id == "" {
			what := "failed"
			if ctx.Err() != nil {
				what = "was interrupted"
			}
			return repository.BackupManifest{}, fmt.Errorf("backup-push %s before PostgreSQL started the backup (nothing was stored): %w", what, err)
		}
		if ctx.Err() != nil {
			return repository.BackupManifest{}, fmt.Errorf("backup %s was interrupted and not recorded (any parts already stored show as incomplete in backup-list): %w", id, err)
		}
		if errors.Is(err, storage.ErrExists) {
			// Every object of a backup is a conditional create: one
			// already there is another backup-push's, which started
			// in the same second and took this id.
			return repository.BackupManifest{}, fmt.Errorf("backup %s failed and was not recorded: another backup-push started a backup in the same second and holds this id (the objects under backups/%s/ are its); run backup-push again: %w", id, id, err)
		}
		return repository.BackupManifest{}, fmt.Errorf("backup %s failed and was not recorded (any parts already stored show as incomplete in backup-list): %w", id, err)
	}
	if settings.InRecovery {
		// A standby's clock, or its upstream's (a cascading standby's
		// WAL receiver measures the standby it streams from), may not be
		// the primary's, whose commit timestamps recovery targets are.
		// The backup holds every commit replayed by its end, so it
		// stopped no earlier than the newest of them: a restore to a time
		// before a commit it holds never picks it.
		at, ok, err := lastReplayedCommit(ctx, cfg, opts.QueryTimeout)
		if err != nil {
			opts.Log.Warn("could not read the newest commit the standby replayed; the backup's stop time is the clock's alone", "error", err)
		}
		if ok && at.After(m.StopTime) {
			opts.Log.Warn("the backup's stop time is later by the primary's commit timestamps than by the clock measured: recorded by the former", "measured", m.StopTime.Format(time.RFC3339Nano), "last_replayed_commit", at.UTC().Format(time.RFC3339Nano))
			m.StopTime = at.UTC()
		}
	}
	m.Type = repository.BackupFull
	m.ChecksumsUnverified = opts.NoVerifyChecksums
	if parent != nil {
		m.Type, m.Parent = repository.BackupIncremental, parent.ID
	}
	// The oldest format that says all of it: an older walvault refuses a
	// manifest it could misread.
	m.FormatVersion = m.NeededFormatVersion()
	var late error
	if src.Slot == "" && !settings.InRecovery {
		late = waitForArchiver(ctx, cfg, b, ident.Compression, m, opts)
	} else {
		late = waitForWAL(ctx, b, ident.Compression, m, src, opts)
	}
	var timedOut *walTimeoutError
	if late != nil && !errors.As(late, &timedOut) {
		if ctx.Err() != nil {
			return repository.BackupManifest{}, fmt.Errorf("backup %s was interrupted and not recorded while it waited for its WAL (its parts show as incomplete in backup-list): %w", id, late)
		}
		return repository.BackupManifest{}, fmt.Errorf("backup %s was not recorded (its parts show as incomplete in backup-list): %w", id, late)
	}
	if late == nil {
		if err := walStillStored(ctx, b, m); err != nil {
			return repository.BackupManifest{}, fmt.Errorf("backup %s was not recorded (its parts show as incomplete in backup-list): %w", id, err)
		}
		m.WALStored = true
	}
	if err := repository.WriteBackupManifest(ctx, b, m, opts.Lock.Retention(opts.Now())); err != nil {
		return repository.BackupManifest{}, fmt.Errorf("backup %s: every part is stored, but its manifest is not, so it does not count as a backup: %w", id, err)
	}
	plainCopy.keep(id)
	if late != nil {
		return m, late
	}
	opts.Log.Info("backup done", "backup_id", id, "start_lsn", m.StartLSN, "stop_lsn", m.StopLSN,
		"bytes", m.RawBytes, "stored_bytes", m.Stored, "elapsed", m.StopTime.Sub(m.StartTime).Round(time.Millisecond))
	return m, nil
}

// readBufferSize is the read buffer of the replication connection. pgx
// reads a socket in 8 KiB steps, a system call or two for each 32 KiB
// CopyData message of a base backup; one large buffer reads whatever the
// socket holds at once. In the profile of a 1.5 GiB backup this halved the
// CPU time of socket reads (1.1 to 0.55 s) and cut the scheduler's from
// 0.8 to 0.3 s.
const readBufferSize = 1 << 20

// withReadBuffer returns a copy of cfg whose connections read the server
// through a readBufferSize buffer.
func withReadBuffer(cfg *pgx.ConnConfig) *pgx.ConnConfig {
	c := cfg.Copy()
	c.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, readBufferSize), w)
	}
	return c
}

// abandonBackup ends a BASE_BACKUP that failed on walvault's side, so the
// server ends it too, at once, wherever it is: a cancel request interrupts
// the walsender even while it waits for archive_command to archive the
// backup's last segment (a wait that notices a gone client only when it
// next writes to it, a minute later), and closing the connection stops it
// while it sends data. Either way PostgreSQL aborts the backup on its
// side; nothing of it stays behind on the server, and the next backup-push
// starts afresh.
func abandonBackup(w *pg.Conn, log *slog.Logger, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), abandonTimeout)
	defer cancel()
	if err := w.CancelRequest(ctx); err != nil {
		log.Debug("cancel request to PostgreSQL failed; closing the connection ends the backup there", "backup_id", id, "error", err)
	}
	w.Close()
}

// abandonTimeout bounds the cancel request of abandonBackup.
const abandonTimeout = 5 * time.Second

// preflight reads the server's settings on a normal connection and checks
// that its WAL reaches walvault: through archive_command (archiving),
// proven by its effect (archiveproof: the archiver's last segment is in
// the repository, or one completed by a WAL switch arrives there within
// opts.WALTimeout), or else through wal-receive on one of receivers, which
// Push confirms against the repository. A repository of another cluster
// is refused before anything is waited for.
func preflight(ctx context.Context, cfg *pgx.ConnConfig, b storage.Backend, sys pg.SystemInfo, opts Options) (s serverSettings, archiving bool, receivers []slotInfo, known *repository.Identity, err error) {
	w, err := pg.Open(ctx, cfg, false)
	if err != nil {
		return serverSettings{}, false, nil, nil, err
	}
	defer w.Close()
	// Each question gets its own deadline; the waits for WAL have theirs.
	ask := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, opts.QueryTimeout) }
	qctx, cancel := ask()
	s, err = readSettings(qctx, w, cfg.User)
	cancel()
	if err != nil {
		return serverSettings{}, false, nil, nil, err
	}
	if err := checkVersion(s); err != nil {
		return serverSettings{}, false, nil, nil, err
	}
	// What is wrong with the repository is said before any wait, and
	// before anything else chooseSource found. Its identity is read
	// beside the cheap look at the archiver's last file (which reads it
	// too, beside its own request): a round trip less in series.
	var (
		ident    repository.Identity
		identErr error
	)
	identRead := make(chan struct{})
	go func() {
		defer close(identRead)
		ident, identErr = checkRepository(ctx, b, sys, s)
	}()
	defer func() { <-identRead }()
	checked := func() error {
		<-identRead
		switch {
		case errors.Is(identErr, errNoWAL):
			return nil
		case identErr != nil:
			return identErr
		}
		if err := ident.CheckLock(opts.Lock, b.Location()); err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		if err := ident.CheckEncryption(opts.Recipients, b.Location()); err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		known = &ident
		return nil
	}
	srv := archiveproof.Server{Settings: s, SystemID: sys.SystemID, Timeline: sys.Timeline, User: cfg.User, HistoryProves: true}
	probe := archiveProbe{
		seen: func() (bool, error) {
			qctx, cancel := ask()
			defer cancel()
			p, seen, err := archiveproof.LastArchived(qctx, w, b, srv)
			if seen {
				opts.Log.Info("archiving reaches the repository: " + p.String())
			}
			return seen, err
		},
		prove: func() error {
			if err := checked(); err != nil {
				return err
			}
			srv.Identity = known
			p, err := archiveproof.Prove(ctx, w, b, srv, archiveproof.Options{Timeout: opts.WALTimeout, Log: opts.Log})
			if err == nil {
				opts.Log.Info("archiving reaches the repository: " + p.String())
			}
			return err
		},
	}
	archiving, receivers, err = chooseSource(s, b.Location(), probe, func() ([]slotInfo, error) {
		qctx, cancel := ask()
		defer cancel()
		return readSlots(qctx, w)
	})
	if cerr := checked(); cerr != nil {
		return serverSettings{}, false, nil, nil, cerr
	}
	if err != nil {
		return serverSettings{}, false, nil, nil, err
	}
	return s, archiving, receivers, known, nil
}

// walPoll is the longest interval between looks at the repository
// (waitForWAL) or the archiver (waitForArchiver). They look every
// walPollFirst for the first walPollSteady, then ever less often up to
// walPoll: the backup's last segment usually lands within a fraction of
// a second (on a primary the backup's end switches to a new segment,
// which the archiver or wal-receive stores at once), and each interval
// that has begun when it lands is waited out to its end. Over a 40 ms
// round trip the archiver's wal-push takes 150-250 ms; looks that had
// grown to 70-100 ms apart by then lost half of that on average.
var walPoll = 500 * time.Millisecond

const (
	walPollFirst  = 10 * time.Millisecond
	walPollSteady = time.Second
)

// nextPoll is the interval after poll, waited into the wait.
func nextPoll(poll, waited time.Duration) time.Duration {
	if waited < walPollSteady {
		return walPollFirst
	}
	return min(poll*3/2, walPoll)
}

// walTimeoutError: the backup's WAL did not reach the repository in time.
type walTimeoutError struct {
	id, location string
	slot         string // "" when archive_command is the WAL source
	segment      string // the first segment missing
	partial      string // how far wal-receive's partials of it reach ("" when none)
	timeout      time.Duration
}

func (e *walTimeoutError) Error() string {
	if e.slot == "" {
		return fmt.Sprintf("backup %s is stored and recorded, but WAL segment %s, which it needs, is not in %s after %s: "+
			"backup-list shows it WAITING_FOR_WALS, and DONE once archive_command stores that segment; check the server log and "+
			"pg_stat_archiver for archive_command failures (a backup taken on a standby ends in a segment that completes only when the primary fills or switches it: "+
			"SELECT pg_switch_wal() on the primary, or set its archive_timeout), or raise --timeout",
			e.id, e.segment, e.location, e.timeout)
	}
	has := "no partial of it either"
	if e.partial != "" {
		has = "wal-receive's newest partial of it ends at " + e.partial
	}
	return fmt.Sprintf("backup %s is stored and recorded, but WAL segment %s, which it needs, is not complete in %s after %s (%s): "+
		"backup-list shows it WAITING_FOR_WALS, and DONE once wal-receive on slot %s stores that segment; check that wal-receive is running and its log "+
		"(a backup taken on a standby ends in a segment that completes only when the primary fills or switches it: SELECT pg_switch_wal() on the primary), or raise --timeout",
		e.id, e.segment, e.location, e.timeout, has, e.slot)
}

// waitForWAL waits until every segment from the backup's start to its stop
// is complete in the repository, as backup-list's DONE wants: wal-receive
// stores a segment once it is complete, and on a primary the backup's end
// switches to a new segment, so the last one completes at once. It logs
// progress every progressLogEvery, gives up after opts.WALTimeout with a
// *walTimeoutError, and returns other errors (storage, cancellation) as
// they are.
func waitForWAL(ctx context.Context, b storage.Backend, c repository.Compression, m repository.BackupManifest, src walSource, opts Options) error {
	seg, stop, err := m.WALRange()
	if err != nil {
		return err
	}
	if seg.Log == stop.Log && seg.Seg == stop.Seg {
		seg.Timeline = stop.Timeline // started in the segment it stopped in
	}
	start := time.Now()
	deadline := start.Add(opts.WALTimeout)
	nextLog := start
	poll := walPollFirst
	for {
		// Under any codec's key, c's first: the codec of WAL may differ
		// from the repository's first one. A backup that ends on a later
		// timeline finds a segment on that one, or on one between, as
		// backup-list does (repository.WALIndex.CoveredAcross).
		var err error
		for tli := seg.Timeline; ; tli++ {
			_, err = repository.StatWALAtOnce(ctx, b, wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: wal.Segment{Timeline: tli, Log: seg.Log, Seg: seg.Seg}}, c)
			if !errors.Is(err, storage.ErrNotFound) || tli >= stop.Timeline {
				break
			}
		}
		switch {
		case err == nil:
			if seg.Log == stop.Log && seg.Seg == stop.Seg {
				opts.Log.Info("the backup's WAL is in the repository", "backup_id", m.ID, "stop_wal", m.StopWAL,
					"waited", time.Since(start).Round(time.Millisecond))
				return nil
			}
			if seg, err = seg.Next(m.WALSegmentSize); err != nil {
				return err
			}
			// As in backup-list: a backup whose stop timeline differs ends
			// on the stop timeline.
			if seg.Log == stop.Log && seg.Seg == stop.Seg {
				seg.Timeline = stop.Timeline
			}
			continue
		case !errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("look for WAL segment %s in %s: %w", seg, b.Location(), err)
		}
		now := time.Now()
		if !now.Before(deadline) {
			e := &walTimeoutError{id: m.ID, slot: src.Slot, location: b.Location(), segment: seg.String(), timeout: opts.WALTimeout}
			if parts, err := repository.ListPartials(ctx, b, seg); err == nil && len(parts) > 0 {
				e.partial = parts[len(parts)-1].End.String()
			}
			return e
		}
		if !now.Before(nextLog) {
			if src.Slot == "" {
				opts.Log.Info("waiting for archive_command to store the WAL the backup needs (on a standby the segment completes when the primary fills or switches it: SELECT pg_switch_wal() there, or its archive_timeout)", "backup_id", m.ID, "segment", seg.String(),
					"waited", now.Sub(start).Round(time.Second), "timeout", opts.WALTimeout)
			} else {
				opts.Log.Info("waiting for wal-receive to store the WAL the backup needs", "backup_id", m.ID, "segment", seg.String(),
					"slot", src.Slot, "waited", now.Sub(start).Round(time.Second), "timeout", opts.WALTimeout)
			}
			nextLog = now.Add(progressLogEvery)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for WAL segment %s to reach %s: %w", seg, b.Location(), ctx.Err())
		case <-time.After(min(poll, time.Until(deadline))):
		}
		poll = nextPoll(poll, time.Since(start))
	}
}

// walStillStored checks, just before the manifest makes the backup DONE,
// that every segment from its start to its stop is in the repository:
// the wait saw each arrive, but something may have deleted some since (a
// retention run that did not see this backup running, a lifecycle rule,
// a person), and backup-push must not say done for a backup that cannot
// be restored.
func walStillStored(ctx context.Context, b storage.Backend, m repository.BackupManifest) error {
	start, stop, err := m.WALRange()
	if err != nil {
		return err
	}
	missing, ok, err := repository.FirstMissingWAL(ctx, b, m.WALSegmentSize, start, stop)
	switch {
	case err != nil:
		return fmt.Errorf("looking for its WAL (%s to %s) in %s: %w", m.StartWAL, m.StopWAL, b.Location(), err)
	case !ok:
		return fmt.Errorf("WAL segment %s, which it needs, was archived to %s but is not there any more: something deleted it while the backup ran (a walvault delete, a lifecycle rule on the bucket, a person); find out what, and take a new backup", missing, b.Location())
	}
	return nil
}

// archivedQuery is the segment the archiver stored last.
const archivedQuery = "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"

// waitForArchiver waits, on a connection of its own, until the archiver of
// the server cfg reaches reports the backup's last segment archived:
// archive_command (wal-push) returned success for it, so it is durable in
// the repository, as PostgreSQL's own BASE_BACKUP WAIT would have waited
// for. The archiver stores segments oldest first and retries a failing
// one until it succeeds, so once it has archived the backup's last
// segment, or a later one of the same timeline, every segment the backup
// needs is archived.
//
// The archiver's last file alone can hide the segment: PostgreSQL marks
// the backup history file ready just after the backup's last segment, and
// an archiver that scanned between the two archives the segment first and
// then the history file, which names the backup's (earlier) start segment.
// And an archive_command that does more after wal-push (a second copy
// elsewhere) is reported done only once all of it is. So the repository
// is watched beside the archiver from the start (watchRepository): when
// it holds the segment (under any codec's key), archive_command pushed it
// there, which is the same proof. It gives up after
// opts.WALTimeout with a *walTimeoutError and returns other errors as
// they are.
// lastReplayedCommit is pg_last_xact_replay_timestamp() on a standby: the
// primary's time of the newest commit it replayed; ok is false when none
// was replayed (or on a primary).
func lastReplayedCommit(ctx context.Context, cfg *pgx.ConnConfig, timeout time.Duration) (at time.Time, ok bool, err error) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w, err := pg.Open(qctx, cfg, false)
	if err != nil {
		return time.Time{}, false, err
	}
	defer w.Close()
	rs, err := pg.SimpleQuery(qctx, w, "SELECT extract(epoch FROM pg_last_xact_replay_timestamp())", nil)
	switch {
	case err != nil:
		return time.Time{}, false, err
	case len(rs.Rows) != 1 || len(rs.Rows[0]) != 1:
		return time.Time{}, false, errors.New("pg_last_xact_replay_timestamp(): want one value")
	case !rs.Rows[0][0].Valid:
		return time.Time{}, false, nil
	}
	epoch, err := strconv.ParseFloat(rs.Rows[0][0].S, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("pg_last_xact_replay_timestamp() %q is not a number of seconds", rs.Rows[0][0].S)
	}
	return time.Unix(0, int64(epoch*1e9)), true, nil
}

func waitForArchiver(ctx context.Context, cfg *pgx.ConnConfig, b storage.Backend, c repository.Compression, m repository.BackupManifest, opts Options) error {
	location := b.Location()
	stop, err := wal.ParseSegmentName(m.StopWAL)
	if err != nil {
		return err
	}
	w, err := pg.Open(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer w.Close()
	start := time.Now()
	deadline := start.Add(opts.WALTimeout)
	nextLog := start.Add(walQuietWait)
	poll := walPollFirst
	wctx, stopWatching := context.WithCancel(ctx)
	inRepository, watched := watchRepository(wctx, b, stop, c, opts.Log)
	defer func() {
		stopWatching()
		<-watched
	}()
	for {
		qctx, cancel := context.WithTimeout(ctx, opts.QueryTimeout)
		rss, err := pg.Exec(qctx, w, archivedQuery)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for the archiver to archive WAL segment %s: %w", stop, ctx.Err())
			}
			return fmt.Errorf("read pg_stat_archiver: %w", err)
		}
		if len(rss) != 1 || len(rss[0].Rows) != 1 || len(rss[0].Rows[0]) != 1 {
			return errors.New("read pg_stat_archiver: want one value")
		}
		if archivedPast(rss[0].Rows[0][0].S, stop) {
			opts.Log.Debug("the archiver stored the backup's WAL", "backup_id", m.ID, "stop_wal", m.StopWAL,
				"waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
		now := time.Now()
		if !now.Before(deadline) {
			return &walTimeoutError{id: m.ID, location: location, segment: stop.String(), timeout: opts.WALTimeout}
		}
		if !now.Before(nextLog) {
			opts.Log.Info("waiting for archive_command to store the WAL the backup needs", "backup_id", m.ID, "segment", stop.String(),
				"waited", now.Sub(start).Round(time.Second), "timeout", opts.WALTimeout)
			nextLog = now.Add(progressLogEvery)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the archiver to archive WAL segment %s: %w", stop, ctx.Err())
		case <-inRepository:
			opts.Log.Debug("the backup's WAL is in the repository", "backup_id", m.ID, "stop_wal", m.StopWAL,
				"waited", time.Since(start).Round(time.Millisecond))
			return nil
		case <-time.After(min(poll, time.Until(deadline))):
		}
		poll = nextPoll(poll, time.Since(start))
	}
}

// watchRepository looks for segment seg in b, under every codec's key at
// once (repository.StatWALAtOnce: one round trip a look), as often as the
// waits look at the archiver, until it is there (then it closes found) or
// ctx ends; done is closed when it has stopped. A failed look is logged
// and tried again: the archiver's answer still decides, and the wait's
// timeout ends it.
func watchRepository(ctx context.Context, b storage.Backend, seg wal.Segment, c repository.Compression, log *slog.Logger) (found, done <-chan struct{}) {
	inRepository, stopped := make(chan struct{}), make(chan struct{})
	f := wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}
	go func() {
		defer close(stopped)
		start := time.Now()
		poll := walPollFirst
		for {
			_, err := repository.StatWALAtOnce(ctx, b, f, c)
			if err == nil {
				close(inRepository)
				return
			}
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, storage.ErrNotFound) {
				log.Debug("looking for the backup's last WAL segment in the repository failed; trying again", "segment", seg.String(), "error", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(poll):
			}
			poll = nextPoll(poll, time.Since(start))
		}
	}()
	return inRepository, stopped
}

// walQuietWait is how long waitForArchiver waits before it says it waits:
// the archiver usually stores the last segment within a fraction of it.
const walQuietWait = time.Second

// archivedPast reports whether last, pg_stat_archiver's last archived
// file, proves the segment stop archived: it is stop or a later segment of
// its timeline, or a backup history file named after one of those. The
// backup history file of a backup that starts and stops in stop is
// archived after stop itself: the switch at the backup's end marks stop
// ready before PostgreSQL writes that file, and the archiver takes files
// in name order, where stop comes first. Anything else (a timeline
// history file, an earlier segment) proves nothing.
func archivedPast(last string, stop wal.Segment) bool {
	f, err := wal.Classify(last)
	if err != nil || (f.Kind != wal.KindSegment && f.Kind != wal.KindBackupHistory) || f.Timeline != stop.Timeline {
		return false
	}
	return f.Segment.Log > stop.Log || (f.Segment.Log == stop.Log && f.Segment.Seg >= stop.Seg)
}

// newBackupID picks the id of a new backup from the clock: one whose folder
// is still empty. If an earlier backup (maybe an interrupted one) started
// in the same second, it waits a second and takes the next.
func newBackupID(ctx context.Context, b storage.Backend, now func() time.Time) (string, error) {
	t := now().UTC().Truncate(time.Second)
	const tries = 10
	for i := 0; i < tries; i++ {
		id := repository.NewBackupID(t)
		used, err := folderUsed(ctx, b, repository.BackupPrefix(id))
		if err != nil {
			return "", fmt.Errorf("look for earlier backups in %s: %w", b.Location(), err)
		}
		if !used {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
		t = t.Add(time.Second)
		if n := now().UTC().Truncate(time.Second); n.After(t) {
			t = n
		}
	}
	return "", fmt.Errorf("backups/%s and the next %d seconds' ids are all taken in %s", repository.NewBackupID(t), tries, b.Location())
}

// askedID is what askBackupID found.
type askedID struct {
	id  string
	err error
}

// askBackupID runs newBackupID in the background; its answer arrives on
// the channel returned, which is closed when the goroutine ends.
func askBackupID(ctx context.Context, b storage.Backend, now func() time.Time) <-chan askedID {
	out := make(chan askedID, 1)
	go func() {
		defer close(out)
		id, err := newBackupID(ctx, b, now)
		out <- askedID{id, err}
	}()
	return out
}

var errFound = errors.New("found")

func folderUsed(ctx context.Context, b storage.Backend, prefix string) (bool, error) {
	err := b.List(ctx, prefix, func(storage.ObjectInfo) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// backupInfo is what Push learnt before the backup began.
type backupInfo struct {
	label string
	// freeID is an id whose folder newBackupID found empty just before
	// (the label's); a backup that starts in its second takes it without
	// listing the folder again. "": none.
	freeID   string
	sys      pg.SystemInfo
	settings serverSettings
	// manifestCopy, when not nil, is given the backup_manifest as it is
	// stored.
	manifestCopy *manifestCopy
}

// serverNow is the server's time by now, this host's clock: a backup's
// times are compared with recovery targets, which are the server's
// (commit timestamps), and the two clocks may differ (explore23c F3).
func (i backupInfo) serverNow(now func() time.Time) time.Time {
	return now().Add(i.settings.ClockOffset)
}

// stream runs BASE_BACKUP and stores what it sends; it returns the
// manifest to write, complete but for the writing. The backup's id and
// start time are taken when PostgreSQL has started the backup (after its
// checkpoint), before anything is stored; on failure the manifest returned
// has only the id ("" when the backup never started).
//
// The first failed upload ends it at once: the reads from the server are
// cancelled then, wherever they wait, and the upload's error is returned.
// The caller must then close the connection (see abandonBackup).
func stream(parent context.Context, w pg.Wire, cmd string, b storage.Backend, opts Options, info backupInfo) (repository.BackupManifest, error) {
	ctx, abandon := context.WithCancelCause(parent)
	defer abandon(nil)
	m := repository.BackupManifest{
		FormatVersion:  repository.FormatVersion,
		Label:          info.label,
		SystemID:       info.sys.SystemID,
		PGVersion:      info.settings.VersionNum,
		WALSegmentSize: info.settings.SegmentSize,
		Host:           opts.Host,
		Walvault:       opts.Version,
	}
	up := &uploader{
		b:           b,
		compression: opts.Compression,
		level:       opts.ZstdLevel,
		partSize:    opts.PartSize,
		meta:        map[string]string{repository.MetaSystemID: info.sys.SystemID},
		lock:        opts.Lock,
		recipients:  opts.Recipients,
		now:         opts.Now,
		failed:      abandon,
	}
	if opts.Host != "" {
		up.meta[repository.MetaHost] = opts.Host
	}
	if opts.Version != "" {
		up.meta[repository.MetaWalvault] = opts.Version
	}
	var (
		start backupStart
		prog  *progress.Task
		ok    bool
		// pending finishes the archive whose stream was read last: waits
		// for its last Puts and records it. nil: none.
		pending func() error
		// startRecorded answers the write of the start record (nil: the
		// backup never started).
		startRecorded chan error
	)
	finishArchive := func() error {
		if pending == nil {
			return nil
		}
		f := pending
		pending = nil
		return f()
	}
	limit := throttle.New(opts.MaxRate)
	wait := waitForStart(opts)
	defer func() {
		wait.Done(ok)
		prog.Done(ok)
	}()
	h := backupHandlers{
		start: func(s backupStart) error {
			wait.Done(true)
			// The backup began now: its id and start time say so, in
			// the server's time (serverNow).
			m.StartTime = info.serverNow(opts.Now).UTC()
			// The folder of the label's id was found empty moments ago;
			// a backup that starts in that second takes it without asking
			// again (a round trip before the first upload). Two backups
			// racing for one id cannot mix: every part is stored only if
			// it does not exist.
			id := repository.NewBackupID(m.StartTime.Truncate(time.Second))
			if id != info.freeID {
				var err error
				if id, err = newBackupID(ctx, b, func() time.Time { return m.StartTime }); err != nil {
					return err
				}
			}
			start, m.ID, up.id = s, id, id
			// The start record shows the running backup to retention
			// before its first part is stored; written beside the
			// first part's reads.
			startRecorded = make(chan error, 1)
			rec := repository.BackupStarted{ID: id, Started: m.StartTime, StartLSN: s.LSN.String(), Timeline: uint32(s.Timeline),
				SystemID: info.sys.SystemID, Host: opts.Host, Walvault: opts.Version}
			go func() { startRecorded <- repository.WriteBackupStarted(ctx, b, rec, opts.Lock.Retention(opts.Now())) }()
			prog = opts.Progress.Start(opts.Log, progress.Spec{Label: "backup " + id, Message: "backup progress",
				Total: s.EstimatedSize(), Attrs: []any{"backup_id", id}})
			up.counted = prog.Add
			opts.Log.Info("backup started", "backup_id", id, "start_time", m.StartTime.Format(time.RFC3339), "lsn", s.LSN.String(), "timeline", uint32(s.Timeline),
				"total", s.EstimatedSize(), "tablespaces", len(s.Tablespaces)-1)
			return nil
		},
		archive: func(name, location string, r io.Reader) error {
			if err := finishArchive(); err != nil {
				return err
			}
			r = limit.Reader(ctx, r)
			a, err := archiveOf(name, location, start.Tablespaces)
			if err != nil {
				return err
			}
			for _, prev := range m.Archives {
				if prev.Name == name {
					return fmt.Errorf("PostgreSQL sent archive %s twice", name)
				}
			}
			finish, err := up.startArchive(ctx, name, r)
			if err != nil {
				return err
			}
			// The archive's last Put ends while what follows is read and
			// stored (backup_manifest, or the next archive's first part
			// once this one is finished): a round trip less in series.
			pending = func() error {
				if a.Parts, err = finish(); err != nil {
					return err
				}
				opts.Log.Debug("archive stored", "backup_id", m.ID, "archive", name, "parts", len(a.Parts), "bytes", a.RawSize())
				m.Archives = append(m.Archives, a)
				return nil
			}
			return nil
		},
		manifest: func(r io.Reader) error {
			if info.manifestCopy != nil {
				r = io.TeeReader(r, info.manifestCopy)
			}
			part, err := up.put(ctx, repository.PGManifestKey(m.ID), limit.Reader(ctx, r), repository.None)
			if err != nil {
				// The archive's last Puts ran alongside, and began first:
				// when they failed too (an outage), theirs is the cause.
				if ferr := finishArchive(); ferr != nil && !errors.Is(ferr, context.Canceled) {
					return ferr
				}
				return fmt.Errorf("backup_manifest: %w", err)
			}
			m.PGManifest = part
			return finishArchive()
		},
		notice: func(n *pgconn.Notice) { logNotice(opts.Log, m.ID, n) },
	}
	end, err := runBaseBackup(ctx, w, cmd, h)
	// No Put outlives stream: a failed backup waits for the last archive's
	// too (the upload's error, when it failed first, is the cause).
	if ferr := finishArchive(); err == nil {
		err = ferr
	}
	if startRecorded != nil {
		if serr := <-startRecorded; err == nil {
			err = serr
		}
	}
	if err != nil {
		// A read cancelled because an upload failed reports the upload.
		if cause := context.Cause(ctx); parent.Err() == nil && errors.Is(err, context.Canceled) && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		return repository.BackupManifest{ID: m.ID}, err
	}
	// At the latest: a restore to a time before it never picks this
	// backup for a target it has not reached.
	m.StopTime = info.serverNow(opts.Now).Add(info.settings.ClockUncertainty).UTC()

	if len(m.Archives) != len(start.Tablespaces) {
		return repository.BackupManifest{ID: m.ID}, fmt.Errorf("PostgreSQL announced %d tablespaces but sent %d archives", len(start.Tablespaces), len(m.Archives))
	}
	if m.PGManifest.Key == "" {
		return repository.BackupManifest{ID: m.ID}, errors.New("PostgreSQL sent no backup_manifest")
	}
	if end.LSN == 0 {
		return repository.BackupManifest{ID: m.ID}, errors.New("PostgreSQL reported a backup ending at LSN 0/0")
	}
	segSize := info.settings.SegmentSize
	startSeg, err := wal.SegmentFromLSN(start.Timeline, start.LSN, segSize)
	if err != nil {
		return repository.BackupManifest{ID: m.ID}, err
	}
	// The stop LSN ends the last record the backup needs: that record's
	// last byte, one before it, says which segment restore must have.
	stopSeg, err := wal.SegmentFromLSN(end.Timeline, end.LSN-1, segSize)
	if err != nil {
		return repository.BackupManifest{ID: m.ID}, err
	}
	m.StartTimeline, m.StartLSN, m.StartWAL = uint32(start.Timeline), start.LSN.String(), startSeg.String()
	m.StopTimeline, m.StopLSN, m.StopWAL = uint32(end.Timeline), end.LSN.String(), stopSeg.String()
	for _, a := range m.Archives {
		m.RawBytes += a.RawSize()
		for _, p := range a.Parts {
			m.Stored += p.StoredSize
		}
	}
	m.Stored += m.PGManifest.StoredSize
	ok = true
	return m, nil
}

// archiveOf describes the archive PostgreSQL announced as name, for the
// tablespace at location ("" for the main data directory).
func archiveOf(name, location string, tablespaces []tablespace) (repository.BackupArchive, error) {
	if location == "" {
		if name != "base.tar" {
			return repository.BackupArchive{}, fmt.Errorf("PostgreSQL sent the data directory as %q, want base.tar", name)
		}
		return repository.BackupArchive{Name: name}, nil
	}
	for _, ts := range tablespaces {
		if ts.Location == location {
			if name != strconv.FormatUint(uint64(ts.OID), 10)+".tar" {
				return repository.BackupArchive{}, fmt.Errorf("PostgreSQL sent tablespace %d (%s) as %q, want %d.tar", ts.OID, location, name, ts.OID)
			}
			return repository.BackupArchive{Name: name, TablespaceOID: ts.OID, TablespaceLocation: location}, nil
		}
	}
	return repository.BackupArchive{}, fmt.Errorf("PostgreSQL sent archive %s for %s, a tablespace it did not announce", name, location)
}

// logNotice passes a server notice on: warnings as warnings, the rest
// ("all required WAL segments have been archived") as information.
func logNotice(log *slog.Logger, id string, n *pgconn.Notice) {
	level := slog.LevelInfo
	if n.SeverityUnlocalized == "WARNING" || n.Severity == "WARNING" {
		level = slog.LevelWarn
	}
	var attrs []any
	if id != "" { // "" while PostgreSQL checkpoints, before the backup has one
		attrs = append(attrs, "backup_id", id)
	}
	log.Log(context.Background(), level, "PostgreSQL: "+n.Message, attrs...)
}
