package pg

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// MinVersion is the oldest PostgreSQL walvault streams and backs up from
// (server_version_num): PostgreSQL 15's BASE_BACKUP copystream and
// READ_REPLICATION_SLOT.
const MinVersion = 150000

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
