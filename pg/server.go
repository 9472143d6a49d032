package pg

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MinVersion is the oldest PostgreSQL walvault streams and backs up from
// (server_version_num): PostgreSQL 15's BASE_BACKUP copystream and
// READ_REPLICATION_SLOT.
const MinVersion = 150000

// MaxMajor is the newest PostgreSQL major version walvault supports: the
// newest whose WAL page magic, BASE_BACKUP stream and backup_manifest it
// knows and is tested with.
const MaxMajor = 18

// CheckVersion refuses a server_version_num outside the supported majors,
// PostgreSQL 15 to MaxMajor, in one line that says which version it is.
func CheckVersion(num int) error {
	switch {
	case num < MinVersion:
		return fmt.Errorf("PostgreSQL %s is too old: walvault needs PostgreSQL 15 or later", FormatVersion(num))
	case num/10000 > MaxMajor:
		return fmt.Errorf("PostgreSQL %s is not supported: this walvault supports PostgreSQL 15 to %d, and a newer major's WAL and backup formats are unknown to it; use a walvault release that supports PostgreSQL %d", FormatVersion(num), MaxMajor, num/10000)
	}
	return nil
}

// Settings are the server settings backup-push decides on.
type Settings struct {
	VersionNum     int    // server_version_num, e.g. 150010
	SegmentSize    uint32 // wal_segment_size in bytes
	ArchiveMode    string // off, on, always
	ArchiveCommand string
	ArchiveLibrary string
	InRecovery     bool // a standby
	// ClockOffset is how far the server's clock is ahead of this host's
	// (negative: behind), as measured around the query that read these
	// settings; 0 when within ClockUncertainty, half that query's round
	// trip. On a standby, with PrimaryClockKnown, it is its primary's.
	// Recovery targets are in the primary's time (commit timestamps), so
	// a backup's times are too.
	ClockOffset, ClockUncertainty time.Duration
	// PrimaryClockKnown: on a standby, ClockOffset is its primary's clock
	// (measured through the standby's WAL receiver), whose commit
	// timestamps recovery targets use; false there, it is the standby's.
	PrimaryClockKnown bool
}

// ReadSettings reads Settings on a normal (non-replication) connection.
// archive_command needs pg_read_all_settings on some servers: the error
// is then the server's 42501 (errors.As finds the *pgconn.PgError).
func ReadSettings(ctx context.Context, w Wire) (Settings, error) {
	sent := time.Now()
	rs, err := SimpleQuery(ctx, w, "SELECT current_setting('server_version_num'), current_setting('archive_mode'), "+
		"(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "+
		"coalesce((SELECT setting FROM pg_settings WHERE name = 'archive_library'), ''), "+
		"pg_is_in_recovery(), extract(epoch FROM clock_timestamp()), "+
		// On a standby: how far its primary's clock is ahead of its own,
		// from the last message its WAL receiver got (stamped by the
		// primary when sent, by the standby when received). NULL without
		// a receiver, or for a role that may not see it.
		"(SELECT extract(epoch FROM last_msg_send_time - last_msg_receipt_time) FROM pg_stat_wal_receiver)", nil)
	answered := time.Now()
	if err != nil {
		return Settings{}, fmt.Errorf("read server settings: %w", err)
	}
	if len(rs.Rows) != 1 || len(rs.Rows[0]) != 7 {
		return Settings{}, fmt.Errorf("read server settings: got %d rows, want 1 of 7 fields", len(rs.Rows))
	}
	row := rs.Rows[0]
	var s Settings
	epoch, err := strconv.ParseFloat(row[5].S, 64)
	if err != nil {
		return Settings{}, fmt.Errorf("read server settings: clock_timestamp() %q is not a number of seconds", row[5].S)
	}
	s.ClockOffset, s.ClockUncertainty = ClockOffset(sent, answered, time.Unix(0, int64(epoch*1e9)))
	if s.VersionNum, err = strconv.Atoi(row[0].S); err != nil {
		return Settings{}, fmt.Errorf("read server settings: server_version_num %q is not a number", row[0].S)
	}
	seg, err := strconv.ParseUint(row[2].S, 10, 32)
	if err != nil {
		return Settings{}, fmt.Errorf("read server settings: wal_segment_size %q is not a number of bytes", row[2].S)
	}
	s.SegmentSize = uint32(seg)
	s.ArchiveMode, s.ArchiveLibrary, s.InRecovery = row[1].S, row[3].S, row[4].S == "t"
	if s.InRecovery {
		// Recovery targets are the primary's commit times: a standby's
		// own clock is the wrong one to record a backup's times by.
		lead, err := strconv.ParseFloat(row[6].S, 64)
		if row[6].Valid && err == nil {
			s.ClockOffset += time.Duration(lead * float64(time.Second))
			s.PrimaryClockKnown = true
		}
	}

	rs, err = SimpleQuery(ctx, w, "SHOW archive_command", nil)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return Settings{}, err
		}
		return Settings{}, fmt.Errorf("read server settings: %w", err)
	}
	if len(rs.Rows) != 1 || len(rs.Rows[0]) != 1 {
		return Settings{}, errors.New("SHOW archive_command: want one value")
	}
	s.ArchiveCommand = rs.Rows[0][0].S
	return s, nil
}

