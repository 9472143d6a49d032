package repository

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/walvault/walvault/wal"
)

// KeyKind is the kind of object a repository key names.
type KeyKind int

const (
	// KeyIdentity: walvault.json.
	KeyIdentity KeyKind = iota + 1
	// KeySegment: wal/TTTTTTTT/<segment><compression ext>.
	KeySegment
	// KeyWALPartial: wal/TTTTTTTT/<segment>.partial<compression ext>, a
	// partial segment PostgreSQL archived (at a promotion).
	KeyWALPartial
	// KeyBackupHistory: wal/TTTTTTTT/<segment>.<offset>.backup.
	KeyBackupHistory
	// KeyTimelineHistory: wal/TTTTTTTT.history.
	KeyTimelineHistory
	// KeyReceivedPartial: partial/TTTTTTTT/<segment>/<end LSN><ext>, a
	// partial of wal-receive (PartialKey).
	KeyReceivedPartial
	// KeyBackupManifest: backups/<id>/walvault-backup.json.
	KeyBackupManifest
	// KeyPGManifest: backups/<id>/backup_manifest.
	KeyPGManifest
	// KeyBackupPart: backups/<id>/<archive>.<seq><ext>.
	KeyBackupPart
	// KeyMark: backups/<id>/marks/<time>-keep (or -nokeep).
	KeyMark
	// KeyDrillRecord: drills/<finish time>.json.
	KeyDrillRecord
	// KeyProbe: check/probe-<time>-<host>-<nonce>, a capability probe
	// (ProveCapabilities), deleted unless locked.
	KeyProbe
	// KeyRecipient: recipients/<KeyID>.json, a key that came into use
	// after walvault.json was written (RecordRecipients).
	KeyRecipient
	// KeyBackupStarted: backups/<id>/walvault-started.json, written as the
	// backup began (WriteBackupStarted).
	KeyBackupStarted
)

func (k KeyKind) String() string {
	switch k {
	case KeyIdentity:
		return "identity"
	case KeySegment:
		return "WAL segment"
	case KeyWALPartial:
		return "partial WAL segment"
	case KeyBackupHistory:
		return "backup history file"
	case KeyTimelineHistory:
		return "timeline history file"
	case KeyReceivedPartial:
		return "wal-receive partial"
	case KeyBackupManifest:
		return "backup manifest"
	case KeyPGManifest:
		return "PostgreSQL backup_manifest"
	case KeyBackupPart:
		return "backup part"
	case KeyMark:
		return "keep mark"
	case KeyDrillRecord:
		return "drill record"
	case KeyProbe:
		return "check probe"
	case KeyRecipient:
		return "recipient record"
	case KeyBackupStarted:
		return "backup start record"
	}
	return fmt.Sprintf("KeyKind(%d)", int(k))
}

// Key is a parsed repository key: Kind says which fields are set.
type Key struct {
	Kind KeyKind
	// WAL is the file of the wal/ kinds; Compression is set for the kinds
	// stored compressed (segments, partials, backup parts).
	WAL         wal.FileName
	Compression Compression
	// Partial is a KeyReceivedPartial.
	Partial Partial
	// BackupID is set for the backups/ kinds; Archive and Seq for a part.
	BackupID string
	Archive  string
	Seq      int
	// Mark is a KeyMark.
	Mark Mark
	// DrillID is a KeyDrillRecord's id (its finish time, DrillRecordIDLayout).
	DrillID string
	// Probe is a KeyProbe.
	Probe Probe
	// RecipientID is a KeyRecipient's crypt.KeyID.
	RecipientID string
}

// String formats the key: ParseKey(k.String()) gives k back.
func (k Key) String() string {
	switch k.Kind {
	case KeyIdentity:
		return IdentityKey
	case KeySegment, KeyWALPartial, KeyBackupHistory, KeyTimelineHistory:
		return WALKey(k.WAL, k.Compression)
	case KeyReceivedPartial:
		return PartialKey(k.Partial.Segment, k.Partial.End, k.Partial.Compression)
	case KeyBackupManifest:
		return BackupManifestKey(k.BackupID)
	case KeyPGManifest:
		return PGManifestKey(k.BackupID)
	case KeyBackupStarted:
		return BackupStartedKey(k.BackupID)
	case KeyBackupPart:
		return BackupPartKey(k.BackupID, k.Archive, k.Seq, k.Compression)
	case KeyMark:
		return MarkKey(k.Mark.BackupID, k.Mark.At, k.Mark.Keep)
	case KeyDrillRecord:
		return DrillRecordKey(k.DrillID)
	case KeyProbe:
		return k.Probe.Key()
	case KeyRecipient:
		return RecipientKey(k.RecipientID)
	}
	return ""
}

