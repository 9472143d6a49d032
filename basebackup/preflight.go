package basebackup

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// minServerVersion is the oldest PostgreSQL whose BASE_BACKUP syntax and
// copystream format this package speaks.
const minServerVersion = 150000

// serverSettings are what preflight reads from the server.
type serverSettings struct {
	VersionNum     int    // server_version_num, e.g. 150010
	SegmentSize    uint32 // wal_segment_size in bytes
	ArchiveMode    string // off, on, always
	ArchiveCommand string
	ArchiveLibrary string
	InRecovery     bool // a standby
}

// ErrRefused marks a refusal to take a backup because the server or the
// repository is not set up for it; the message says what to change.
var ErrRefused = errors.New("backup refused")

// refusef builds an error wrapping ErrRefused.
func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRefused}, args...)...)
}

// readSettings reads the settings on a normal (non-replication) connection.
func readSettings(ctx context.Context, w wire, user string) (serverSettings, error) {
	rs, err := simpleQuery(ctx, w, "SELECT current_setting('server_version_num'), current_setting('archive_mode'), "+
		"(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "+
		"coalesce((SELECT setting FROM pg_settings WHERE name = 'archive_library'), ''), "+
		"pg_is_in_recovery()", nil)
	if err != nil {
		return serverSettings{}, fmt.Errorf("read server settings: %w", err)
	}
	if len(rs.rows) != 1 || len(rs.rows[0]) != 5 {
		return serverSettings{}, fmt.Errorf("read server settings: got %d rows, want 1 of 5 fields", len(rs.rows))
	}
	row := rs.rows[0]
	var s serverSettings
	if s.VersionNum, err = strconv.Atoi(row[0].s); err != nil {
		return serverSettings{}, fmt.Errorf("read server settings: server_version_num %q is not a number", row[0].s)
	}
	seg, err := strconv.ParseUint(row[2].s, 10, 32)
	if err != nil {
		return serverSettings{}, fmt.Errorf("read server settings: wal_segment_size %q is not a number of bytes", row[2].s)
	}
	s.SegmentSize = uint32(seg)
	s.ArchiveMode, s.ArchiveLibrary, s.InRecovery = row[1].s, row[3].s, row[4].s == "t"

	rs, err = simpleQuery(ctx, w, "SHOW archive_command", nil)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return serverSettings{}, fmt.Errorf("%w: walvault checks that archive_command runs walvault before a backup: GRANT pg_read_all_settings TO %s", err, quoteIdent(user))
		}
		return serverSettings{}, fmt.Errorf("read server settings: %w", err)
	}
	if len(rs.rows) != 1 || len(rs.rows[0]) != 1 {
		return serverSettings{}, errors.New("SHOW archive_command: want one value")
	}
	s.ArchiveCommand = rs.rows[0][0].s
	return s, nil
}

// checkServer refuses a server whose WAL does not reach walvault: without
// every WAL segment from the backup's start to its end in the repository,
// the backup cannot be restored.
func checkServer(s serverSettings, location string) error {
	if s.VersionNum < minServerVersion {
		return refusef("PostgreSQL %s is too old: walvault needs PostgreSQL 15 or later", formatVersion(s.VersionNum))
	}
	line := "archive_command = 'walvault wal-push %p' (with the repository " + location + " in the server's environment or walvault config)"
	switch s.ArchiveMode {
	case "on", "always":
	default:
		return refusef("archive_mode is %q, so no WAL reaches the repository and a backup could never be restored: set archive_mode = on and %s in postgresql.conf, then restart PostgreSQL", s.ArchiveMode, line)
	}
	if s.ArchiveLibrary != "" {
		return refusef("archive_library is %q, so PostgreSQL archives WAL through that library, not walvault: set archive_library = '' and %s, then reload PostgreSQL", s.ArchiveLibrary, line)
	}
	if !runsWalvault(s.ArchiveCommand) {
		return refusef("archive_command is %q, which does not run walvault wal-push, so the WAL this backup needs would not reach %s: set %s, then reload PostgreSQL (SELECT pg_reload_conf())", s.ArchiveCommand, location, line)
	}
	return nil
}

// runsWalvault reports whether an archive_command runs walvault's wal-push.
func runsWalvault(cmd string) bool {
	return strings.Contains(cmd, "walvault") && strings.Contains(cmd, "wal-push")
}

func formatVersion(num int) string {
	return fmt.Sprintf("%d.%d", num/10000, num%10000)
}

// checkRepository refuses a repository that no WAL of this cluster has
// reached, or that belongs to another cluster.
func checkRepository(ctx context.Context, b storage.Backend, sys systemInfo, s serverSettings) (repository.Identity, error) {
	id, err := repository.LoadIdentity(ctx, b)
	if errors.Is(err, storage.ErrNotFound) {
		return repository.Identity{}, refusef("no WAL has reached repository %s yet (it has no %s): check archive_command and the server log, and run SELECT pg_switch_wal() to archive a first segment", b.Location(), repository.IdentityKey)
	}
	if err != nil {
		return repository.Identity{}, fmt.Errorf("read the identity of repository %s: %w", b.Location(), err)
	}
	if id.SystemID != sys.SystemID {
		return repository.Identity{}, refusef("repository %s belongs to the cluster with system identifier %s, but this server's is %s: use the repository this server archives to, or a new repository prefix for this cluster", b.Location(), id.SystemID, sys.SystemID)
	}
	if id.WALSegmentSize != 0 && id.WALSegmentSize != s.SegmentSize {
		return repository.Identity{}, refusef("repository %s holds WAL segments of %d bytes, but this server's wal_segment_size is %d", b.Location(), id.WALSegmentSize, s.SegmentSize)
	}
	return id, nil
}
