package archiveproof

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// DefaultTimeout is how long Prove waits for a segment unless told.
const DefaultTimeout = 2 * time.Minute

// Polling the repository: the first look again after firstPoll, then
// half as long again each time, at most maxPoll apart. The segment a
// switch completes usually arrives within a few hundred milliseconds (a
// wal-push over a 40 ms round trip: 150-400 ms), and a look that has
// begun when it lands is waited out to its end: looks 100, 200, 400 ms
// apart noticed it 100-200 ms late.
const (
	firstPoll = 20 * time.Millisecond
	maxPoll   = 2 * time.Second
	logEvery  = 10 * time.Second
)

// PushLine is the archive_command that brings WAL to walvault.
const PushLine = "archive_command = 'walvault wal-push %p'"

// Server is what the caller already knows of the server.
type Server struct {
	Settings pg.Settings
	// SystemID is the server's system identifier: a repository that
	// belongs to another cluster is refused at once rather than waited
	// for. "" skips the comparison.
	SystemID string
	// Timeline is the server's timeline, used on a standby (whose last
	// replayed segment is the one looked for); 0 on a standby means
	// pg_control_checkpoint() is asked.
	Timeline wal.TimelineID
	// User is the role connected, for the GRANT a missing privilege needs.
	User string
	// HistoryProves lets a backup history file the archiver archived last
	// prove archiving as a segment does, when the repository holds it:
	// after every backup it is the last file archived until the next
	// segment completes, and without it a backup taken soon after another
	// switches WAL and waits for the new segment (backup-push sets it;
	// check, whose report names a segment, does not).
	HistoryProves bool
	// Identity is the repository's walvault.json when the caller has just
	// read it and checked it belongs to this cluster: the repository is
	// then not asked for it again (a round trip). nil: it is read.
	Identity *repository.Identity
}

// Options tune Prove.
type Options struct {
	// Timeout bounds the wait for the segment; 0 means DefaultTimeout.
	Timeout time.Duration
	// Log receives what Prove does to the server and, every 10 seconds,
	// that it still waits. nil discards.
	Log *slog.Logger
}

// Proof is how Prove saw the server's WAL in the repository.
type Proof struct {
	// Segment is the segment found in the repository (or the backup
	// history file, when the archiver archived one last).
	Segment string
	// Switched is true when Prove switched WAL (pg_switch_wal()) to get a
	// segment to look for; false when the archiver's last archived
	// segment, or on a standby the last one replayed, served.
	Switched bool
	// Replayed: on a standby, the segment replay completed last served.
	Replayed bool
	// Waited is how long the segment took to arrive (0 when it was there).
	Waited time.Duration
}

// String says what was seen, for logs and check's detail.
func (p Proof) String() string {
	switch {
	case p.Replayed:
		return fmt.Sprintf("segment %s, the last this standby replayed, reached the repository (after %s)", p.Segment, p.Waited.Round(time.Millisecond))
	case p.Waited == 0 && !p.Switched:
		what := "segment"
		if f, err := wal.Classify(p.Segment); err == nil && f.Kind == wal.KindBackupHistory {
			what = "backup history file"
		}
		return fmt.Sprintf("%s %s, the last archived, is in the repository", what, p.Segment)
	case p.Switched:
		return fmt.Sprintf("segment %s reached the repository %s after SELECT pg_switch_wal()", p.Segment, p.Waited.Round(time.Millisecond))
	}
	return fmt.Sprintf("segment %s reached the repository after %s", p.Segment, p.Waited.Round(time.Millisecond))
}

// ErrNotReached marks the verdict that the server's archiving does not
// bring its WAL to the repository (errors.Is finds it on a
// *NotReachedError).
var ErrNotReached = errors.New("WAL does not reach the repository")

