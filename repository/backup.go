package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// BackupsPrefix is where base backups live, one folder per backup id.
const BackupsPrefix = "backups/"

// BackupManifestName is walvault's own manifest of a backup, written last:
// a backup exists only once this object does.
const BackupManifestName = "walvault-backup.json"

// PGManifestName is PostgreSQL's backup_manifest, stored as it was sent.
const PGManifestName = "backup_manifest"

// BackupStartedName is the first object of a backup's folder, written as
// PostgreSQL starts the backup. Until the first part is stored (a large
// first part, or a --max-rate, can take many minutes) it is what shows
// the folder, and so a backup-push that may be running, to retention,
// which then keeps the WAL such a backup needs. It is part of the
// layout, as keep marks are, not of the backup.
const BackupStartedName = "walvault-started.json"

// BackupIDLayout formats backup ids from the backup's start time (UTC), so
// ids sort by time.
const BackupIDLayout = "20060102T150405Z"

// backupIDPattern is compiled on first use: package initialisation runs in
// every walvault process, wal-push and wal-fetch included.
var backupIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z$`) })

// NewBackupID is the id of a backup started at t.
func NewBackupID(t time.Time) string { return t.UTC().Format(BackupIDLayout) }

// ValidateBackupID refuses anything that is not an id NewBackupID makes, so
// an id from the command line can never reach outside backups/.
func ValidateBackupID(id string) error {
	if !backupIDPattern().MatchString(id) {
		return fmt.Errorf("invalid backup id %q: ids look like 20261125T103000Z (see backup-list)", id)
	}
	return nil
}

// BackupPrefix is the folder of one backup.
func BackupPrefix(id string) string { return BackupsPrefix + id + "/" }

// BackupStartedKey is the key of a backup's start record.
func BackupStartedKey(id string) string { return BackupPrefix(id) + BackupStartedName }

// BackupStarted is a backup's start record: where and when it began.
type BackupStarted struct {
	ID       string    `json:"id"`
	Started  time.Time `json:"started"`
	StartLSN string    `json:"start_lsn"`
	Timeline uint32    `json:"timeline"`
	SystemID string    `json:"system_id"`
	Host     string    `json:"host,omitempty"`
	Walvault string    `json:"walvault,omitempty"`
}

// WriteBackupStarted stores s under its backup's folder, once.
func WriteBackupStarted(ctx context.Context, b storage.Backend, s BackupStarted, ret *storage.Retention) error {
	if err := putJSONOnce(ctx, b, BackupStartedKey(s.ID), s, ret); err != nil {
		return fmt.Errorf("write the start record of backup %s: %w", s.ID, err)
	}
	return nil
}

// putJSONOnce stores v, indented, as key, which must not exist yet.
func putJSONOnce(ctx context.Context, b storage.Backend, key string, v any, ret *storage.Retention) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	err = b.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{IfNotExists: true, Size: int64(len(data)), Retention: ret})
	if errors.Is(err, storage.ErrExists) && readBack(ctx, b, key, data) == nil {
		// A retry of this very write whose first answer was lost (a
		// reset after the server stored it): it is stored.
		return nil
	}
	return err
}

// BackupManifestKey is the key of a backup's walvault manifest.
func BackupManifestKey(id string) string { return BackupPrefix(id) + BackupManifestName }

// BackupPartKey is the key of one part of an archive: "base.tar" part 0 is
// backups/<id>/base.tar.00000.lz4 (five digits,
// so keys sort in part order up to 100000 parts).
func BackupPartKey(id, archive string, seq int, c Compression) string {
	return fmt.Sprintf("%s%s.%05d%s", BackupPrefix(id), archive, seq, c.Ext())
}

// BackupManifest is walvault's record of one base backup. Every object the
// backup consists of is listed with its size and sha256, so restore and
// verify can check each byte.
type BackupManifest struct {
	FormatVersion int    `json:"format_version"`
	ID            string `json:"id"`
	Label         string `json:"label"`
	SystemID      string `json:"system_identifier"`
	// PGVersion is server_version_num, e.g. 150010.
	PGVersion      int    `json:"pg_version"`
	WALSegmentSize uint32 `json:"wal_segment_size"`
	// Timeline and LSNs as PostgreSQL prints them ("0/2000028").
	StartTimeline uint32    `json:"start_timeline"`
	StartLSN      string    `json:"start_lsn"`
	StopTimeline  uint32    `json:"stop_timeline"`
	StopLSN       string    `json:"stop_lsn"`
	StartWAL      string    `json:"start_wal"` // segment holding StartLSN
	StopWAL       string    `json:"stop_wal"`  // segment holding StopLSN
	StartTime     time.Time `json:"start_time"`
	StopTime      time.Time `json:"stop_time"`
	// Archives are the tar streams: "base.tar" (the data directory) and one
	// "<oid>.tar" per tablespace.
	Archives []BackupArchive `json:"archives"`
	// PGManifest is PostgreSQL's backup_manifest object.
	PGManifest BackupPart `json:"pg_manifest"`
	RawBytes   int64      `json:"raw_bytes"`    // sum of the archives' raw sizes
	Stored     int64      `json:"stored_bytes"` // sum of every object's stored size
	Host       string     `json:"host"`
	Walvault   string     `json:"walvault_version"`
	// Type is BackupFull or BackupIncremental ("" in manifests written
	// before incremental backups: full). Parent is the id of the backup an
	// incremental one builds on.
	Type   BackupType `json:"type,omitempty"`
	Parent string     `json:"parent,omitempty"`
	// ChecksumsUnverified: PostgreSQL was asked not to verify page
	// checksums as it read the files (backup-push --no-verify-checksums),
	// so a damaged page may be in the backup as it was.
	ChecksumsUnverified bool `json:"checksums_unverified,omitempty"`
	// WALStored: every WAL segment from the backup's start to its stop
	// was in the repository when this manifest was written (backup-push
	// said done, not WAITING_FOR_WALS): one missing later was deleted,
	// not "not archived yet". Absent in manifests written before it.
	WALStored bool `json:"wal_stored,omitempty"`
}

// BackupType says whether a backup stands alone or builds on a parent.
type BackupType string

const (
	BackupFull        BackupType = "full"
	BackupIncremental BackupType = "incremental"
)

// IncrementalFormatVersion is the format_version of an incremental
// backup's manifest: a walvault older than incremental backups refuses
// it as too new, instead of restoring the incremental as if it were full.
const IncrementalFormatVersion = 2

// StoredSumFormatVersion is the format_version of a manifest whose parts
// carry StoredSHA256 (full or incremental: Type and Parent say which). A
// walvault that knows only raw sums (format 1 or 2) refuses it as too new,
// rather than calling every part "damaged" for its missing sha256; a
// walvault older than incremental backups refuses an incremental one too.
// It is the newest format this walvault reads.
const StoredSumFormatVersion = 3

// NeededFormatVersion is the lowest format_version that describes m:
// StoredSumFormatVersion once any part carries a stored sum, else
// IncrementalFormatVersion for an incremental backup, else FormatVersion.
func (m *BackupManifest) NeededFormatVersion() int {
	if m.PGManifest.StoredSHA256 != "" {
		return StoredSumFormatVersion
	}
	for _, a := range m.Archives {
		for _, p := range a.Parts {
			if p.StoredSHA256 != "" {
				return StoredSumFormatVersion
			}
		}
	}
	if m.IsIncremental() {
		return IncrementalFormatVersion
	}
	return FormatVersion
}

// IsIncremental reports whether m builds on a parent backup (false for nil).
func (m *BackupManifest) IsIncremental() bool { return m != nil && m.Parent != "" }

// BackupArchive is one tar stream of a backup, stored as one or more parts
// (each compressed on its own, so parts can be fetched and decoded in
// parallel and no single object grows past what S3 allows).
type BackupArchive struct {
	Name string `json:"name"` // "base.tar" or "<oid>.tar"
	// TablespaceOID and TablespaceLocation are set for tablespace archives.
	TablespaceOID      uint32       `json:"tablespace_oid,omitempty"`
	TablespaceLocation string       `json:"tablespace_location,omitempty"`
	Parts              []BackupPart `json:"parts"`
}

// BackupPart is one stored object of a backup.
type BackupPart struct {
	Key         string      `json:"key"`
	Compression Compression `json:"compression"`
	RawSize     int64       `json:"raw_size"`
	StoredSize  int64       `json:"stored_size"`
	// StoredSHA256 is the sha256 of the object as stored (compressed):
	// what backup-push writes for an unencrypted part. It proves every
	// stored byte, so the decoded bytes are the ones backup-push wrote;
	// the codec's frame checksum and PostgreSQL's backup_manifest check
	// them again as restore decodes and writes them.
	StoredSHA256 string `json:"stored_sha256,omitempty"`
	// SHA256 is the sha256 of the raw (decompressed) bytes, as walvault
	// before format StoredSumFormatVersion wrote it; still read.
	SHA256 string `json:"sha256,omitempty"`
	// Encryption and Fingerprints describe an encrypted part (see
	// Codec.Describe): its plaintext's keyed fingerprints replace the sums.
	Encryption   string `json:"encryption,omitempty"`
	Fingerprints string `json:"fingerprints,omitempty"`
}

// Meta is the part's record as object metadata, for OpenBody.
func (p BackupPart) Meta() map[string]string {
	return map[string]string{MetaEncryption: p.Encryption, MetaFingerprints: p.Fingerprints}
}

// RawSize is the archive's total size before compression.
func (a BackupArchive) RawSize() int64 {
	var n int64
	for _, p := range a.Parts {
		n += p.RawSize
	}
	return n
}

// WriteBackupManifest stores m as the last object of its backup, with a
// conditional create: a manifest is never replaced. ret, when not nil,
// locks it (the repository's lock policy at the time of the write).
func WriteBackupManifest(ctx context.Context, b storage.Backend, m BackupManifest, ret *storage.Retention) error {
	if err := putJSONOnce(ctx, b, BackupManifestKey(m.ID), m, ret); err != nil {
		return fmt.Errorf("write manifest of backup %s: %w", m.ID, err)
	}
	return nil
}

// LoadBackupManifest reads one backup's manifest; a backup without one
// gives an error wrapping storage.ErrNotFound.
func LoadBackupManifest(ctx context.Context, b storage.Backend, id string) (BackupManifest, error) {
	if err := ValidateBackupID(id); err != nil {
		return BackupManifest{}, err
	}
	rc, _, err := b.Get(ctx, BackupManifestKey(id))
	if err != nil {
		return BackupManifest{}, err
	}
	return readBackupManifest(rc, id, b.Location())
}

// LoadBackupManifestVersion is LoadBackupManifest of one version of the
// manifest's key, in a storage that keeps versions.
func LoadBackupManifestVersion(ctx context.Context, v storage.Versioned, location, id, versionID string) (BackupManifest, error) {
	if err := ValidateBackupID(id); err != nil {
		return BackupManifest{}, err
	}
	rc, _, err := v.GetVersion(ctx, BackupManifestKey(id), versionID)
	if err != nil {
		return BackupManifest{}, err
	}
	return readBackupManifest(rc, id, location)
}

// readBackupManifest reads, closes and checks backup id's manifest.
func readBackupManifest(rc io.ReadCloser, id, location string) (BackupManifest, error) {
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return BackupManifest{}, fmt.Errorf("read manifest of backup %s: %w", id, err)
	}
	var m BackupManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return BackupManifest{}, &manifestError{fmt.Errorf("manifest of backup %s in %s is not valid JSON: %w", id, location, err)}
	}
	if m.FormatVersion > StoredSumFormatVersion {
		return BackupManifest{}, &manifestError{fmt.Errorf("backup %s has manifest format %d, newer than this walvault understands (%d): upgrade walvault", id, m.FormatVersion, StoredSumFormatVersion)}
	}
	if (m.Type == BackupIncremental) != (m.Parent != "") || (m.Parent != "" && ValidateBackupID(m.Parent) != nil) {
		return BackupManifest{}, &manifestError{fmt.Errorf("manifest of backup %s says type %q with parent %q: the repository is damaged", id, m.Type, m.Parent)}
	}
	if m.ID != id {
		return BackupManifest{}, &manifestError{fmt.Errorf("manifest of backup %s says its id is %q: the repository is damaged", id, m.ID)}
	}
	if err := m.checkWALPoints(); err != nil {
		return BackupManifest{}, &manifestError{fmt.Errorf("manifest of backup %s in %s: %w: the manifest is damaged (retention and restore trust these to know which WAL the backup needs)", id, location, err)}
	}
	return m, nil
}

// LeadsTo reports whether the backup lies on the way to timeline tli,
// whose history file holds history: it stopped on tli itself, or on an
// ancestor no later than where tli's line left that ancestor. Recovery
// from such a backup can follow tli; from one on a timeline tli branched
// away from before the backup ended, it cannot (PostgreSQL reads tli's
// WAL past the branch point and does not find the backup's checkpoint
// there). The error is a stop_lsn that does not parse.
func (m *BackupManifest) LeadsTo(tli wal.TimelineID, history []wal.HistoryEntry) (bool, error) {
	stop, err := wal.ParseLSN(m.StopLSN)
	if err != nil {
		return false, err
	}
	if stopTLI := wal.TimelineID(m.StopTimeline); stopTLI != tli {
		for _, h := range history {
			if h.Timeline == stopTLI {
				return stop <= h.SwitchPoint, nil
			}
		}
		return false, nil
	}
	return true, nil
}

// WALRange is the segments holding the backup's start and stop.
func (m *BackupManifest) WALRange() (start, stop wal.Segment, err error) {
	if start, err = wal.ParseSegmentName(m.StartWAL); err != nil {
		return wal.Segment{}, wal.Segment{}, err
	}
	stop, err = wal.ParseSegmentName(m.StopWAL)
	return start, stop, err
}

// checkWALPoints compares the manifest's start and stop LSNs with the
// segments it names, which backup-push derives from them (start_wal holds
// start_lsn, stop_wal the byte before stop_lsn): a flipped bit in one no
// longer agrees with the other. A manifest without them (or without the
// segment size, optional in old ones) is not checked.
func (m *BackupManifest) checkWALPoints() error {
	if m.StartLSN == "" || m.StopLSN == "" || m.StartWAL == "" || m.StopWAL == "" || wal.ValidateSegmentSize(m.WALSegmentSize) != nil {
		return nil
	}
	start, err := wal.ParseLSN(m.StartLSN)
	if err != nil {
		return fmt.Errorf("start_lsn: %w", err)
	}
	stop, err := wal.ParseLSN(m.StopLSN)
	if err != nil {
		return fmt.Errorf("stop_lsn: %w", err)
	}
	if stop <= start {
		return fmt.Errorf("stop_lsn %s is not after start_lsn %s", stop, start)
	}
	for _, p := range []struct {
		field, lsnField string
		name            string
		tli             uint32
		lsn             wal.LSN
	}{
		{"start_wal", "start_lsn", m.StartWAL, m.StartTimeline, start},
		{"stop_wal", "the byte before stop_lsn", m.StopWAL, m.StopTimeline, stop - 1},
	} {
		named, err := wal.ParseSegmentName(p.name)
		if err != nil {
			return fmt.Errorf("%s: %w", p.field, err)
		}
		tli := wal.TimelineID(p.tli)
		if tli == 0 {
			tli = named.Timeline
		}
		holds, err := wal.SegmentFromLSN(tli, p.lsn, m.WALSegmentSize)
		if err != nil {
			return err
		}
		if holds != named {
			return fmt.Errorf("%s %s lies in segment %s, but %s says %s", p.lsnField, p.lsn, holds, p.field, named)
		}
	}
	return nil
}

// BackupFolders lists the ids of every backup folder, complete or not, in
// id (time) order.
func BackupFolders(ctx context.Context, b storage.Backend) (ids []string, complete map[string]bool, err error) {
	complete = map[string]bool{}
	seen := map[string]bool{}
	err = b.List(ctx, BackupsPrefix, func(oi storage.ObjectInfo) error {
		id, name, ok := SplitBackupKey(oi.Key)
		if !ok {
			return nil // not ours; verify reports strays
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		if name == BackupManifestName {
			complete[id] = true
		}
		return nil
	})
	return ids, complete, err
}
