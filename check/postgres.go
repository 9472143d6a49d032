package check

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walvault/walvault/pg"
)

// server is what check learnt from PostgreSQL, gathered on one connection
// that is closed before the checks judge it.
type server struct {
	connErr    error
	user       string
	version    string
	sysID      string
	sysIDErr   error
	inRecovery bool
	segSize    uint32
	settings   map[string]setting
	archiver   archiverStats
	archErr    error
	// currentWAL is the segment being written (primary only).
	currentWAL string
	ready      readyFiles
	// slots are those wal-receive streams from and the one --slot names.
	slots    []slotState
	slotsErr error
}

// setting is one server setting, or why it could not be read.
type setting struct {
	value string
	err   error
}

type archiverStats struct {
	archived       int64
	lastArchived   string
	lastArchivedAt *time.Time
	failed         int64
	lastFailed     string
	lastFailedAt   *time.Time
	// Ages by the server's clock, in seconds (nil when never).
	archivedAge, failedAge *float64
}

// readyFiles is what pg_ls_archive_statusdir() says of .ready files.
type readyFiles struct {
	err    error
	count  int64
	oldest *float64 // age in seconds of the oldest, by the server's clock
}

// settingNames are read with current_setting, one by one, so a setting
// the role may not read only fails its own check.
var settingNames = []string{"wal_level", "archive_mode", "archive_command", "archive_library", "data_directory", "wal_segment_size"}

// connectTimeout bounds connecting when the connection string sets none.
const connectTimeout = 10 * time.Second

// gather connects and reads everything the PostgreSQL checks need; slot is
// the replication slot --slot names ("" for none).
func gather(ctx context.Context, connString, slot string) *server {
	s := &server{settings: map[string]setting{}}
	cfg, err := pg.ParseConfig(connString, "")
	if err != nil {
		s.connErr = err
		return s
	}
	cfg.RuntimeParams["application_name"] = "walvault check"
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	s.user = cfg.User
	conn, err := pg.Connect(ctx, cfg)
	if err != nil {
		s.connErr = err
		return s
	}
	defer pg.CloseSQL(conn)

	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), pg_is_in_recovery()").Scan(&s.version, &s.inRecovery); err != nil {
		s.connErr = fmt.Errorf("query PostgreSQL: %w", err)
		return s
	}
	if err := conn.QueryRow(ctx, "SELECT system_identifier::text FROM pg_control_system()").Scan(&s.sysID); err != nil {
		s.sysIDErr = privilegeHint(err, s.user, "pg_monitor")
	}
	for _, name := range settingNames {
		var v string
		err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v)
		s.settings[name] = setting{value: v, err: privilegeHint(err, s.user, "pg_read_all_settings")}
	}
	// current_setting gives it with its unit ("16MB").
	if v, err := pg.ParseSegmentSize(s.settings["wal_segment_size"].value); err == nil {
		s.segSize = v
	}
	a := &s.archiver
	s.archErr = conn.QueryRow(ctx, `SELECT archived_count, coalesce(last_archived_wal, ''), last_archived_time,
	       failed_count, coalesce(last_failed_wal, ''), last_failed_time,
	       extract(epoch FROM now() - last_archived_time)::float8, extract(epoch FROM now() - last_failed_time)::float8
	  FROM pg_stat_archiver`).Scan(&a.archived, &a.lastArchived, &a.lastArchivedAt, &a.failed, &a.lastFailed, &a.lastFailedAt, &a.archivedAge, &a.failedAge)
	if !s.inRecovery {
		_ = conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(&s.currentWAL)
	}
	s.ready.err = conn.QueryRow(ctx, `SELECT count(*), extract(epoch FROM now() - min(modification))::float8
	  FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'`).Scan(&s.ready.count, &s.ready.oldest)
	if s.ready.err != nil {
		s.ready.err = privilegeHint(s.ready.err, s.user, "pg_monitor")
	}
	s.slots, s.slotsErr = pg.ReadSlots(ctx, conn, receiveAppName, slot)
	return s
}

// privilegeHint says which role to grant when the server refused.
func privilegeHint(err error, user, role string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Errorf("%s: GRANT %s TO %s (or run check as a superuser)", pgErr.Message, role, pg.QuoteIdent(user))
	}
	return err
}