// NotReachedError is Prove's verdict when the segment never arrived: it
// names archive_command (quoted), archive_mode and the archiver's last
// failure, which is what a DBA looks at first.
type NotReachedError struct {
	Location string
	Segment  string
	Settings pg.Settings
	Timeout  time.Duration
	Switched bool
	// Failing: Segment is the file PostgreSQL's archiver failed on last
	// and keeps retrying; WAL was not switched.
	Failing bool
	// NoIdentity: the repository has no walvault.json, so no WAL of any
	// cluster ever reached it.
	NoIdentity bool
	// LastFailure is pg_stat_archiver's last failure when it is newer than
	// the last success ("" when none).
	LastFailure string
}

func (e *NotReachedError) Is(target error) bool { return target == ErrNotReached }

func (e *NotReachedError) Error() string {
	var b strings.Builder
	if e.Settings.ArchiveLibrary != "" {
		fmt.Fprintf(&b, "archive_library is %q (archive_mode = %s; archive_command is ignored)", e.Settings.ArchiveLibrary, e.Settings.ArchiveMode)
	} else {
		fmt.Fprintf(&b, "archive_command is %q (archive_mode = %s", e.Settings.ArchiveCommand, e.Settings.ArchiveMode)
		if !strings.Contains(e.Settings.ArchiveCommand, "wal-push") {
			// Only a hint: a script may run it.
			b.WriteString("; it does not run walvault wal-push itself")
		}
		b.WriteString(")")
	}
	how := "which the server archived last"
	if e.Failing {
		how = "which PostgreSQL's archiver keeps failing to archive (no WAL switch: a new segment would only queue behind it in pg_wal)"
	} else if e.Switched {
		how = "which PostgreSQL completed on SELECT pg_switch_wal()"
	} else if e.Settings.InRecovery {
		how = "which this standby replayed last (its primary archives it)"
	}
	fmt.Fprintf(&b, ", but WAL segment %s, %s, did not reach %s within %s", e.Segment, how, e.Location, e.Timeout)
	if e.NoIdentity {
		fmt.Fprintf(&b, ": no WAL has reached repository %s yet (it has no %s)", e.Location, repository.IdentityKey)
	}
	if e.LastFailure != "" {
		fmt.Fprintf(&b, "; PostgreSQL's archiver last failed on %s", e.LastFailure)
		if strings.Contains(e.Settings.ArchiveCommand, "wal-push") {
			// The command is there and runs: its calls fail.
			fmt.Fprintf(&b, "; archive_command runs walvault wal-push, and its calls fail: the server log has wal-push's error (credentials, network, the repository settings in the server's environment); fix its cause first, and if those settings name a repository other than %s, point them here", e.Location)
			return b.String()
		}
	}
	fmt.Fprintf(&b, "; so this server's WAL does not reach this repository: set %s (or a script that runs it) with the repository %s in the server's environment or walvault config, reload PostgreSQL (SELECT pg_reload_conf()), and see the server log for the command's errors",
		PushLine, e.Location)
	return b.String()
}

// archiver is what pg_stat_archiver says.
type archiver struct {
	lastArchived string
	// failure is the last failure, "segment at time", when it is newer
	// than the last success; "" otherwise.
	failure string
	// failedWAL is the file of that failure ("" when none).
	failedWAL string
}

const archiverQuery = `SELECT coalesce(last_archived_wal, ''),
       CASE WHEN last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)
            THEN last_failed_wal || ' at ' || to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') ELSE '' END,
       CASE WHEN last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)
            THEN coalesce(last_failed_wal, '') ELSE '' END
  FROM pg_stat_archiver`

func readArchiver(ctx context.Context, w pg.Wire) (archiver, error) {
	rss, err := pg.Exec(ctx, w, archiverQuery)
	if err != nil {
		return archiver{}, fmt.Errorf("read pg_stat_archiver: %w", err)
	}
	if len(rss) != 1 || len(rss[0].Rows) != 1 || len(rss[0].Rows[0]) != 3 {
		return archiver{}, errors.New("read pg_stat_archiver: want one row of 3 fields")
	}
	row := rss[0].Rows[0]
	return archiver{lastArchived: row[0].S, failure: row[1].S, failedWAL: row[2].S}, nil
}

