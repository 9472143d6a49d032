package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/wal"
)

// ReplicationWire is a physical replication connection as wal-receive
// uses it: commands through Wire (Exec, IdentifySystem, ...), then one
// START_REPLICATION whose COPY stream Receive reads. pgtest fakes it.
type ReplicationWire interface {
	Wire
	// ParameterStatus is a run-time parameter the server reported at
	// connection, such as server_version_num ("" when it did not).
	ParameterStatus(name string) string
	// StartReplication starts streaming timeline tli from start on slot
	// and returns once the server entered the COPY stream (nil, nil). A
	// start exactly at the end of an old timeline has no stream: the
	// server answers with the next timeline at once, which is returned.
	StartReplication(ctx context.Context, slot string, start wal.LSN, tli wal.TimelineID) (*TimelineEnd, error)
	// SendStandbyStatus reports pos as written, flushed and applied, at
	// the client's clock now.
	SendStandbyStatus(pos wal.LSN, now time.Time) error
	// SendCopyDone acknowledges the server's end of the COPY stream; the
	// server's answer (the next timeline) is read with Receive.
	SendCopyDone() error
	Close()
}

// TimelineEnd is where the server said a streamed timeline ended.
type TimelineEnd struct {
	Next        wal.TimelineID
	SwitchPoint wal.LSN
}

// ErrMalformed marks an answer from the server that walvault cannot
// read: retrying would get the same.
var ErrMalformed = errors.New("malformed answer from PostgreSQL")

type malformedError struct{ msg string }

func (e *malformedError) Error() string        { return e.msg }
func (e *malformedError) Is(target error) bool { return target == ErrMalformed }

func malformedf(format string, args ...any) error {
	return &malformedError{fmt.Sprintf(format, args...)}
}

// StartReplication implements ReplicationWire with pglogrepl, which sends
// START_REPLICATION and reads up to the COPY stream (or the next
// timeline).
func (c *Conn) StartReplication(ctx context.Context, slot string, start wal.LSN, tli wal.TimelineID) (*TimelineEnd, error) {
	err := pglogrepl.StartReplication(ctx, c.pc, QuoteIdent(slot), pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{Timeline: int32(tli), Mode: pglogrepl.PhysicalReplication})
	if next, pos, ok := pglogrepl.IsErrEndTimeline(err); ok {
		return &TimelineEnd{Next: wal.TimelineID(next), SwitchPoint: wal.LSN(pos)}, nil
	}
	return nil, err
}

// SendStandbyStatus implements ReplicationWire with pglogrepl's standby
// status update.
func (c *Conn) SendStandbyStatus(pos wal.LSN, now time.Time) error {
	lsn := pglogrepl.LSN(pos)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), c.pc, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn, ClientTime: now,
	})
	if err != nil {
		return fmt.Errorf("send standby status update: %w", err)
	}
	return nil
}

// SendCopyDone implements ReplicationWire. It is written here, not taken
// from pglogrepl: pglogrepl.SendStandbyCopyDone also reads the server's
// answer, without a context (a server that stops answering would hang
// wal-receive), while the stream loop reads it with its deadline.
func (c *Conn) SendCopyDone() error {
	c.pc.Frontend().Send(&pgproto3.CopyDone{})
	if err := c.pc.Frontend().Flush(); err != nil {
		return fmt.Errorf("send CopyDone: %w", err)
	}
	return nil
}

// XLogData and keepalive parsing are pglogrepl's (ParseXLogData,
// ParsePrimaryKeepaliveMessage on a CopyData without its type byte).

// SystemInfo is IDENTIFY_SYSTEM's answer.
type SystemInfo struct {
	SystemID string // decimal, as PostgreSQL prints it
	Timeline wal.TimelineID
	XLogPos  wal.LSN
}

// IdentifySystem runs IDENTIFY_SYSTEM on a replication connection. It is
// written over Wire rather than taken from pglogrepl.IdentifySystem,
// which needs a concrete *pgconn.PgConn (no test seam) and checks less
// (a zero timeline, a system identifier that is not a number).
func IdentifySystem(ctx context.Context, w Wire) (SystemInfo, error) {
	rs, err := SimpleQuery(ctx, w, "IDENTIFY_SYSTEM", nil)
	if err != nil {
		return SystemInfo{}, err
	}
	if len(rs.Rows) != 1 || len(rs.Fields) < 3 {
		return SystemInfo{}, malformedf("IDENTIFY_SYSTEM: got %d rows of %d fields, want 1 row of at least 3", len(rs.Rows), len(rs.Fields))
	}
	row := rs.Rows[0]
	if _, err := strconv.ParseUint(row[0].S, 10, 64); err != nil {
		return SystemInfo{}, malformedf("IDENTIFY_SYSTEM: system identifier %q is not a number", row[0].S)
	}
	tli, err := ParseTimeline(row[1].S)
	if err != nil {
		return SystemInfo{}, malformedf("IDENTIFY_SYSTEM: %v", err)
	}
	pos, err := wal.ParseLSN(row[2].S)
	if err != nil {
		return SystemInfo{}, malformedf("IDENTIFY_SYSTEM: %v", err)
	}
	return SystemInfo{SystemID: row[0].S, Timeline: tli, XLogPos: pos}, nil
}

