package receive

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walvault/walvault/wal"
)

// Messages inside the replication COPY stream (PostgreSQL's "Streaming
// Replication Protocol").

// xlogData is an XLogData ('w') message: WAL starting at Start.
type xlogData struct {
	Start  wal.LSN
	WALEnd wal.LSN
	Data   []byte // points into the message
}

// keepalive is a primary keepalive ('k') message.
type keepalive struct {
	WALEnd        wal.LSN
	ReplyRequired bool
}

func parseXLogData(b []byte) (xlogData, error) {
	if len(b) < 1+24 || b[0] != 'w' {
		return xlogData{}, fmt.Errorf("malformed XLogData message (%d bytes)", len(b))
	}
	return xlogData{
		Start:  wal.LSN(binary.BigEndian.Uint64(b[1:])),
		WALEnd: wal.LSN(binary.BigEndian.Uint64(b[9:])),
		Data:   b[25:],
	}, nil
}

func parseKeepalive(b []byte) (keepalive, error) {
	if len(b) != 1+17 || b[0] != 'k' {
		return keepalive{}, fmt.Errorf("malformed keepalive message (%d bytes)", len(b))
	}
	return keepalive{WALEnd: wal.LSN(binary.BigEndian.Uint64(b[1:])), ReplyRequired: b[17] != 0}, nil
}

// pgEpoch is PostgreSQL's timestamp origin.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// statusUpdate is a standby status update ('r') reporting pos as written,
// flushed and applied.
func statusUpdate(pos wal.LSN, now time.Time) []byte {
	b := make([]byte, 1+8*4+1)
	b[0] = 'r'
	binary.BigEndian.PutUint64(b[1:], uint64(pos))
	binary.BigEndian.PutUint64(b[9:], uint64(pos))
	binary.BigEndian.PutUint64(b[17:], uint64(pos))
	binary.BigEndian.PutUint64(b[25:], uint64(now.Sub(pgEpoch).Microseconds()))
	return b
}

// parseSegmentSize parses SHOW wal_segment_size ("16MB", "1GB").
func parseSegmentSize(s string) (uint32, error) {
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

// quoteIdent quotes a slot or role name for a replication command or a
// message, as SQL quotes an identifier.
func quoteIdent(s string) string {
	return pgx.Identifier{s}.Sanitize()
}
