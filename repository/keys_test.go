package repository

import (
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// realKeys are keys of every kind, as the builders make them.
func realKeys() []string {
	seg := wal.Segment{Timeline: 2, Log: 0x1A, Seg: 0xFF}
	at := time.Date(2026, 11, 25, 10, 30, 0, 123456789, time.UTC)
	id := NewBackupID(at)
	return []string{
		IdentityKey,
		WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 2, Segment: seg}, LZ4),
		WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 2, Segment: seg}, None),
		WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 2, Segment: seg}, Zstd),
		WALKey(wal.FileName{Kind: wal.KindPartial, Timeline: 2, Segment: seg}, LZ4),
		WALKey(wal.FileName{Kind: wal.KindPartial, Timeline: 2, Segment: seg}, Zstd),
		WALKey(wal.FileName{Kind: wal.KindBackupHistory, Timeline: 2, Segment: seg, Offset: 0x28}, LZ4),
		WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 0x1F}, None),
		PartialKey(seg, 0x1AFF001234, LZ4),
		PartialKey(seg, 0x1AFF001234, None),
		PartialKey(seg, 0x1AFF001234, Zstd),
		BackupManifestKey(id),
		PGManifestKey(id),
		BackupStartedKey(id),
		BackupPartKey(id, "base.tar", 0, LZ4),
		BackupPartKey(id, "16384.tar", 123456, None),
		BackupPartKey(id, "base.tar", 1, Zstd),
		MarkKey(id, at, true),
		MarkKey(id, at, false),
		DrillRecordKey(at.Format(DrillRecordIDLayout)),
		NewProbe("db 1/x", at).Key(),
	}
}

func TestParseKeyKinds(t *testing.T) {
	want := []KeyKind{KeyIdentity, KeySegment, KeySegment, KeySegment, KeyWALPartial, KeyWALPartial, KeyBackupHistory, KeyTimelineHistory,
		KeyReceivedPartial, KeyReceivedPartial, KeyReceivedPartial, KeyBackupManifest, KeyPGManifest, KeyBackupStarted, KeyBackupPart, KeyBackupPart, KeyBackupPart,
		KeyMark, KeyMark, KeyDrillRecord, KeyProbe}
	for i, key := range realKeys() {
		k, ok := ParseKey(key)
		if !ok || k.Kind != want[i] || k.String() != key {
			t.Errorf("ParseKey(%q) = %v %v (%q); want kind %v", key, k.Kind, ok, k.String(), want[i])
		}
	}
	k, _ := ParseKey(BackupPartKey("20261125T103000Z", "16384.tar", 7, LZ4))
	if k.BackupID != "20261125T103000Z" || k.Archive != "16384.tar" || k.Seq != 7 || k.Compression != LZ4 {
		t.Errorf("part: %+v", k)
	}
	k, _ = ParseKey(WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 2}}, Zstd))
	if k.Compression != Zstd || k.String() != "wal/00000001/000000010000000000000002.zst" {
		t.Errorf("zstd segment: %+v", k)
	}
	k, _ = ParseKey(WALKey(wal.FileName{Kind: wal.KindBackupHistory, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 2}, Offset: 0x28}, LZ4))
	if k.Compression != None || k.WAL.Offset != 0x28 {
		t.Errorf("backup history: %+v", k)
	}
}

func TestParseKeyRefuses(t *testing.T) {
	for _, bad := range []string{
		"",
		"walvault.json.old",
		"walvault.json/x",
		"wal/",
		"wal/00000001",
		"wal/00000001/000000010000000000000001.gz",
		"wal/00000001/000000010000000000000001.lz4.lz4",
		"wal/00000002/000000010000000000000001.lz4", // wrong timeline folder
		"wal/00000001/00000001000000000000000a.lz4", // lower case
		"wal/000000010000000000000001.lz4",          // not in its folder
		"wal/00000001/00000001.history",             // history inside a folder
		"wal/00000001.history.lz4",                  // history compressed
		"wal/00000001/000000010000000000000001.00000028.backup.lz4",
		"wal/00000000/000000000000000000000001", // timeline 0
		"partial/00000001/000000020000000000000003/0000000003001234.lz4",
		"partial/00000002/000000020000000000000003/3001234.lz4",
		"partial/00000002/000000020000000000000003/000000000300123a.lz4",
		"partial/00000002/000000020000000000000003",
		"backups/20261125T103000Z",
		"backups/20261125T103000Z/",
		"backups/2026-11-25/walvault-backup.json",
		"backups/20261125T103000Z/walvault-backup.json.tmp",
		"backups/20261125T103000Z/base.tar.0000.lz4",   // four digits
		"backups/20261125T103000Z/base.tar.000001.lz4", // six digits, leading zero
		"backups/20261125T103000Z/base.tar.00000.gz",   // no such codec
		"backups/20261125T103000Z/base.00000.lz4",
		"backups/20261125T103000Z/x.tar.00000.lz4",
		"backups/20261125T103000Z/016384.tar.00000.lz4",
		"backups/20261125T103000Z/4294967296.tar.00000.lz4",
		"backups/20261125T103000Z/sub/base.tar.00000.lz4",
		"backups/20261125T103000Z/marks/20261125T103000.000000000Z-maybe",
		"backups/20261125T103000Z/marks/20261125T103000Z-keep",
		"backups/20261125T103000Z/marks/20261325T103000.000000000Z-keep",
		"drills/20261125T103000.123Z.json.tmp",
		"drills/20261125T103000Z.json",
		"drills/notatime.json",
		"wal/20261125T103000.123Z.json",
		"check/probe-20261125T103000Z-host",
		"check/probe-20261125T103000Z-host-0123456789aZ",
		"check/probe-20261125T103000Z--0123456789ab",
		"check/probe-20261125T103000Z-a/b-0123456789ab",
		"check/other",
		"other/file",
	} {
		if k, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted it as %v", bad, k.Kind)
		}
	}
}