// ParseTimeline parses a timeline as the server prints it (decimal, not 0).
func ParseTimeline(s string) (wal.TimelineID, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid timeline %q", s)
	}
	return wal.TimelineID(n), nil
}

// SegmentSize runs SHOW wal_segment_size on a replication connection.
func SegmentSize(ctx context.Context, w Wire) (uint32, error) {
	rs, err := SimpleQuery(ctx, w, "SHOW wal_segment_size", nil)
	if err != nil {
		return 0, err
	}
	if len(rs.Rows) != 1 || len(rs.Rows[0]) != 1 {
		return 0, malformedf("SHOW wal_segment_size: unexpected answer")
	}
	size, err := ParseSegmentSize(rs.Rows[0][0].S)
	if err != nil {
		return 0, &malformedError{err.Error()}
	}
	return size, nil
}

// ParseSegmentSize parses SHOW wal_segment_size ("16MB", "1GB").
func ParseSegmentSize(s string) (uint32, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseUint(n, 10, 32)
			if err != nil {
				break
			}
			size := v * u.mult
			if size > 1<<30 {
				break
			}
			if err := wal.ValidateSegmentSize(uint32(size)); err != nil {
				return 0, err
			}
			return uint32(size), nil
		}
	}
	return 0, fmt.Errorf("cannot parse wal_segment_size %q", s)
}

// ReplicationSlot is READ_REPLICATION_SLOT's answer.
type ReplicationSlot struct {
	Type       string  // physical or logical; "" when the slot does not exist
	RestartLSN wal.LSN // 0 when the slot has none
	// RestartTimeline is the timeline of RestartLSN as the server printed
	// it ("" when unknown).
	RestartTimeline string
}

// ReadReplicationSlot runs READ_REPLICATION_SLOT (PostgreSQL 15). The
// server refuses a logical slot with SQLSTATE 0A000 (errors.As finds the
// *pgconn.PgError). pglogrepl has no such command.
func ReadReplicationSlot(ctx context.Context, w Wire, slot string) (ReplicationSlot, error) {
	res, err := Exec(ctx, w, "READ_REPLICATION_SLOT "+QuoteIdent(slot))
	if err != nil {
		return ReplicationSlot{}, err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3 {
		return ReplicationSlot{}, malformedf("READ_REPLICATION_SLOT: unexpected answer")
	}
	row := res[0].Rows[0]
	if !row[0].Valid {
		return ReplicationSlot{}, nil
	}
	s := ReplicationSlot{Type: row[0].S}
	if row[2].Valid {
		s.RestartTimeline = row[2].S
	}
	if row[1].Valid {
		if s.RestartLSN, err = wal.ParseLSN(row[1].S); err != nil {
			return ReplicationSlot{}, malformedf("READ_REPLICATION_SLOT: %v", err)
		}
	}
	return s, nil
}

// CreatePhysicalSlot creates a physical replication slot that reserves WAL
// from now on. pglogrepl.CreateReplicationSlot creates logical slots (it
// wants an output plugin) and needs a concrete *pgconn.PgConn.
func CreatePhysicalSlot(ctx context.Context, w Wire, slot string) error {
	_, err := Exec(ctx, w, "CREATE_REPLICATION_SLOT "+QuoteIdent(slot)+" PHYSICAL RESERVE_WAL")
	return err
}

// TimelineHistory fetches timeline tli's history file from the server:
// its name and content. pglogrepl.ParseTimelineHistory reads a concrete
// connection's result, so the command is run over Wire here.
func TimelineHistory(ctx context.Context, w Wire, tli wal.TimelineID) (string, []byte, error) {
	what := fmt.Sprintf("TIMELINE_HISTORY %d", uint32(tli))
	res, err := Exec(ctx, w, what)
	if err != nil {
		return "", nil, err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 2 {
		return "", nil, malformedf("%s: unexpected answer", what)
	}
	row := res[0].Rows[0]
	if want := (wal.FileName{Kind: wal.KindTimelineHistory, Timeline: tli}).String(); row[0].S != want {
		return "", nil, malformedf("%s: the server sent %q, want %s", what, row[0].S, want)
	}
	return row[0].S, []byte(row[1].S), nil
}

// ParseTimelineEnd reads the (next_tli, next_tli_startpos) row the server
// sends after the COPY stream of a timeline that ended. pglogrepl reads
// that row only inside SendStandbyCopyDone (see SendCopyDone), so the
// stream loop parses it here.
func ParseTimelineEnd(values [][]byte) (TimelineEnd, error) {
	if len(values) != 2 {
		return TimelineEnd{}, malformedf("end of timeline: want 2 columns, got %d", len(values))
	}
	next, err := strconv.ParseUint(string(values[0]), 10, 32)
	if err != nil || next == 0 {
		return TimelineEnd{}, malformedf("end of timeline: bad next timeline %q", values[0])
	}
	lsn, err := wal.ParseLSN(string(values[1]))
	if err != nil {
		return TimelineEnd{}, malformedf("end of timeline: %v", err)
	}
	return TimelineEnd{Next: wal.TimelineID(next), SwitchPoint: lsn}, nil
}

// ReceiveApplicationName is the application_name wal-receive connects
// with: how backup-push and check tell its walsender from a standby's.
const ReceiveApplicationName = "walvault-receive"
