package basebackup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walvault/walvault/archiveproof"
	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// serverSettings are what preflight reads from the server.
type serverSettings = pg.Settings

// ErrRefused marks a refusal to take a backup because the server or the
// repository is not set up for it; the message says what to change.
var ErrRefused = errors.New("backup refused")

// refusef builds an error wrapping ErrRefused.
func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRefused}, args...)...)
}

// readSettings reads the settings on a normal (non-replication) connection.
func readSettings(ctx context.Context, w pg.Wire, user string) (serverSettings, error) {
	s, err := pg.ReadSettings(ctx, w)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		// Only archive_command is hidden from some roles.
		return serverSettings{}, fmt.Errorf("%w: walvault checks that archive_command runs walvault before a backup: GRANT pg_read_all_settings TO %s", err, pg.QuoteIdent(user))
	}
	return s, err
}

// checkVersion refuses a server whose BASE_BACKUP walvault does not speak.
func checkVersion(s serverSettings) error {
	if err := pg.CheckVersion(s.VersionNum); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return nil
}

// archiveModeError says why archive_mode keeps WAL from being archived at
// all, or nil when the server archives: whether what it archives reaches
// this repository is proven by its effect (archiveproof), not judged from
// archive_command's words.
func archiveModeError(s serverSettings, location string) error {
	switch s.ArchiveMode {
	case "on", "always":
		return nil
	}
	line := "archive_command = 'walvault wal-push %p' (with the repository " + location + " in the server's environment or walvault config)"
	return refusef("archive_mode is %q, so no WAL reaches the repository and a backup could never be restored: set archive_mode = on and %s in postgresql.conf, then restart PostgreSQL", s.ArchiveMode, line)
}

const receiveAppName = pg.ReceiveApplicationName

// slotInfo is a physical replication slot and, when one streams from it,
// its walsender.
type slotInfo struct {
	Name    string
	Active  bool
	AppName string  // the walsender's application_name ("" when inactive)
	Flush   wal.LSN // what the client reported flushed; 0 when unknown
}

// receiving reports whether wal-receive streams from the slot now.
func (si slotInfo) receiving() bool { return si.Active && si.AppName == receiveAppName }

// walSource is where the WAL a backup needs comes from: archive_command,
// or wal-receive streaming from Slot.
type walSource struct {
	Slot  string  // "" for archive_command
	Flush wal.LSN // wal-receive's flush position as the server saw it; 0 when unknown
}

func (s walSource) String() string {
	if s.Slot == "" {
		return "archive_command"
	}
	return "wal-receive on slot " + s.Slot
}

// receiveHint is how to set up the other WAL source, for refusals.
const receiveHint = "or run `walvault wal-receive --slot walvault --create-slot` into the same repository, which streams WAL over a replication slot and replaces archive_command as backup-push's WAL source"

// archiveProbe is how chooseSource sees whether archiving reaches the
// repository: seen is the cheap look (the archiver's last segment is
// there), prove switches WAL and waits (archiveproof.Prove).
type archiveProbe struct {
	seen  func() (bool, error)
	prove func() error
}

// chooseSource decides which WAL source a backup relies on: archive_command
// when the archiver's last segment is already in the repository; else the
// slots wal-receive streams from now, as candidates for confirmReceiver;
// else archive_command once a segment it archives after a WAL switch
// reaches the repository. slots is only read when the cheap look fails,
// so a server whose archiving visibly reaches the repository is not asked
// about replication. With neither source, the refusal says how to set up
// either.
func chooseSource(s serverSettings, location string, probe archiveProbe, slots func() ([]slotInfo, error)) (archive bool, receivers []slotInfo, err error) {
	if err := checkVersion(s); err != nil {
		return false, nil, err
	}
	modeErr := archiveModeError(s, location)
	if modeErr == nil {
		seen, err := probe.seen()
		if err != nil {
			return false, nil, err
		}
		if seen {
			return true, nil, nil
		}
	}
	all, slotsErr := slots()
	var idle []string
	for _, si := range all {
		if si.receiving() {
			receivers = append(receivers, si)
		} else if !si.Active {
			idle = append(idle, si.Name)
		}
	}
	if slotsErr == nil && len(receivers) > 0 {
		return false, receivers, nil
	}
	archErr := modeErr
	if modeErr == nil {
		err := probe.prove()
		if err == nil {
			return true, nil, nil
		}
		if !errors.Is(err, archiveproof.ErrNotReached) {
			return false, nil, err
		}
		archErr = fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if slotsErr != nil {
		return false, nil, fmt.Errorf("%w; looking for a wal-receive streaming from a replication slot instead failed: %w", archErr, slotsErr)
	}
	hint := receiveHint
	if len(idle) > 0 {
		// The likeliest cause: wal-receive stopped.
		hint += fmt.Sprintf(" (physical slot %s exists but is inactive: is wal-receive running?)", quoteList(idle))
	}
	return false, nil, fmt.Errorf("%w; %s", archErr, hint)
}

// quoteList prints names as 'a', 'b'.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return strings.Join(q, ", ")
}

// slotsQuery lists the physical slots with their walsenders. Any role may
// read pg_replication_slots and a walsender's application_name; flush_lsn
// needs pg_read_all_stats (pg_monitor) and is NULL without it.
const slotsQuery = "SELECT s.slot_name, s.active, coalesce(r.application_name, ''), coalesce(r.flush_lsn::text, '') " +
	"FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid " +
	"WHERE s.slot_type = 'physical' ORDER BY s.slot_name"