// Prove returns once the repository b holds a segment the server w
// reaches archived (see the package comment), or an error: a
// *NotReachedError (ErrNotReached) when the segment did not arrive within
// the timeout, or what went wrong asking the server or the repository.
// The server must archive (archive_mode on or always); the caller checks
// that first.
func Prove(ctx context.Context, w pg.Wire, b storage.Backend, srv Server, opts Options) (Proof, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	r := &repo{b: b, systemID: srv.SystemID, ident: srv.Identity, historyProves: srv.HistoryProves}
	// A standby with archive_mode = on archives nothing: its archiver's
	// statistics are from its past as a primary (an old primary after a
	// switchover), no proof of what archives now.
	if !srv.Settings.InRecovery || srv.Settings.ArchiveMode == "always" {
		arch, err := readArchiver(ctx, w)
		if err != nil {
			return Proof{}, err
		}
		if p, found, err := r.archived(ctx, arch); err != nil || found {
			return p, err
		}
		if arch.failure != "" && !srv.Settings.InRecovery {
			return r.waitRecovered(ctx, w, srv, opts, arch)
		}
	}
	seg, switched, err := target(ctx, w, srv, opts.Log)
	if err != nil {
		return Proof{}, err
	}
	f := wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}
	waited, found, err := poll(ctx, opts, seg.String(), b.Location(), func() (bool, error) { return r.has(ctx, f) })
	if err != nil {
		return Proof{}, err
	}
	if found {
		p := Proof{Segment: seg.String(), Switched: switched, Replayed: srv.Settings.InRecovery, Waited: waited}
		opts.Log.Info("this server's WAL reaches the repository", "segment", p.Segment, "repo", b.Location(), "elapsed", p.Waited)
		return p, nil
	}
	e := &NotReachedError{Location: b.Location(), Segment: seg.String(), Settings: srv.Settings, Timeout: opts.Timeout, Switched: switched, NoIdentity: r.ident == nil}
	// The archiver as it is now: a failure on this very segment is likely.
	if now, err := readArchiver(ctx, w); err == nil {
		e.LastFailure = now.failure
	}
	return Proof{}, e
}

// waitRecovered is Prove on a primary whose archiver failed last: it keeps
// retrying that file, and archives nothing after it before it succeeds,
// so a WAL switch would prove nothing more and only add a segment to
// pg_wal (check run every minute through an outage: 16 MiB a minute).
// It waits instead for the archiver to succeed again with a file the
// repository holds, or for the failed segment to be in the repository
// (pushed ahead by wal-helper, or by hand).
func (r *repo) waitRecovered(ctx context.Context, w pg.Wire, srv Server, opts Options, arch archiver) (Proof, error) {
	var p Proof
	waited, found, err := poll(ctx, opts, arch.failedWAL, r.b.Location(), func() (bool, error) {
		now, err := readArchiver(ctx, w)
		if err != nil {
			return false, err
		}
		arch = now
		var found bool
		if p, found, err = r.archived(ctx, now); err != nil || found {
			return found, err
		}
		f, err := wal.Classify(now.failedWAL)
		if err != nil || f.Kind != wal.KindSegment {
			return false, nil
		}
		p = Proof{Segment: now.failedWAL}
		return r.has(ctx, f)
	})
	if err != nil {
		return Proof{}, err
	}
	if found {
		p.Waited = waited
		opts.Log.Info("this server's WAL reaches the repository", "segment", p.Segment, "repo", r.b.Location(), "elapsed", waited)
		return p, nil
	}
	return Proof{}, &NotReachedError{Location: r.b.Location(), Segment: arch.failedWAL, Settings: srv.Settings, Timeout: opts.Timeout,
		Failing: arch.failedWAL != "", NoIdentity: r.ident == nil, LastFailure: arch.failure}
}

