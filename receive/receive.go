package receive

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/internal/osuser"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Options are wal-receive's settings, resolved by cmd.
type Options struct {
	ConnString string
	Slot       string
	CreateSlot bool
	// MaxLag is how far (in time) the repository's copy of the open
	// segment may fall behind what was received. Default 1s.
	MaxLag time.Duration
	// SpoolDir holds the segment being received. Default
	// os.TempDir()/walvault-receive-<slot>.
	SpoolDir string
	// spoolAt is the path segments are written at: SpoolDir, or the
	// descriptor path Run pinned it to (pinSpoolDir).
	spoolAt string
	// Push is how complete segments are stored (as wal-push would).
	Push archive.Options
	// Timeout bounds each upload (a partial or a segment), retries
	// included: a stalled upload fails and the stream reconnects. Default 2m.
	Timeout time.Duration
	// Metrics, when set, is updated as WAL arrives and becomes durable.
	Metrics *Metrics
	Log     *slog.Logger
}

// statusInterval is the longest time between two status updates.
const statusInterval = 10 * time.Second

// maxBackoff bounds the wait between reconnection attempts.
const maxBackoff = 30 * time.Second

// fatalError is a problem reconnecting cannot fix.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

func fatalf(format string, args ...any) error { return fatalError{fmt.Errorf(format, args...)} }