// ParseKey classifies a key of the repository. ok is false for any key
// walvault does not write; for the others, k.String() == key.
func ParseKey(key string) (k Key, ok bool) {
	k, ok = parseKey(key)
	// Every parser below is strict, and this makes the round trip a
	// promise: a key in any form but the one walvault writes is refused.
	if !ok || k.String() != key {
		return Key{}, false
	}
	return k, true
}

func parseKey(key string) (Key, bool) {
	top, _, _ := strings.Cut(key, "/")
	switch top + "/" {
	case WALPrefix:
		f, c, ok := ParseWALKey(key)
		if !ok {
			return Key{}, false
		}
		kinds := map[wal.Kind]KeyKind{wal.KindSegment: KeySegment, wal.KindPartial: KeyWALPartial,
			wal.KindBackupHistory: KeyBackupHistory, wal.KindTimelineHistory: KeyTimelineHistory}
		return Key{Kind: kinds[f.Kind], WAL: f, Compression: c}, true
	case PartialPrefix:
		p, ok := ParsePartialKey(key)
		return Key{Kind: KeyReceivedPartial, Partial: p, Compression: p.Compression}, ok
	case BackupsPrefix:
		return parseBackupKey(key)
	case DrillsPrefix:
		id, ok := ParseDrillRecordKey(key)
		return Key{Kind: KeyDrillRecord, DrillID: id}, ok
	case ProbePrefix:
		p, ok := ParseProbeKey(key)
		return Key{Kind: KeyProbe, Probe: p}, ok
	case RecipientsPrefix:
		id, ok := ParseRecipientKey(key)
		return Key{Kind: KeyRecipient, RecipientID: id}, ok
	}
	if key == IdentityKey {
		return Key{Kind: KeyIdentity}, true
	}
	return Key{}, false
}

// ParseWALKey is the inverse of WALKey: the file a key under wal/ holds
// and its compression (None for the files stored as they are). ok is false
// for any key WALKey does not make. Whether a segment fits the
// repository's segment size is the caller's question (wal.Segment.Validate).
func ParseWALKey(key string) (f wal.FileName, c Compression, ok bool) {
	rest, found := strings.CutPrefix(key, WALPrefix)
	if !found {
		return wal.FileName{}, "", false
	}
	name := rest
	if _, base, nested := strings.Cut(rest, "/"); nested {
		name = base
	}
	c = None
	for _, cand := range Compressions {
		if ext := cand.Ext(); ext != "" && strings.HasSuffix(name, ext) {
			c, name = cand, strings.TrimSuffix(name, ext)
			break
		}
	}
	f, err := wal.Classify(name)
	if err != nil || WALKey(f, c) != key {
		return wal.FileName{}, "", false
	}
	if !Compressed(f.Kind) {
		c = None
	}
	return f, c, true
}

// PGManifestKey is the key of a backup's PostgreSQL backup_manifest,
// stored as PostgreSQL sent it.
func PGManifestKey(id string) string { return BackupPrefix(id) + PGManifestName }

// SplitBackupKey splits a key under backups/ into its backup id and the
// rest of the key inside the backup's folder. ok is false for keys outside
// a folder with a valid id: they are not walvault's.
func SplitBackupKey(key string) (id, name string, ok bool) {
	rest, found := strings.CutPrefix(key, BackupsPrefix)
	if !found {
		return "", "", false
	}
	id, name, found = strings.Cut(rest, "/")
	if !found || ValidateBackupID(id) != nil {
		return "", "", false
	}
	return id, name, true
}

// parseBackupKey parses the keys inside a backup's folder.
func parseBackupKey(key string) (Key, bool) {
	id, name, ok := SplitBackupKey(key)
	if !ok {
		return Key{}, false
	}
	switch name {
	case BackupManifestName:
		return Key{Kind: KeyBackupManifest, BackupID: id}, true
	case PGManifestName:
		return Key{Kind: KeyPGManifest, BackupID: id}, true
	case BackupStartedName:
		return Key{Kind: KeyBackupStarted, BackupID: id}, true
	}
	if m, ok := ParseMarkKey(key); ok {
		return Key{Kind: KeyMark, BackupID: id, Mark: m}, true
	}
	archive, seq, c, ok := parsePartName(name)
	if !ok {
		return Key{}, false
	}
	return Key{Kind: KeyBackupPart, BackupID: id, Archive: archive, Seq: seq, Compression: c}, true
}

// ParseBackupPartKey is the inverse of BackupPartKey.
func ParseBackupPartKey(key string) (id, archive string, seq int, c Compression, ok bool) {
	k, ok := ParseKey(key)
	if !ok || k.Kind != KeyBackupPart {
		return "", "", 0, "", false
	}
	return k.BackupID, k.Archive, k.Seq, k.Compression, true
}