// poll calls look, with backoff, until it finds what it looks for or
// opts.Timeout has passed, and says how long that took; it logs every
// logEvery that it still waits for what (a file name) to reach location.
func poll(ctx context.Context, opts Options, what, location string, look func() (bool, error)) (time.Duration, bool, error) {
	start := time.Now()
	deadline := start.Add(opts.Timeout)
	nextLog := start.Add(logEvery)
	pause := firstPoll
	for {
		found, err := look()
		if err != nil || found {
			return time.Since(start), found, err
		}
		now := time.Now()
		if !now.Before(deadline) {
			return now.Sub(start), false, nil
		}
		if !now.Before(nextLog) {
			opts.Log.Info("waiting for archiving to bring a file to the repository", "file", what, "repo", location,
				"elapsed", now.Sub(start).Round(time.Second), "timeout", opts.Timeout)
			nextLog = now.Add(logEvery)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), false, fmt.Errorf("waiting for WAL file %s to reach %s: %w", what, location, ctx.Err())
		case <-time.After(min(pause, time.Until(deadline))):
		}
		pause = min(pause*3/2, maxPoll)
	}
}

// LastArchived is Prove's cheap look alone: it reports whether the segment
// pg_stat_archiver says was archived last is in the repository, with no
// failure since. It changes nothing on the server and makes at most a few
// requests to the repository.
func LastArchived(ctx context.Context, w pg.Wire, b storage.Backend, srv Server) (Proof, bool, error) {
	r := &repo{b: b, systemID: srv.SystemID, ident: srv.Identity, historyProves: srv.HistoryProves}
	return r.lastArchived(ctx, w)
}

func (r *repo) lastArchived(ctx context.Context, w pg.Wire) (Proof, bool, error) {
	arch, err := readArchiver(ctx, w)
	if err != nil {
		return Proof{}, false, err
	}
	return r.archived(ctx, arch)
}

// archived reports whether the file arch says was archived last is in the
// repository, with no failure since.
func (r *repo) archived(ctx context.Context, arch archiver) (Proof, bool, error) {
	// A backup history file is pushed by archive_command like a segment:
	// found in the repository, it proves as much (see HistoryProves).
	f, err := wal.Classify(arch.lastArchived)
	history := f.Kind == wal.KindBackupHistory && r.historyProves
	if err != nil || (f.Kind != wal.KindSegment && !history) || arch.failure != "" {
		return Proof{}, false, nil
	}
	found, err := r.has(ctx, f)
	if err != nil || !found {
		return Proof{}, false, err
	}
	return Proof{Segment: f.String()}, true, nil
}