// readSlots runs slotsQuery on a normal connection, which stays usable
// after the server refuses it (archiving may be proven on it next).
func readSlots(ctx context.Context, w pg.Wire) ([]slotInfo, error) {
	rss, err := pg.Exec(ctx, w, slotsQuery)
	if err != nil {
		return nil, fmt.Errorf("read replication slots: %w", err)
	}
	if len(rss) != 1 {
		return nil, fmt.Errorf("read replication slots: got %d results, want 1", len(rss))
	}
	rs := rss[0]
	out := make([]slotInfo, 0, len(rs.Rows))
	for _, row := range rs.Rows {
		if len(row) != 4 {
			return nil, fmt.Errorf("read replication slots: got %d fields, want 4", len(row))
		}
		si := slotInfo{Name: row[0].S, Active: row[1].S == "t", AppName: row[2].S}
		if row[3].S != "" {
			if si.Flush, err = wal.ParseLSN(row[3].S); err != nil {
				return nil, fmt.Errorf("read replication slots: slot %s: %w", si.Name, err)
			}
		}
		out = append(out, si)
	}
	return out, nil
}

// confirmReceiver picks, among the slots wal-receive streams from, one that
// streams into this repository: the repository holds what its walsender
// says was flushed (wal-receive reports a position flushed only once it
// is durable in its repository). A slot whose flush position the role
// cannot see, or that reports a segment boundary the repository cannot
// vouch for, is taken unconfirmed: the wait at the end of the backup
// confirms it. A wal-receive that feeds another repository is refused
// before a long backup that could never become DONE.
func confirmReceiver(ctx context.Context, b storage.Backend, c repository.Compression, tli wal.TimelineID, segSize uint32, receivers []slotInfo) (walSource, error) {
	var unknown []slotInfo
	var elsewhere []string
	for _, si := range receivers {
		if si.Flush == 0 {
			unknown = append(unknown, si)
			continue
		}
		has, where, err := repositoryHas(ctx, b, c, tli, segSize, si.Flush)
		if err != nil {
			return walSource{}, err
		}
		if has {
			return walSource{Slot: si.Name, Flush: si.Flush}, nil
		}
		if uint64(si.Flush)%uint64(segSize) == 0 {
			// A wal-receive that just (re)started reports the start of the
			// segment it resumes at before storing any of it, and the
			// segment before may predate the repository.
			unknown = append(unknown, si)
			continue
		}
		elsewhere = append(elsewhere, fmt.Sprintf("slot '%s' reports %s flushed, but %s", si.Name, si.Flush, where))
	}
	if len(unknown) > 0 {
		return walSource{Slot: unknown[0].Name}, nil
	}
	return walSource{}, refusef("wal-receive streams from this server, but not into repository %s: %s; point that wal-receive at %s (--repo), or give backup-push the repository it streams into",
		b.Location(), strings.Join(elsewhere, "; "), b.Location())
}

// repositoryHas reports whether the repository holds the WAL just before
// lsn on timeline tli: the complete segment, or a partial of it reaching
// lsn. Partials are looked at first: wal-receive deletes them only after
// storing the complete segment, so this order cannot miss both. where
// says what is missing when it does not.
func repositoryHas(ctx context.Context, b storage.Backend, c repository.Compression, tli wal.TimelineID, segSize uint32, lsn wal.LSN) (has bool, where string, err error) {
	seg, err := wal.SegmentFromLSN(tli, lsn-1, segSize)
	if err != nil {
		return false, "", err
	}
	parts, err := repository.ListPartials(ctx, b, seg)
	if err != nil {
		return false, "", fmt.Errorf("look for partials of %s in %s: %w", seg, b.Location(), err)
	}
	for _, p := range parts {
		if p.End >= lsn {
			return true, "", nil
		}
	}
	_, err = repository.StatWAL(ctx, b, wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}, c)
	switch {
	case err == nil:
		return true, "", nil
	case errors.Is(err, storage.ErrNotFound):
		return false, fmt.Sprintf("the repository has neither segment %s nor a partial of it reaching %s", seg, lsn), nil
	}
	return false, "", fmt.Errorf("look for %s in %s: %w", seg, b.Location(), err)
}

// errNoWAL: the repository has no walvault.json yet.
var errNoWAL = errors.New("no WAL has reached")

// checkRepository refuses a repository that no WAL of this cluster has
// reached, or that belongs to another cluster.
func checkRepository(ctx context.Context, b storage.Backend, sys pg.SystemInfo, s serverSettings) (repository.Identity, error) {
	id, err := repository.LoadIdentity(ctx, b)
	if errors.Is(err, storage.ErrNotFound) {
		return repository.Identity{}, fmt.Errorf("%w: %w repository %s yet (it has no %s): check archive_command (or wal-receive) and the server log, and run SELECT pg_switch_wal() to archive a first segment", ErrRefused, errNoWAL, b.Location(), repository.IdentityKey)
	}
	if err != nil {
		return repository.Identity{}, fmt.Errorf("read the identity of repository %s: %w", b.Location(), err)
	}
	if err := id.CheckCluster(sys.SystemID, s.VersionNum/10000, b.Location()); err != nil {
		return repository.Identity{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if id.WALSegmentSize != 0 && id.WALSegmentSize != s.SegmentSize {
		return repository.Identity{}, refusef("repository %s holds WAL segments of %d bytes, but this server's wal_segment_size is %d", b.Location(), id.WALSegmentSize, s.SegmentSize)
	}
	return id, nil
}