// parsePartName reads "<archive>.<seq><ext>", where archive is "base.tar"
// or "<tablespace oid>.tar", the names PostgreSQL gives its tar streams.
func parsePartName(name string) (archive string, seq int, c Compression, ok bool) {
	c = None
	for _, cand := range Compressions {
		if ext := cand.Ext(); ext != "" && strings.HasSuffix(name, ext) {
			c, name = cand, strings.TrimSuffix(name, ext)
			break
		}
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", 0, "", false
	}
	archive, digits := name[:i], name[i+1:]
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || fmt.Sprintf("%05d", n) != digits {
		return "", 0, "", false
	}
	base, found := strings.CutSuffix(archive, ".tar")
	if !found {
		return "", 0, "", false
	}
	if base != "base" {
		oid, err := strconv.ParseUint(base, 10, 32)
		if err != nil || strconv.FormatUint(oid, 10) != base {
			return "", 0, "", false
		}
	}
	return archive, n, c, true
}

// ParseBackupManifestKey is the inverse of BackupManifestKey.
func ParseBackupManifestKey(key string) (id string, ok bool) {
	id, name, ok := SplitBackupKey(key)
	return id, ok && name == BackupManifestName
}

// DrillRecordIDLayout is a drill record's id: its finish time in UTC,
// fixed width so ids (and keys) sort in time order.
const DrillRecordIDLayout = "20060102T150405.000Z"

// DrillRecordKey is the key of the drill record with id:
//
//	drills/<UTC finish time, DrillRecordIDLayout>.json
func DrillRecordKey(id string) string { return DrillsPrefix + id + ".json" }

// ParseDrillRecordKey returns the id of a drill record's key; ok is false
// for any other key.
func ParseDrillRecordKey(key string) (id string, ok bool) {
	rest, found := strings.CutPrefix(key, DrillsPrefix)
	if !found {
		return "", false
	}
	id, found = strings.CutSuffix(rest, ".json")
	if !found {
		return "", false
	}
	t, err := time.Parse(DrillRecordIDLayout, id)
	if err != nil || t.Format(DrillRecordIDLayout) != id {
		return "", false
	}
	return id, true
}

// ProbePrefix is where ProveCapabilities (run by `walvault check` and
// before a new repository's first write) writes its probe objects; they
// are deleted at once unless locked, and verify and retention leave the
// folder alone.
const ProbePrefix = "check/"

// probeTimeLayout is the probe's time in its key.
const probeTimeLayout = "20060102T150405Z"

// probeNonceLen is the hex digits of randomness in a probe key.
const probeNonceLen = 12

// Probe is one object of `walvault check`:
//
//	check/probe-<UTC time>-<host>-<12 hex digits of randomness>
//
// a key no one else writes.
type Probe struct {
	At    time.Time // UTC, to the second
	Host  string    // cleaned: letters, digits, '-', '.', '_'
	Nonce string    // 12 lower-case hex digits
}

// NewProbe is a fresh probe of host at now.
func NewProbe(host string, now time.Time) Probe {
	var b [probeNonceLen / 2]byte
	_, _ = rand.Read(b[:])
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, host)
	if clean == "" || strings.Trim(clean, ".") == "" {
		clean = "host"
	}
	return Probe{At: now.UTC().Truncate(time.Second), Host: clean, Nonce: hex.EncodeToString(b[:])}
}

// Key is the probe's key.
func (p Probe) Key() string {
	return fmt.Sprintf("%sprobe-%s-%s-%s", ProbePrefix, p.At.UTC().Format(probeTimeLayout), p.Host, p.Nonce)
}

// ParseProbeKey is the inverse of Probe.Key.
func ParseProbeKey(key string) (Probe, bool) {
	rest, found := strings.CutPrefix(key, ProbePrefix+"probe-")
	if !found || len(rest) < len(probeTimeLayout)+1+1+1+probeNonceLen {
		return Probe{}, false
	}
	stamp, rest := rest[:len(probeTimeLayout)], rest[len(probeTimeLayout):]
	t, err := time.Parse(probeTimeLayout, stamp)
	if err != nil || t.Format(probeTimeLayout) != stamp || rest[0] != '-' {
		return Probe{}, false
	}
	host, nonce := rest[1:len(rest)-probeNonceLen-1], rest[len(rest)-probeNonceLen:]
	if rest[len(rest)-probeNonceLen-1] != '-' || host == "" || strings.Trim(host, ".") == "" {
		return Probe{}, false
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return Probe{}, false
		}
	}
	for _, r := range nonce {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return Probe{}, false
		}
	}
	return Probe{At: t, Host: host, Nonce: nonce}, true
}