// target picks the segment to wait for and says whether it switched WAL
// to get it: on a primary the one pg_switch_wal() completes (or, when the
// role may not switch, the last completed one), on a standby the one
// before the segment replay is in.
func target(ctx context.Context, w pg.Wire, srv Server, log *slog.Logger) (wal.Segment, bool, error) {
	segSize := srv.Settings.SegmentSize
	if srv.Settings.InRecovery {
		tli := srv.Timeline
		if tli == 0 {
			v, err := queryOne(ctx, w, "SELECT timeline_id FROM pg_control_checkpoint()")
			if err != nil {
				return wal.Segment{}, false, err
			}
			if tli, err = pg.ParseTimeline(v); err != nil {
				return wal.Segment{}, false, err
			}
		}
		v, err := queryOne(ctx, w, "SELECT pg_last_wal_replay_lsn()")
		if err != nil {
			return wal.Segment{}, false, err
		}
		lsn, err := wal.ParseLSN(v)
		if err != nil || uint64(lsn) < uint64(segSize) {
			return wal.Segment{}, false, fmt.Errorf("this standby has replayed no complete WAL segment yet (pg_last_wal_replay_lsn() is %q): nothing to look for in the repository", v)
		}
		seg, err := wal.SegmentFromLSN(tli, lsn-wal.LSN(segSize), segSize)
		return seg, false, err
	}
	// pg_walfile_name of what pg_switch_wal() returns names the segment it
	// completed, or, when nothing was written since the last switch, the
	// one that switch completed, which may have been archived elsewhere
	// (before archive_command named this repository) and never arrive
	// here. A transaction with an xid writes a commit record, so the
	// switch completes a segment of its own; any role may.
	if _, err := queryOne(ctx, w, "SELECT pg_current_xact_id()"); err != nil {
		log.Debug("could not write a record before switching WAL", "error", err)
	}
	v, err := queryOne(ctx, w, "SELECT pg_walfile_name(pg_switch_wal())")
	if err == nil {
		seg, err := wal.ParseSegmentName(v)
		if err == nil {
			log.Info("switched WAL (SELECT pg_switch_wal()) to see a segment reach the repository", "segment", v)
		}
		return seg, true, err
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		return wal.Segment{}, false, err
	}
	v, err = queryOne(ctx, w, fmt.Sprintf("SELECT pg_walfile_name(pg_current_wal_lsn() - %d)", segSize))
	if err != nil {
		return wal.Segment{}, false, fmt.Errorf("this role may not switch WAL, and the last completed segment cannot be told: %w", err)
	}
	seg, err := wal.ParseSegmentName(v)
	if err == nil {
		log.Warn("this role may not switch WAL, so the last completed segment is waited for, which on an idle server may never be archived here: GRANT EXECUTE ON FUNCTION pg_switch_wal() TO "+pg.QuoteIdent(srv.User),
			"segment", v)
	}
	return seg, false, err
}

// queryOne runs a query that returns one value, keeping the connection
// usable after a server error.
func queryOne(ctx context.Context, w pg.Wire, sql string) (string, error) {
	rss, err := pg.Exec(ctx, w, sql)
	if err != nil {
		return "", fmt.Errorf("%s: %w", sql, err)
	}
	if len(rss) != 1 || len(rss[0].Rows) != 1 || len(rss[0].Rows[0]) != 1 || !rss[0].Rows[0][0].Valid {
		return "", fmt.Errorf("%s: want one value", sql)
	}
	return rss[0].Rows[0][0].S, nil
}

// repo looks for segments in the repository, by Stat of their keys.
type repo struct {
	b        storage.Backend
	systemID string
	ident    *repository.Identity // nil until walvault.json is seen
	// historyProves: Server.HistoryProves.
	historyProves bool
}

// has reports whether the repository holds segment f under any of the
// keys it may have (the repository's compression first). Until
// walvault.json exists, no segment can be there.
func (r *repo) has(ctx context.Context, f wal.FileName) (bool, error) {
	// Every key f may have at once (each look of a wait costs one round
	// trip, not one per codec), and until walvault.json is known, beside
	// reading it: the preferred codec is then only a guess, but every
	// codec is asked anyway.
	preferred := repository.LZ4
	var err error
	if r.ident != nil {
		preferred = r.ident.Compression
		_, err = repository.StatWALAtOnce(ctx, r.b, f, preferred)
	} else {
		var wg sync.WaitGroup
		wg.Go(func() { _, err = repository.StatWALAtOnce(ctx, r.b, f, preferred) })
		id, ierr := repository.LoadIdentity(ctx, r.b)
		wg.Wait()
		if errors.Is(ierr, storage.ErrNotFound) {
			return false, nil
		}
		if ierr != nil {
			return false, fmt.Errorf("read %s from %s: %w", repository.IdentityKey, r.b.Location(), ierr)
		}
		if r.systemID != "" && id.SystemID != r.systemID {
			return false, fmt.Errorf("repository %s belongs to the cluster with system identifier %s, but this server's is %s: use the repository this server archives to, or a new repository prefix for this cluster",
				r.b.Location(), id.SystemID, r.systemID)
		}
		r.ident = &id
	}
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for %s in %s: %w", f, r.b.Location(), err)
	}
	return true, nil
}