// TestParseDrillRecordKey moved here from package drill with the key format.
func TestParseDrillRecordKey(t *testing.T) {
	tests := []struct {
		key    string
		wantID string
		ok     bool
	}{
		{"drills/20261125T103000.123Z.json", "20261125T103000.123Z", true},
		{"drills/20261125T103000.123Z.json.tmp", "", false},
		{"drills/20261125T103000Z.json", "", false},
		{"drills/notatime.json", "", false},
		{"wal/20261125T103000.123Z.json", "", false},
	}
	for _, tc := range tests {
		id, ok := ParseDrillRecordKey(tc.key)
		if id != tc.wantID || ok != tc.ok {
			t.Errorf("ParseDrillRecordKey(%q) = %q, %v; want %q, %v", tc.key, id, ok, tc.wantID, tc.ok)
		}
	}
	at := time.Date(2026, 11, 25, 10, 30, 0, 5e8, time.UTC)
	if id, ok := ParseDrillRecordKey(DrillRecordKey(at.Format(DrillRecordIDLayout))); !ok || id != "20261125T103000.500Z" {
		t.Errorf("round trip: %q, %v", id, ok)
	}
}

func TestProbeKey(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	for _, host := range []string{"db1", "db 1/x", "", "...", "a-b.c_d"} {
		p := NewProbe(host, at)
		key := p.Key()
		got, ok := ParseProbeKey(key)
		if !ok || got.Key() != key || storage.ValidateKey(key) != nil || !strings.HasPrefix(key, "check/probe-20261125T103000Z-") {
			t.Errorf("probe of %q: key %q parsed as %+v, %v", host, key, got, ok)
		}
	}
	// Each probe has a random suffix, so two calls differ.
	if first, second := NewProbe("h", at).Key(), NewProbe("h", at).Key(); first == second {
		t.Error("two probes at the same time got the same key")
	}
}

// FuzzParseKey: whatever ParseKey accepts formats back to the same key
// (and is a valid storage key), so Format(Parse(k)) == k; real keys of
// every kind are accepted.
func FuzzParseKey(f *testing.F) {
	for _, key := range realKeys() {
		f.Add(key)
		// Near misses of each real key.
		f.Add(key + "x")
		f.Add(strings.ToLower(key))
		f.Add(key[:len(key)-1])
	}
	f.Fuzz(func(t *testing.T, key string) {
		k, ok := ParseKey(key)
		if !ok {
			if k != (Key{}) {
				t.Fatalf("ParseKey(%q) refused it but returned %+v", key, k)
			}
			return
		}
		if got := k.String(); got != key {
			t.Fatalf("ParseKey(%q).String() = %q", key, got)
		}
		if err := storage.ValidateKey(key); err != nil {
			t.Fatalf("ParseKey accepted %q, which is no valid storage key: %v", key, err)
		}
		again, ok := ParseKey(k.String())
		if !ok || again.Kind != k.Kind {
			t.Fatalf("ParseKey(%q) = %v, then %v %v", key, k.Kind, again.Kind, ok)
		}
	})
}

// TestParseWALKey moved here from package exporter, whose parser it tested.
func TestParseWALKeyKinds(t *testing.T) {
	tests := []struct {
		key  string
		kind wal.Kind
		ok   bool
	}{
		{"wal/00000001/000000010000000000000003.lz4", wal.KindSegment, true},
		{"wal/00000001/000000010000000000000003", wal.KindSegment, true},
		{"wal/00000001/000000010000000000000003.partial.lz4", wal.KindPartial, true},
		{"wal/00000002.history", wal.KindTimelineHistory, true},
		{"wal/00000002/000000010000000000000003.lz4", 0, false}, // wrong timeline folder
		{"wal/00000001/junk", 0, false},
	}
	for _, tc := range tests {
		f, _, ok := ParseWALKey(tc.key)
		if ok != tc.ok || (ok && f.Kind != tc.kind) {
			t.Errorf("ParseWALKey(%q) = %v, %v; want %v, %v", tc.key, f.Kind, ok, tc.kind, tc.ok)
		}
	}
}