// ClockOffset is how far a server's clock, read as server between sent
// and answered on this host's clock, is ahead of this host's (negative:
// behind); 0 when within uncertainty, half the round trip.
func ClockOffset(sent, answered, server time.Time) (offset, uncertainty time.Duration) {
	uncertainty = answered.Sub(sent) / 2
	offset = server.Sub(sent.Add(uncertainty))
	if offset.Abs() <= uncertainty {
		offset = 0
	}
	return offset, uncertainty
}

var serverVersionPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9]+)(?:\.([0-9]+))?`) })

// VersionNumOf turns the server_version a server reports when a connection
// starts ("18.4", "15.10 (Debian 15.10-1.pgdg120+1)", "19devel") into
// server_version_num's form (180004, 150010, 190000), which servers do not
// report by themselves; 0 when it is not a version.
func VersionNumOf(serverVersion string) int {
	m := serverVersionPattern().FindStringSubmatch(serverVersion)
	if m == nil {
		return 0
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return major*10000 + minor
}

// FormatVersion prints server_version_num as a major.minor version.
func FormatVersion(num int) string {
	return fmt.Sprintf("%d.%d", num/10000, num%10000)
}

// Slot is a replication slot and, when a client streams from it, its
// walsender, as ReadSlots reads them.
type Slot struct {
	Name, Type string // Type: physical or logical
	Active     bool
	RestartLSN string // "" when the slot has none
	WALStatus  string // reserved, extended, unreserved, lost
	AppName    string // the walsender's application_name; "" when inactive
	State      string // the walsender's state; "" when inactive
	// FlushLSN is what the client reported flushed: for wal-receive, what
	// is durable in its repository. "" when unknown (inactive, or hidden
	// from a role without pg_read_all_stats).
	FlushLSN string
	// Behind is the server's WAL position minus FlushLSN, Retained that
	// position minus RestartLSN, in bytes (nil when unknown).
	Behind, Retained *int64
	// Lag times from pg_stat_replication, in seconds (nil when the server
	// has no recent measurement: nothing to stream lately).
	FlushLag, ReplayLag *float64
}

// StreamedBy reports whether a client named appName streams from the
// physical slot now.
func (s Slot) StreamedBy(appName string) bool {
	return s.Type == "physical" && s.Active && s.AppName == appName
}

// slotsQuery reads the physical slots a client named $1 streams from and
// the slot named $2, whatever its state. The server's WAL position is
// where a walsender can send up to: the insert position on a primary, the
// received or replayed one on a standby. Everyone may read
// pg_replication_slots and application_name; the walsender's positions
// and lags need pg_read_all_stats (pg_monitor).
const slotsQuery = `SELECT s.slot_name, s.slot_type, s.active, coalesce(s.restart_lsn::text, ''), coalesce(s.wal_status, ''),
       coalesce(r.application_name, ''), coalesce(r.state, ''), coalesce(r.flush_lsn::text, ''),
       (c.lsn - r.flush_lsn)::int8, (c.lsn - s.restart_lsn)::int8,
       extract(epoch FROM r.flush_lag)::float8, extract(epoch FROM r.replay_lag)::float8
  FROM pg_replication_slots s
  LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
 CROSS JOIN (SELECT CASE WHEN pg_is_in_recovery()
                         THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                         ELSE pg_current_wal_lsn() END AS lsn) c
 WHERE (s.slot_type = 'physical' AND r.application_name = $1) OR s.slot_name = $2
 ORDER BY s.slot_name`

// ReadSlots reads the physical slots a client named appName streams from
// now, and the slot called named ("" for none) whatever its state.
func ReadSlots(ctx context.Context, conn *pgx.Conn, appName, named string) ([]Slot, error) {
	rows, err := conn.Query(ctx, slotsQuery, appName, named)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Slot
	for rows.Next() {
		var s Slot
		if err := rows.Scan(&s.Name, &s.Type, &s.Active, &s.RestartLSN, &s.WALStatus, &s.AppName, &s.State, &s.FlushLSN,
			&s.Behind, &s.Retained, &s.FlushLag, &s.ReplayLag); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
