package receive

import (
	"encoding/binary"
	"testing"
	"time"

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

func TestStatusUpdate(t *testing.T) {
	now := pgEpoch.Add(3 * time.Second)
	b := statusUpdate(0x2000000, now)
	if len(b) != 34 || b[0] != 'r' || b[33] != 0 {
		t.Fatalf("bad message %x", b)
	}
	for _, off := range []int{1, 9, 17} {
		if got := binary.BigEndian.Uint64(b[off:]); got != 0x2000000 {
			t.Errorf("position at %d: %x", off, got)
		}
	}
	if got := binary.BigEndian.Uint64(b[25:]); got != 3_000_000 {
		t.Errorf("clock %d, want 3000000 µs", got)
	}
}

func TestParseSegmentSize(t *testing.T) {
	for in, want := range map[string]uint32{"16MB": 16 << 20, "1GB": 1 << 30, "1MB": 1 << 20, "64MB": 64 << 20} {
		if got, err := parseSegmentSize(in); err != nil || got != want {
			t.Errorf("%s: %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "16", "3MB", "2GB", "xMB"} {
		if _, err := parseSegmentSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	if got := quoteIdent(`a"b`); got != `"a""b"` {
		t.Errorf("got %s", got)
	}
}
