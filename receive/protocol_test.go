package receive

import (
	"encoding/binary"
	"testing"

	"github.com/walvault/walvault/wal"
)

func TestParseXLogData(t *testing.T) {
	msg := make([]byte, 25, 28)
	msg[0] = 'w'
	binary.BigEndian.PutUint64(msg[1:], 0x1_0000_0010)
	binary.BigEndian.PutUint64(msg[9:], 0x1_0000_0020)
	msg = append(msg, 1, 2, 3)
	x, err := parseXLogData(msg)
	if err != nil {
		t.Fatal(err)
	}
	if x.Start != wal.LSN(0x1_0000_0010) || x.WALEnd != wal.LSN(0x1_0000_0020) || string(x.Data) != "\x01\x02\x03" {
		t.Errorf("got %+v", x)
	}
	if _, err := parseXLogData([]byte{'w', 1}); err == nil {
		t.Error("short XLogData accepted")
	}
}

func TestParseKeepalive(t *testing.T) {
	msg := make([]byte, 18)
	msg[0] = 'k'
	binary.BigEndian.PutUint64(msg[1:], 42)
	msg[17] = 1
	k, err := parseKeepalive(msg)
	if err != nil || k.WALEnd != 42 || !k.ReplyRequired {
		t.Errorf("got %+v, %v", k, err)
	}
	if _, err := parseKeepalive(msg[:10]); err == nil {
		t.Error("short keepalive accepted")
	}
}
