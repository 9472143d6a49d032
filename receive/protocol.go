package receive

import (
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/walvault/walvault/wal"
)

// Messages inside the replication COPY stream (PostgreSQL's "Streaming
// Replication Protocol"), parsed by pglogrepl; each CopyData starts with
// its type byte, which pglogrepl's parsers take off.

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
	if len(b) == 0 || b[0] != 'w' {
		return xlogData{}, fmt.Errorf("malformed XLogData message (%d bytes)", len(b))
	}
	x, err := pglogrepl.ParseXLogData(b[1:])
	if err != nil {
		return xlogData{}, fmt.Errorf("malformed XLogData message (%d bytes): %w", len(b), err)
	}
	return xlogData{Start: wal.LSN(x.WALStart), WALEnd: wal.LSN(x.ServerWALEnd), Data: x.WALData}, nil
}

func parseKeepalive(b []byte) (keepalive, error) {
	if len(b) == 0 || b[0] != 'k' {
		return keepalive{}, fmt.Errorf("malformed keepalive message (%d bytes)", len(b))
	}
	k, err := pglogrepl.ParsePrimaryKeepaliveMessage(b[1:])
	if err != nil {
		return keepalive{}, fmt.Errorf("malformed keepalive message (%d bytes): %w", len(b), err)
	}
	return keepalive{WALEnd: wal.LSN(k.ServerWALEnd), ReplyRequired: k.ReplyRequested}, nil
}
