package info

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// Backup is `walvault info BACKUP`: one backup in full. The JSON field
// names are the documented, stable schema.
type Backup struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Latest: this is the newest DONE backup (what restore --backup LATEST
	// takes).
	Latest bool   `json:"latest"`
	Type   string `json:"type"` // "full" or "incremental"
	// Parent is the backup an incremental one builds on; Chain its whole
	// chain, full backup first, ending with this one (nil for a full
	// backup); ChainError why the chain cannot be restored ("" when it
	// can).
	Parent     string   `json:"parent,omitempty"`
	Chain      []string `json:"chain,omitempty"`
	ChainError string   `json:"chain_error,omitempty"`
	Label      string   `json:"label"`

	StartTime       time.Time `json:"start_time"`
	StopTime        time.Time `json:"stop_time"`
	DurationSeconds float64   `json:"duration_seconds"`
	StartTimeline   uint32    `json:"start_timeline"`
	StopTimeline    uint32    `json:"stop_timeline"`
	StartLSN        string    `json:"start_lsn"`
	StopLSN         string    `json:"stop_lsn"`

	PGVersion int    `json:"pg_version"`
	SystemID  string `json:"system_identifier"`
	Host      string `json:"host,omitempty"`
	Walvault  string `json:"walvault_version,omitempty"`

	// ChecksumsUnverified: taken with backup-push --no-verify-checksums,
	// so a damaged page may be in it as it was.
	ChecksumsUnverified bool `json:"checksums_unverified,omitempty"`

	RawBytes    int64     `json:"raw_bytes"`
	StoredBytes int64     `json:"stored_bytes"`
	Parts       int       `json:"parts"`
	Archives    []Archive `json:"archives"`
	// Tablespaces are the archives other than base.tar.
	Tablespaces []Tablespace `json:"tablespaces"`

	// Kept: the newest keep mark exempts the backup from retention.
	Kept  bool       `json:"kept"`
	Marks []KeepMark `json:"marks"`
	// LockedUntil is the manifest's Object Lock retain-until date (nil:
	// not locked, or the storage does not say).
	LockedUntil *time.Time `json:"locked_until"`

	WAL NeededWAL `json:"wal"`
}

// Archive is one tar stream of the backup.
type Archive struct {
	Name        string `json:"name"`
	RawBytes    int64  `json:"raw_bytes"`
	StoredBytes int64  `json:"stored_bytes"`
	Parts       int    `json:"parts"`
}

// Tablespace is one tablespace the backup holds.
type Tablespace struct {
	OID      uint32 `json:"oid"`
	Location string `json:"location"`
	Archive  string `json:"archive"`
}

// KeepMark is one keep mark, oldest first.
type KeepMark struct {
	At   time.Time `json:"at"`
	Keep bool      `json:"keep"`
}

// NeededWAL is the WAL a restore of the backup needs, and whether it is all
// in the repository.
type NeededWAL struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Segments uint64 `json:"segments"`
	Complete bool   `json:"complete"`
	// Missing is the first segment not archived (when not Complete).
	Missing string `json:"missing,omitempty"`
}

// Describe lists the repository once and describes the backup ref names
// (an id, or LATEST for the newest DONE backup). An INCOMPLETE backup has
// no manifest to describe, nor a DAMAGED one it can use: that is an
// error saying so.
func Describe(ctx context.Context, b storage.Backend, ref string, opts Options) (Backup, error) {
	inv, err := repository.LoadInventory(ctx, b, repository.LoadOptions{BackupsOnly: true})
	if err != nil {
		return Backup{}, err
	}
	catalog, err := inv.Catalog()
	if err != nil {
		return Backup{}, err
	}
	bi, err := repository.FindBackup(catalog, ref)
	if err != nil {
		return Backup{}, err
	}
	if bi.Status == repository.StatusDamaged {
		return Backup{}, repository.DamagedError(bi)
	}
	if bi.Manifest == nil {
		return Backup{}, fmt.Errorf("backup %s is INCOMPLETE: it has parts but no manifest (an interrupted backup-push), so there is nothing to describe and restore never uses it", bi.ID)
	}
	m := bi.Manifest
	out := Backup{
		ID: bi.ID, Status: string(bi.Status), Type: "full", Label: m.Label,
		StartTime: m.StartTime.UTC(), StopTime: m.StopTime.UTC(), DurationSeconds: m.StopTime.Sub(m.StartTime).Seconds(),
		StartTimeline: m.StartTimeline, StopTimeline: m.StopTimeline, StartLSN: m.StartLSN, StopLSN: m.StopLSN,
		PGVersion: m.PGVersion, SystemID: m.SystemID, Host: m.Host, Walvault: m.Walvault,
		ChecksumsUnverified: m.ChecksumsUnverified,
		RawBytes:            m.RawBytes, StoredBytes: m.Stored,
		Archives: []Archive{}, Tablespaces: []Tablespace{}, Marks: []KeepMark{},
	}
	if m.IsIncremental() {
		out.Type, out.Parent = string(repository.BackupIncremental), m.Parent
		chain, err := repository.Chain(catalog, bi.ID)
		if err != nil {
			out.ChainError = err.Error()
		}
		for _, c := range chain {
			out.Chain = append(out.Chain, c.ID)
		}
	}
	if latest, err := repository.FindBackup(catalog, repository.LatestRef); err == nil && latest.ID == bi.ID {
		out.Latest = true
	}
	for _, a := range m.Archives {
		arc := Archive{Name: a.Name, Parts: len(a.Parts)}
		for _, p := range a.Parts {
			arc.RawBytes += p.RawSize
			arc.StoredBytes += p.StoredSize
		}
		out.Parts += len(a.Parts)
		out.Archives = append(out.Archives, arc)
		if a.TablespaceOID != 0 {
			out.Tablespaces = append(out.Tablespaces, Tablespace{OID: a.TablespaceOID, Location: a.TablespaceLocation, Archive: a.Name})
		}
	}
	if bk := inv.Backup(bi.ID); bk != nil {
		out.Kept = repository.Kept(bk.Marks)
		for _, mk := range bk.Marks {
			out.Marks = append(out.Marks, KeepMark{At: mk.At.UTC(), Keep: mk.Keep})
		}
	}
	// A listing may not carry retention; Stat does.
	info, err := b.Stat(ctx, repository.BackupManifestKey(bi.ID))
	switch {
	case err == nil && !info.RetainUntil.IsZero():
		t := info.RetainUntil.UTC()
		out.LockedUntil = &t
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return Backup{}, fmt.Errorf("read the lock of backup %s's manifest: %w", bi.ID, err)
	}
	out.WAL = NeededWAL{From: m.StartWAL, To: m.StopWAL, Complete: bi.Status == repository.StatusDone, Missing: bi.MissingWAL}
	start, err1 := wal.ParseSegmentName(m.StartWAL)
	stop, err2 := wal.ParseSegmentName(m.StopWAL)
	if err1 == nil && err2 == nil && m.WALSegmentSize != 0 && wal.ValidateSegmentSize(m.WALSegmentSize) == nil {
		sm := newSegmentMath(m.WALSegmentSize)
		if sm.no(stop) >= sm.no(start) {
			out.WAL.Segments = sm.no(stop) - sm.no(start) + 1
		}
	}
	return out, nil
}