// spoolDirOwn refuses a spool directory another user owns or may write
// to: the default one has a predictable name in a shared /tmp, and
// whoever can put a link there makes wal-receive write WAL over any file
// its user may write (or replace a segment between its write and upload).
func spoolDirOwn(dir string) error {
	// A link is judged by its own owner too: one another user put at the
	// predictable name would point wal-receive at a directory of this
	// user's (pg_wal), where it truncates and removes segment files.
	if li, err := os.Lstat(dir); err == nil && li.Mode()&os.ModeSymlink != 0 {
		if uid, known := osuser.Owner(li); known && uid != os.Geteuid() {
			return fmt.Errorf("spool directory %s is a symbolic link another user (uid %d) made: it could point wal-receive at a directory whose files it would overwrite; remove it, or give --spool-dir a directory of your own (mode 0700)", dir, uid)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	return ownDirectory(dir, fi)
}

// ownDirectory refuses fi (spool directory dir) unless it is a directory
// of this user's that no other user may write to.
func ownDirectory(dir string, fi os.FileInfo) error {
	uid, known := osuser.Owner(fi)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("spool directory %s is not a directory", dir)
	case known && uid != os.Geteuid():
		return fmt.Errorf("spool directory %s belongs to another user (uid %d): whoever owns it could make wal-receive overwrite files through links planted there; remove it, or give --spool-dir a directory of your own (mode 0700)", dir, uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("spool directory %s is writable by other users (mode %04o): they could make wal-receive overwrite files through links planted there; chmod 700 %s, or give --spool-dir a directory of your own", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// Run streams WAL until ctx is cancelled, which is a clean shutdown (nil)
// after a final partial upload. Lost connections are retried with backoff
// once streaming has worked; errors reconnecting cannot fix are returned.
func Run(ctx context.Context, b storage.Backend, opts Options) error {
	opts = opts.withDefaults()
	if opts.Slot == "" {
		return fatalf("a replication slot name is required (--slot)")
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("create spool directory: %w", err)
	}
	if err := spoolDirOwn(opts.SpoolDir); err != nil {
		return fatalError{err}
	}
	pinned, unpin, err := pinSpoolDir(opts.SpoolDir)
	if err != nil {
		return fatalError{err}
	}
	defer unpin()
	opts.spoolAt = pinned
	cfg, err := pg.ParseConfig(opts.ConnString, pg.ReceiveApplicationName)
	if err != nil {
		return fatalError{err}
	}
	dial := func(ctx context.Context) (pg.ReplicationWire, error) {
		conn, err := pg.Open(ctx, cfg, true)
		if pg.Refused(err) {
			return nil, fatalError{err}
		}
		return conn, err
	}
	return run(ctx, b, opts, dial, time.Second)
}

// dialFunc opens a replication connection; tests give a scripted server.
type dialFunc func(context.Context) (pg.ReplicationWire, error)

// run is Run's reconnection loop: each session dials, and the wait
// between failed sessions doubles from minBackoff up to maxBackoff.
func run(ctx context.Context, b storage.Backend, opts Options, dial dialFunc, minBackoff time.Duration) error {
	backoff := minBackoff
	streamed := false
	old := &oldPartials{} // what a session learnt of locks serves the next
	for {
		r := &receiver{b: b, opts: opts, log: opts.Log, dial: dial, old: old}
		err := r.session(ctx)
		if ctx.Err() != nil {
			opts.Metrics.disconnected(false)
			return nil
		}
		var fatal fatalError
		if errors.As(err, &fatal) || (!streamed && !r.streaming) {
			opts.Metrics.disconnected(false)
			return err
		}
		opts.Metrics.disconnected(true)
		streamed = true
		if r.streaming {
			backoff = minBackoff
		}
		opts.Log.Warn("replication stream ended; reconnecting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// spool is the directory segments are written in (see spoolAt).
func (o Options) spool() string {
	if o.spoolAt != "" {
		return o.spoolAt
	}
	return o.SpoolDir
}

func (o Options) withDefaults() Options {
	if o.MaxLag <= 0 {
		o.MaxLag = time.Second
	}
	if o.SpoolDir == "" {
		o.SpoolDir = filepath.Join(os.TempDir(), "walvault-receive-"+o.Slot)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Push.Log == nil {
		o.Push.Log = o.Log
	}
	if o.Push.Now == nil {
		o.Push.Now = time.Now
	}
	if o.Push.Compression == "" {
		o.Push.Compression = repository.LZ4
	}
	return o
}

// receiver is one replication session.
type receiver struct {
	b    storage.Backend
	opts Options
	log  *slog.Logger
	dial dialFunc
	conn pg.ReplicationWire

	systemID  string
	segSize   uint32
	tli       wal.TimelineID
	id        *repository.Identity // nil until the repository has one
	streaming bool
	pgMajor   int // the server's PostgreSQL major version; 0 when it did not say

	// The open segment.
	inCopy   bool // in the COPY stream: status updates may be sent
	seg      wal.Segment
	segStart wal.LSN
	f        *os.File
	received wal.LSN // end of what was written to the spool file
	durable  wal.LSN // end of what is durable in the repository
	enc      *partialEncoder
	// pendingSince is when the oldest WAL not yet durable arrived;
	// uploadTime is a slowly decaying maximum of recent upload times
	// (partials and segments: a segment completing just before a partial
	// was due holds that partial back by its own upload). A partial is
	// due ahead of pendingSince+MaxLag by about the upload (see flushDue), so
	// that it is durable within MaxLag of the WAL's arrival, not MaxLag plus the upload.
	pendingSince time.Time
	uploadTime   time.Duration
	// lastCut is when the last upload took what it stores: WAL read after
	// it may have reached the socket any time since (the stream is not
	// read while uploading), so it counts as pending from then.
	lastCut  time.Time
	lastStat time.Time

	old *oldPartials // the open segment's partials to delete; nil until needed
}

func (r *receiver) session(ctx context.Context) error {
	conn, err := r.dial(ctx)
	if err != nil {
		return err
	}
	r.conn = conn
	defer conn.Close()
	start, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	defer r.closeSegment()
	for {
		end, err := r.stream(ctx, start)
		if err != nil {
			return err
		}
		if start, err = r.followTimeline(ctx, end); err != nil {
			return err
		}
	}
}

// serverFault makes err fatal when retrying cannot help: the server
// refused the command, or its answer cannot be read. A lost connection
// stays worth a retry.
func serverFault(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || errors.Is(err, pg.ErrMalformed) {
		return fatalError{err}
	}
	return err
}

// prepare checks the server against the repository, finds (or creates) the
// slot and returns where streaming starts.
func (r *receiver) prepare(ctx context.Context) (wal.LSN, error) {
	// Servers report server_version, not server_version_num, when the
	// connection starts.
	n, _ := strconv.Atoi(r.conn.ParameterStatus("server_version_num"))
	if n == 0 {
		n = pg.VersionNumOf(r.conn.ParameterStatus("server_version"))
	}
	if n != 0 {
		if n < pg.MinVersion {
			return 0, fatalf("PostgreSQL %s is not supported: wal-receive needs PostgreSQL 15 or later", r.conn.ParameterStatus("server_version"))
		}
		if err := pg.CheckVersion(n); err != nil {
			return 0, fatalf("%w (nothing was written)", err)
		}
		r.pgMajor = n / 10000
	}
	sys, err := pg.IdentifySystem(ctx, r.conn)
	if err != nil {
		return 0, serverFault(err)
	}
	r.systemID, r.tli = sys.SystemID, sys.Timeline
	xlogpos := sys.XLogPos
	if r.segSize, err = pg.SegmentSize(ctx, r.conn); err != nil {
		return 0, serverFault(err)
	}
	id, err := repository.LoadIdentity(ctx, r.b)
	switch {
	case err == nil:
		if err := id.CheckCluster(r.systemID, r.pgMajor, r.b.Location()); err != nil {
			return 0, fatalf("%w (nothing was written)", err)
		}
		if id.WALSegmentSize != r.segSize {
			return 0, fatalf("PostgreSQL uses WAL segments of %d bytes, but repository %s holds segments of %d bytes (nothing was written)", r.segSize, r.b.Location(), id.WALSegmentSize)
		}
		if err := id.CheckLock(r.opts.Push.Lock, r.b.Location()); err != nil {
			return 0, fatalError{err}
		}
		if err := id.CheckEncryption(r.opts.Push.Recipients, r.b.Location()); err != nil {
			return 0, fatalError{err}
		}
		if id, err = recordRecipients(ctx, r.b, id, r.opts.Push); err != nil {
			return 0, err
		}
		r.id = &id
	case errors.Is(err, storage.ErrNotFound):
	default:
		return 0, fmt.Errorf("read %s from %s: %w", repository.IdentityKey, r.b.Location(), err)
	}

	restart, err := r.slot(ctx)
	if err != nil {
		return 0, err
	}
	if restart == 0 || restart > xlogpos {
		restart = xlogpos
	}
	// On a timeline after the first, the history is stored (a promotion
	// may have happened while no receiver ran) and streaming starts on the
	// timeline the start position belongs to: the server only has the
	// segments of that timeline's files.
	limit := xlogpos
	if r.tli > 1 {
		history, err := r.storeHistory(ctx, r.tli)
		if err != nil {
			return 0, err
		}
		segStart := restart - restart%wal.LSN(r.segSize)
		var end wal.LSN
		if r.tli, end = historyTimeline(history, r.tli, segStart); end != 0 {
			limit = end
		}
	}
	seg, err := wal.SegmentFromLSN(r.tli, restart, r.segSize)
	if err != nil {
		return 0, fatalf("%w", err)
	}
	// Skip the segments the repository already holds, up to the server's
	// flush position (or the end of the start timeline): streaming starts
	// at the first one it lacks.
	for r.id != nil {
		start, _ := seg.StartLSN(r.segSize)
		if start+wal.LSN(r.segSize) > limit {
			break
		}
		_, err := repository.StatWAL(ctx, r.b, wal.FileName{Kind: wal.KindSegment, Timeline: r.tli, Segment: seg}, r.opts.Push.Compression)
		if errors.Is(err, storage.ErrNotFound) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("look for %s in %s: %w", seg, r.b.Location(), err)
		}
		if seg, err = seg.Next(r.segSize); err != nil {
			return 0, fatalf("%w", err)
		}
	}
	start, _ := seg.StartLSN(r.segSize)
	return start, nil
}

// slot reads the replication slot (creating it when asked) and returns its
// restart_lsn (0 when it has none).
func (r *receiver) slot(ctx context.Context) (wal.LSN, error) {
	for attempt := 0; ; attempt++ {
		slot, err := pg.ReadReplicationSlot(ctx, r.conn, r.opts.Slot)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "0A000" {
			// PostgreSQL refuses to read a logical slot this way.
			return 0, fatalf("replication slot %q is a logical slot: wal-receive needs a physical slot (SELECT pg_create_physical_replication_slot('name', true), or --create-slot with a new name)", r.opts.Slot)
		}
		if err != nil {
			return 0, serverFault(err)
		}
		switch {
		case slot.Type == "" && (!r.opts.CreateSlot || attempt > 0):
			return 0, fatalf("replication slot %q does not exist: create it with `walvault wal-receive --slot %s --create-slot` or SELECT pg_create_physical_replication_slot('%s', true)", r.opts.Slot, r.opts.Slot, r.opts.Slot)
		case slot.Type == "":
			if err := pg.CreatePhysicalSlot(ctx, r.conn, r.opts.Slot); err != nil {
				return 0, serverFault(err)
			}
			r.log.Info("created physical replication slot", "slot", r.opts.Slot)
			continue
		case slot.Type != "physical":
			return 0, fatalf("replication slot %q is a %s slot: wal-receive needs a physical slot", r.opts.Slot, slot.Type)
		case slot.RestartLSN == 0:
			return 0, nil
		}
		if slot.RestartTimeline != "" && slot.RestartTimeline != strconv.FormatUint(uint64(r.tli), 10) {
			r.log.Warn("the slot's restart_lsn is on another timeline than the server's; streaming the server's timeline", "slot_timeline", slot.RestartTimeline, "timeline", uint32(r.tli))
		}
		return slot.RestartLSN, nil
	}
}

// stream runs START_REPLICATION on r.tli and handles the COPY stream until
// the server ends the timeline (a promotion upstream), which it returns.
// Any other end is an error.
func (r *receiver) stream(ctx context.Context, start wal.LSN) (pg.TimelineEnd, error) {
	if err := r.openSegment(start); err != nil {
		return pg.TimelineEnd{}, err
	}
	r.durable = start
	ended, err := r.conn.StartReplication(ctx, r.opts.Slot, start, r.tli)
	var pgErr *pgconn.PgError
	switch {
	case ctx.Err() != nil:
		return pg.TimelineEnd{}, ctx.Err()
	case errors.As(err, &pgErr):
		return pg.TimelineEnd{}, fatalf("START_REPLICATION: %w", err)
	case err != nil:
		return pg.TimelineEnd{}, fmt.Errorf("START_REPLICATION: %w", err)
	case ended != nil:
		// Started exactly at the end of a timeline: no stream, the server
		// names the next timeline at once.
		return *ended, nil
	}
	r.streaming, r.inCopy = true, true
	r.opts.Metrics.streaming(r.tli, start)
	r.log.Info("streaming WAL", "slot", r.opts.Slot, "start", start.String(), "timeline", uint32(r.tli), "segment", r.seg.String(), "repo", r.b.Location())
	r.pendingSince, r.lastStat = time.Time{}, time.Now()
	defer func() {
		// Final flush: what was received is made durable before exiting,
		// whether the stream ended or walvault was asked to stop.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := r.flushPartial(fctx); err != nil {
			r.log.Error("final partial upload failed", "error", err)
		}
	}()
	var end *pg.TimelineEnd
	for {
		wait := min(r.opts.MaxLag, statusInterval)
		if r.received > r.durable {
			wait = max(time.Until(r.flushDue()), time.Millisecond)
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := r.conn.Receive(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return pg.TimelineEnd{}, ctx.Err()
			}
			if errors.Is(err, pg.ErrTimeout) {
				if err := r.tick(ctx); err != nil {
					return pg.TimelineEnd{}, err
				}
				continue
			}
			return pg.TimelineEnd{}, fmt.Errorf("receive WAL: connection to PostgreSQL lost: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := r.copyData(ctx, m.Data); err != nil {
				return pg.TimelineEnd{}, err
			}
		case *pgproto3.CopyDone:
			// The timeline ended (the server, a standby, was promoted).
			// Acknowledging it makes the server send the next timeline.
			r.inCopy = false
			if err := r.conn.SendCopyDone(); err != nil {
				return pg.TimelineEnd{}, fmt.Errorf("acknowledge the end of timeline %d: %w", uint32(r.tli), err)
			}
		case *pgproto3.DataRow:
			// After the COPY stream: next timeline, switchpoint.
			e, err := pg.ParseTimelineEnd(m.Values)
			if err != nil {
				return pg.TimelineEnd{}, err
			}
			end = &e
		case *pgproto3.ReadyForQuery:
			if end == nil {
				return pg.TimelineEnd{}, fmt.Errorf("the server ended streaming of timeline %d without naming the next timeline", uint32(r.tli))
			}
			return *end, nil
		case *pgproto3.ErrorResponse:
			pgErr := pgconn.ErrorResponseToPgError(m)
			return pg.TimelineEnd{}, fatalf("START_REPLICATION: %w", pgErr)
		default:
			// RowDescription, CommandComplete, notices, parameter status.
		}
		if err := r.tick(ctx); err != nil {
			return pg.TimelineEnd{}, err
		}
	}
}

// copyData handles one message of the COPY stream.
func (r *receiver) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case 'w':
		x, err := parseXLogData(data)
		if err != nil {
			return err
		}
		r.opts.Metrics.serverAt(x.WALEnd)
		return r.write(ctx, x.Start, x.Data)
	case 'k':
		k, err := parseKeepalive(data)
		if err != nil {
			return err
		}
		r.opts.Metrics.serverAt(k.WALEnd)
		if k.ReplyRequired {
			return r.sendStatus()
		}
	}
	return nil
}

// followTimeline moves on to the timeline after end: the old timeline's
// last segment stays a partial (as PostgreSQL archives it), the new
// timeline's history file is stored, and streaming restarts at the start
// of the segment holding the switchpoint, as pg_receivewal does, so the new
// timeline's copy of that segment is complete from its first byte.
func (r *receiver) followTimeline(ctx context.Context, end pg.TimelineEnd) (wal.LSN, error) {
	if end.Next <= r.tli {
		return 0, fatalf("the server switched from timeline %d to timeline %d, which is not newer", uint32(r.tli), uint32(end.Next))
	}
	r.log.Info("timeline ended; following the next one", "timeline", uint32(r.tli), "switchpoint", end.SwitchPoint.String(), "next_timeline", uint32(end.Next))
	old := r.spoolPath(r.seg)
	r.closeSegment()
	os.Remove(old)
	if _, err := r.storeHistory(ctx, end.Next); err != nil {
		return 0, err
	}
	r.tli = end.Next
	seg, err := wal.SegmentFromLSN(r.tli, end.SwitchPoint, r.segSize)
	if err != nil {
		return 0, fatalf("%w", err)
	}
	start, _ := seg.StartLSN(r.segSize)
	return start, nil
}

// storeHistory fetches timeline tli's history file from the server and
// stores it as wal-push would (write-once, same key), so restores can
// follow the switch. It returns the parsed history.
func (r *receiver) storeHistory(ctx context.Context, tli wal.TimelineID) ([]wal.HistoryEntry, error) {
	name, content, err := pg.TimelineHistory(ctx, r.conn, tli)
	if err != nil {
		return nil, serverFault(err)
	}
	history, err := wal.ParseHistory(bytes.NewReader(content))
	if err != nil {
		return nil, fatalf("%s from the server: %w", name, err)
	}
	path := filepath.Join(r.opts.spool(), name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		return nil, fmt.Errorf("spool %s: %w", name, err)
	}
	defer os.Remove(path)
	pctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	// Stored from the spool, not a data directory: the server's
	// identity names its cluster (a first history file into a new prefix
	// must record it, or no segment could follow it, explore24f F1).
	push := r.opts.Push
	push.SystemID, push.PGMajor = r.systemID, r.pgMajor
	res, err := archive.Push(pctx, r.b, path, push)
	if err != nil {
		if errors.Is(err, archive.ErrConflict) || errors.Is(err, archive.ErrWrongCluster) {
			return nil, fatalError{err}
		}
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	r.log.Info("timeline history stored", "file", name, "key", res.Key, "already_archived", res.AlreadyArchived)
	return history, nil
}

// historyTimeline returns the timeline that pos belongs to according to
// history (the server's current timeline's history file), and where that
// timeline ends (0 for the current timeline), as PostgreSQL's
// tliOfPointInHistory decides it.
func historyTimeline(history []wal.HistoryEntry, current wal.TimelineID, pos wal.LSN) (wal.TimelineID, wal.LSN) {
	for _, e := range history {
		if pos < e.SwitchPoint {
			return e.Timeline, e.SwitchPoint
		}
	}
	return current, 0
}

// flushDue is when the WAL received but not yet durable must be uploaded.
func (r *receiver) flushDue() time.Time {
	// A little more than the slow recent upload: landing early only costs
	// an upload a little sooner.
	return r.pendingSince.Add(r.opts.MaxLag - min(r.uploadTime+flushMargin, r.opts.MaxLag/2))
}

// flushMargin is how much earlier than the slowest recent upload needs a
// partial starts: what reaches the receiver lags the commit a little (the
// server sends WAL once flushed), and uploads vary.
const flushMargin = 100 * time.Millisecond

// noteUpload updates the upload time estimate with one upload's duration.
func (r *receiver) noteUpload(d time.Duration) {
	r.uploadTime = max(d, r.uploadTime*7/8)
}

// tick uploads a partial when max-lag is reached and keeps the server
// informed.
func (r *receiver) tick(ctx context.Context) error {
	if r.received > r.durable && !time.Now().Before(r.flushDue()) {
		if err := r.flushPartial(ctx); err != nil {
			return err
		}
	}
	if time.Since(r.lastStat) >= statusInterval {
		return r.sendStatus()
	}
	return nil
}

func (r *receiver) sendStatus() error {
	if !r.inCopy {
		return nil
	}
	r.lastStat = time.Now()
	return r.conn.SendStandbyStatus(r.durable, r.lastStat)
}

// spoolPath is where segment s is received: named as the segment, so it
// can be handed to archive.Push as it is.
func (r *receiver) spoolPath(s wal.Segment) string {
	return filepath.Join(r.opts.spool(), s.String())
}

// openSegment starts receiving the segment that begins at start.
func (r *receiver) openSegment(start wal.LSN) error {
	r.closeSegment()
	seg, err := wal.SegmentFromLSN(r.tli, start, r.segSize)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(r.spoolPath(seg), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool segment %s: %w", seg, err)
	}
	if r.enc != nil {
		r.enc.reset()
	}
	r.seg, r.segStart, r.f, r.received = seg, start, f, start
	return nil
}

// closeSegment closes the open spool file, if any. Its error matters only
// where the segment's data was just used (completeSegment): elsewhere the
// file is abandoned or removed.
func (r *receiver) closeSegment() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// write puts WAL starting at pos into the spool, completing segments on
// the way.
func (r *receiver) write(ctx context.Context, pos wal.LSN, data []byte) error {
	for len(data) > 0 {
		if pos != r.received {
			return fmt.Errorf("the server sent WAL at %s, expected %s", pos, r.received)
		}
		end := r.segStart + wal.LSN(r.segSize)
		n := min(uint64(len(data)), uint64(end-pos))
		if _, err := r.f.WriteAt(data[:n], int64(pos-r.segStart)); err != nil {
			return fmt.Errorf("spool segment %s: %w", r.seg, err)
		}
		r.received = pos + wal.LSN(n)
		if r.pendingSince.IsZero() {
			r.pendingSince = r.lastCut
			if r.pendingSince.IsZero() {
				r.pendingSince = time.Now()
			}
		}
		r.opts.Metrics.receivedWAL(int(n), r.received)
		data, pos = data[n:], pos+wal.LSN(n)
		if r.received == end {
			if err := r.completeSegment(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// completeSegment stores the full segment as wal-push would, removes its
// partials and moves on to the next segment.
func (r *receiver) completeSegment(ctx context.Context) error {
	path := r.spoolPath(r.seg)
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	cut := time.Now()
	res, err := r.storeSegment(ctx, path)
	closeErr := r.closeSegment()
	if err != nil {
		r.opts.Metrics.uploadFailed()
		if errors.Is(err, archive.ErrConflict) || errors.Is(err, archive.ErrWrongCluster) {
			return fatalError{err}
		}
		return err
	}
	if closeErr != nil {
		return fmt.Errorf("spool segment %s: %w", r.seg, closeErr)
	}
	if r.id == nil {
		if id, err := repository.LoadIdentity(ctx, r.b); err == nil {
			r.id = &id
		}
	}
	msg := "segment stored"
	if res.AlreadyArchived {
		msg = "segment already archived with the same content"
	}
	r.log.Info(msg, "segment", r.seg.String(), "key", res.Key)
	end := r.segStart + wal.LSN(r.segSize)
	r.durable = end
	r.opts.Metrics.madeDurable(end, true)
	r.deletePartials(ctx, r.seg, "", time.Time{})
	os.Remove(path)
	if err := r.openSegment(end); err != nil {
		return err
	}
	r.pendingSince, r.lastCut = time.Time{}, cut
	r.noteUpload(time.Since(cut))
	return r.sendStatus()
}

// storeSegment stores the complete open segment as wal-push would. The
// partials' encoder already holds all but its last chunk compressed and
// hashed, so only that chunk is encoded; without an identity yet (a new
// repository) or in another compression, the file is pushed as it is.
func (r *receiver) storeSegment(ctx context.Context, path string) (archive.Result, error) {
	if r.id != nil {
		c := r.opts.Push.Compression
		if r.enc == nil || r.enc.compression != c {
			r.enc = newPartialEncoder(c, r.opts.Push.ZstdLevel, r.opts.Push.Recipients)
		}
		body, sum, fingerprints, err := r.enc.encode(r.f, int64(r.segSize))
		if err != nil {
			return archive.Result{}, fmt.Errorf("read spooled segment %s: %w", r.seg, err)
		}
		file := wal.FileName{Kind: wal.KindSegment, Timeline: r.tli, Segment: r.seg}
		enc := archive.Encoded{Body: body, Compression: c, SHA256: hex.EncodeToString(sum[:]), RawSize: int64(r.segSize), Fingerprints: fingerprints}
		res, err := archive.PushEncoded(ctx, r.b, r.f, file, enc, r.opts.Push)
		if !errors.Is(err, archive.ErrOtherCompression) {
			return res, err
		}
	}
	return archive.Push(ctx, r.b, path, r.opts.Push)
}

// flushPartial uploads the open segment's bytes received so far as a new
// partial object, then reports it durable.
func (r *receiver) flushPartial(ctx context.Context) error {
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	if r.f == nil || r.received <= r.durable || r.received <= r.segStart {
		return nil
	}
	size := int64(r.received - r.segStart)
	if _, err := r.identity(ctx); err != nil {
		return err
	}
	c := r.opts.Push.Compression
	if r.enc == nil || r.enc.compression != c {
		r.enc = newPartialEncoder(c, r.opts.Push.ZstdLevel, r.opts.Push.Recipients)
	}
	body, sum, fingerprints, err := r.enc.encode(r.f, size)
	if err != nil {
		return fmt.Errorf("read spooled segment %s: %w", r.seg, err)
	}
	key := repository.PartialKey(r.seg, r.received, c)
	opts := r.opts.Push
	meta := map[string]string{
		repository.MetaSHA256:      hex.EncodeToString(sum[:]),
		repository.MetaRawSize:     strconv.FormatInt(size, 10),
		repository.MetaCompression: string(c),
		repository.MetaSystemID:    r.systemID,
		repository.MetaTimeline:    fmt.Sprintf("%08X", uint32(r.tli)),
		repository.MetaHost:        opts.Host,
		repository.MetaPushedAt:    opts.Now().UTC().Format(time.RFC3339),
		repository.MetaWalvault:    opts.Version,
		repository.MetaEndLSN:      r.received.String(),
	}
	// Encrypted as wal-push's objects are: fingerprints for the sha256.
	repository.Codec{Compression: c, Recipients: opts.Recipients}.Describe(meta, fingerprints)
	ret := opts.Lock.Retention(opts.Now())
	err = r.b.Put(ctx, key, bytes.NewReader(body), storage.PutOptions{IfNotExists: true, Metadata: meta, Size: int64(len(body)), Retention: ret})
	// Until then a delete of this partial can only be refused.
	var lockedUntil time.Time
	if ret != nil {
		lockedUntil = ret.Until
	}
	if errors.Is(err, storage.ErrExists) {
		// A restarted receiver re-uploading the same range: same bytes.
		info, serr := r.b.Stat(ctx, key)
		if serr != nil {
			return fmt.Errorf("partial %s exists, but reading it failed: %w", key, serr)
		}
		if err := samePartial(meta, info.Metadata); err != nil {
			return fatalf("%w: partial %s in %s %w; nothing was overwritten", archive.ErrConflict, key, r.b.Location(), err)
		}
		err, lockedUntil = nil, info.RetainUntil // stored earlier, under a lock of its own
	}
	if err != nil {
		r.opts.Metrics.uploadFailed()
		return fmt.Errorf("upload partial %s to %s: %w", key, r.b.Location(), err)
	}
	r.durable, r.pendingSince, r.lastCut = r.received, time.Time{}, started
	r.noteUpload(time.Since(started))
	r.opts.Metrics.madeDurable(r.durable, false)
	r.log.Debug("partial stored", "key", key, "bytes", size)
	r.deletePartials(ctx, r.seg, key, lockedUntil)
	return r.sendStatus()
}

// seenFile, in the spool directory, records the repository location this
// receiver read walvault.json at: a later receiver that finds that
// location empty (a disk not mounted under a file:// repository, a
// deleted prefix) refuses to start a new repository there, as wal-push
// does with its identity cache.
const seenFile = "repository-seen.json"

type seenRecord struct {
	Repository string    `json:"repository"`
	SeenAt     time.Time `json:"seen_at"`
}

func (r *receiver) seenPath() string { return filepath.Join(r.opts.spool(), seenFile) }

// repositorySeen is when this receiver's spool directory last recorded
// reading walvault.json at this location (zero: never).
func (r *receiver) repositorySeen() time.Time {
	data, err := os.ReadFile(r.seenPath())
	if err != nil {
		return time.Time{}
	}
	var rec seenRecord
	if json.Unmarshal(data, &rec) != nil || rec.Repository != r.b.Location() {
		return time.Time{}
	}
	return rec.SeenAt
}

// recordSeen notes that walvault.json was read at this location (best
// effort: without it only the guard above is lost).
func (r *receiver) recordSeen(now time.Time) {
	data, err := json.Marshal(seenRecord{Repository: r.b.Location(), SeenAt: now.UTC()})
	if err == nil {
		err = os.WriteFile(r.seenPath(), data, 0o600)
	}
	if err != nil {
		r.log.Warn("cannot record the repository in the spool directory", "path", r.seenPath(), "err", err)
	}
}

// identity returns the repository's identity, creating it from the
// segment's header when this receiver is the repository's first writer.
func (r *receiver) identity(ctx context.Context) (repository.Identity, error) {
	if r.id != nil {
		return *r.id, nil
	}
	hdr, err := wal.ReadHeader(io.NewSectionReader(r.f, 0, int64(r.received-r.segStart)))
	if err != nil {
		return repository.Identity{}, fmt.Errorf("segment %s: %w", r.seg, err)
	}
	opts := r.opts.Push
	want := repository.NewIdentity(hdr.SystemID, hdr.SegmentSize, hdr.PGMajor, opts.Compression, opts.Host, opts.Now()).WithLock(opts.Lock).WithEncryption(opts.Recipients)
	seenAt := r.repositorySeen()
	id, err := repository.EnsureProvenIdentity(ctx, r.b, want, opts.Lock.Retention(opts.Now()), seenAt)
	var refused *repository.CapabilityError
	var lost *repository.IdentityLostError
	var gone *repository.GoneError
	if errors.As(err, &gone) {
		return repository.Identity{}, fatalf("%w; to start a new repository at this location on purpose, delete %s (this receiver's record of the old one)", err, r.seenPath())
	}
	if errors.As(err, &refused) || errors.As(err, &lost) {
		return repository.Identity{}, fatalf("%w", err)
	}
	if err != nil {
		return repository.Identity{}, fmt.Errorf("read repository identity from %s: %w", r.b.Location(), err)
	}
	id.WarnRecreated(r.log, r.b.Location())
	if err := id.CheckCluster(r.systemID, r.pgMajor, r.b.Location()); err != nil {
		return repository.Identity{}, fatalf("%w", err)
	}
	// Another writer may have created it first, with other settings.
	if err := id.CheckEncryption(opts.Recipients, r.b.Location()); err != nil {
		return repository.Identity{}, fatalError{err}
	}
	if id, err = recordRecipients(ctx, r.b, id, opts); err != nil {
		return repository.Identity{}, err
	}
	r.recordSeen(opts.Now())
	r.id = &id
	return id, nil
}
