package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// RecordsPrefix is where drill records live: one object per drill,
//
//	drills/<UTC finish time, RecordIDLayout>.json
//
// written once with a conditional create (never rewritten: a repository
// under Object Lock stays writable). Keys sort in time order.
const RecordsPrefix = repository.DrillsPrefix

// RecordIDLayout is a record's id: its finish time in UTC, fixed width so
// ids (and keys) sort in time order. The key format lives in repository
// (DrillRecordKey, ParseDrillRecordKey); this package keeps the contents.
const RecordIDLayout = repository.DrillRecordIDLayout

// RecordFormatVersion is the record format this walvault writes.
const RecordFormatVersion = 1

// maxRecordSize bounds a record read into memory.
const maxRecordSize = 1 << 20

// Check statuses.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusWarning = "warning" // worth reading, not a failure
	StatusSkipped = "skipped" // could not be run here (the detail says why)
)

// Check is one thing the drill verified.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// Record is the outcome of one drill: what `drill --json` prints and what
// is stored under drills/. Fields are only ever added.
type Record struct {
	FormatVersion int    `json:"format_version"`
	ID            string `json:"id"`
	OK            bool   `json:"ok"`
	// Error is why the drill failed ("" when OK).
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Host       string    `json:"host,omitempty"`
	Walvault   string    `json:"walvault_version,omitempty"`

	BackupID       string     `json:"backup_id,omitempty"`
	BackupStopTime *time.Time `json:"backup_stop_time,omitempty"`
	PGVersion      int        `json:"pg_version,omitempty"`
	PGBinDir       string     `json:"pg_bin_dir,omitempty"`
	// Target describes the recovery target; TargetAction is what the
	// server did there (promote or pause).
	Target       string `json:"target"`
	TargetAction string `json:"target_action,omitempty"`

	// RestoredBytes is the raw size of the base backup restored.
	RestoredBytes int64 `json:"restored_bytes,omitempty"`
	// The RTO: RestoreSeconds to fetch and verify the base backup,
	// ReplaySeconds from starting the server until it was read-write (or
	// paused at the target), RTOSeconds for the two with what lies
	// between. Zero when the drill did not get that far.
	RestoreSeconds float64 `json:"restore_seconds"`
	ReplaySeconds  float64 `json:"replay_seconds"`
	RTOSeconds     float64 `json:"rto_seconds"`
	// The RPO: how much would be lost at RPOReference (the target time,
	// or the drill's start for other targets) given that the newest
	// archived segment was pushed at NewestWALPushedAt. nil when unknown.
	RPOSeconds        *float64   `json:"rpo_seconds,omitempty"`
	RPOReference      *time.Time `json:"rpo_reference,omitempty"`
	NewestWAL         string     `json:"newest_wal,omitempty"`
	NewestWALPushedAt *time.Time `json:"newest_wal_pushed_at,omitempty"`
	// ReplayEndLSN is pg_last_wal_replay_lsn() once recovery finished;
	// RecoveredTo is pg_last_xact_replay_timestamp(), the commit time of
	// the last transaction replayed.
	ReplayEndLSN string     `json:"replay_end_lsn,omitempty"`
	RecoveredTo  *time.Time `json:"recovered_to,omitempty"`

	Checks []Check `json:"checks"`
	// Key is where the record was stored ("" when it was not).
	Key string `json:"key,omitempty"`
}

// WriteRecord stores rec under drills/ with a conditional create, keyed by
// its finish time, and sets rec.ID and rec.Key. Two drills finishing in the
// same millisecond get ids a millisecond apart. ret, when not nil, locks
// the record (the repository's Object Lock policy).
func WriteRecord(ctx context.Context, b storage.Backend, rec *Record, ret *storage.Retention) error {
	rec.FormatVersion = RecordFormatVersion
	at := rec.FinishedAt.UTC()
	for attempt := 0; ; attempt++ {
		rec.ID = at.Format(RecordIDLayout)
		rec.Key = repository.DrillRecordKey(rec.ID)
		data, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			return err
		}
		data = append(data, '\n')
		err = b.Put(ctx, rec.Key, bytes.NewReader(data), storage.PutOptions{IfNotExists: true, Size: int64(len(data)), Retention: ret})
		if errors.Is(err, storage.ErrExists) && attempt < 10 {
			at = at.Add(time.Millisecond)
			continue
		}
		if err != nil {
			rec.Key = ""
			return fmt.Errorf("store the drill record %s in %s: %w", repository.DrillRecordKey(rec.ID), b.Location(), err)
		}
		return nil
	}
}

// ReadRecord reads one record.
func ReadRecord(ctx context.Context, b storage.Backend, key string) (Record, error) {
	rc, _, err := b.Get(ctx, key)
	if err != nil {
		return Record{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxRecordSize))
	if err != nil {
		return Record{}, fmt.Errorf("read %s: %w", key, err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("%w: %s in %s is not valid JSON: %w", ErrBadRecord, key, b.Location(), err)
	}
	rec.Key = key
	return rec, nil
}

// ErrBadRecord marks a drill record that was read but does not parse.
var ErrBadRecord = errors.New("damaged drill record")

// RecordKeys lists the keys of every record, oldest first.
func RecordKeys(ctx context.Context, b storage.Backend) ([]string, error) {
	var keys []string
	err := b.List(ctx, RecordsPrefix, func(oi storage.ObjectInfo) error {
		if _, ok := repository.ParseDrillRecordKey(oi.Key); ok {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", RecordsPrefix, b.Location(), err)
	}
	return keys, nil
}

// maxRecordsRead bounds how many records Latest reads back in time looking
// for a successful drill.
const maxRecordsRead = 100

// Latest returns the newest record and the newest successful one (either
// nil when there is none). It reads records from the newest back, at most
// a hundred, until it finds a successful one.
func Latest(ctx context.Context, b storage.Backend) (last, lastOK *Record, err error) {
	keys, err := RecordKeys(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	return LatestOf(ctx, keys, func(key string) (Record, error) { return ReadRecord(ctx, b, key) })
}

// LatestOf is Latest over keys (oldest first) with read fetching a record;
// callers that cache records (the exporter) pass their own read.
func LatestOf(ctx context.Context, keys []string, read func(key string) (Record, error)) (last, lastOK *Record, err error) {
	for i, n := len(keys)-1, 0; i >= 0 && n < maxRecordsRead; i, n = i-1, n+1 {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		rec, err := read(keys[i])
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue // deleted meanwhile
		case errors.Is(err, ErrBadRecord) || storage.IsPermanent(err):
			// One damaged record (or one the storage refuses for good, a
			// file:// object without its header) must not hide the rest
			// of what the exporter and info show: it counts as a failed
			// drill at the time in its key.
			rec = badRecord(keys[i], err)
		case err != nil:
			return nil, nil, err
		}
		if last == nil {
			r := rec
			last = &r
		}
		if rec.OK {
			return last, &rec, nil
		}
	}
	return last, nil, nil
}

// badRecord stands for a record that does not parse: a failed drill,
// finished at the time its key names, whose error says why.
func badRecord(key string, err error) Record {
	rec := Record{Key: key, Error: err.Error()}
	if id, ok := repository.ParseDrillRecordKey(key); ok {
		if t, terr := time.Parse(repository.DrillRecordIDLayout, id); terr == nil {
			rec.ID, rec.StartedAt, rec.FinishedAt = id, t, t
		}
	}
	return rec
}
