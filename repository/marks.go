package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/walvault/walvault/storage"
)

// Keep marks exempt a backup from retention. Objects are written once, so a
// mark is never changed: each backup-mark writes a new small object
//
//	backups/<id>/marks/<UTC time, nanoseconds>-keep     (or -nokeep)
//
// and the newest mark says whether the backup is kept. The time sorts
// lexically, so the keys of one backup list in the order they were written.

// MarksDir is the folder of a backup's keep marks, inside the backup's folder.
const MarksDir = "marks"

// markTimeLayout has a fixed width, so keys sort in time order.
const markTimeLayout = "20060102T150405.000000000Z"

const (
	markKeepSuffix   = "-keep"
	markNoKeepSuffix = "-nokeep"
)

// Mark is one keep mark of a backup.
type Mark struct {
	BackupID string
	At       time.Time // UTC, as in the key
	Keep     bool      // true: exempt from retention; false: back under it
	Key      string
}

// MarksPrefix is the folder of one backup's marks.
func MarksPrefix(id string) string { return BackupPrefix(id) + MarksDir + "/" }

// MarkKey is the key of a mark written at t.
func MarkKey(id string, t time.Time, keep bool) string {
	suffix := markNoKeepSuffix
	if keep {
		suffix = markKeepSuffix
	}
	return MarksPrefix(id) + t.UTC().Format(markTimeLayout) + suffix
}

// ParseMarkKey recognises a mark's key; ok is false for any other key.
func ParseMarkKey(key string) (m Mark, ok bool) {
	id, rest, found := SplitBackupKey(key)
	if !found {
		return Mark{}, false
	}
	name, found := strings.CutPrefix(rest, MarksDir+"/")
	if !found {
		return Mark{}, false
	}
	var stamp string
	switch {
	case strings.HasSuffix(name, markNoKeepSuffix):
		stamp = strings.TrimSuffix(name, markNoKeepSuffix)
	case strings.HasSuffix(name, markKeepSuffix):
		stamp, m.Keep = strings.TrimSuffix(name, markKeepSuffix), true
	default:
		return Mark{}, false
	}
	if len(stamp) != len(markTimeLayout) {
		return Mark{}, false
	}
	t, err := time.Parse(markTimeLayout, stamp)
	if err != nil {
		return Mark{}, false
	}
	m.BackupID, m.At, m.Key = id, t.UTC(), key
	return m, true
}

// newer reports whether a supersedes b. At the same instant a keep mark
// wins: when in doubt, keep.
func (a Mark) newer(b Mark) bool {
	if !a.At.Equal(b.At) {
		return a.At.After(b.At)
	}
	return a.Keep && !b.Keep
}

// Kept says whether the newest of marks keeps the backup (false with no
// marks at all).
func Kept(marks []Mark) bool {
	newest, ok := Newest(marks)
	return ok && newest.Keep
}

// Newest returns the mark that counts: the newest.
func Newest(marks []Mark) (Mark, bool) {
	if len(marks) == 0 {
		return Mark{}, false
	}
	n := marks[0]
	for _, m := range marks[1:] {
		if m.newer(n) {
			n = m
		}
	}
	return n, true
}

// LoadMarks lists one backup's marks, oldest first.
func LoadMarks(ctx context.Context, b storage.Backend, id string) ([]Mark, error) {
	if err := ValidateBackupID(id); err != nil {
		return nil, err
	}
	var marks []Mark
	err := b.List(ctx, MarksPrefix(id), func(oi storage.ObjectInfo) error {
		if m, ok := ParseMarkKey(oi.Key); ok {
			marks = append(marks, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keep marks of backup %s: %w", id, err)
	}
	return marks, nil
}

// KeepMarks returns, in one List of backups/, the marks of every backup
// that has any, by backup id, oldest first. Kept(result[id]) is the
// backup's keep state.
func KeepMarks(ctx context.Context, b storage.Backend) (map[string][]Mark, error) {
	out := map[string][]Mark{}
	err := b.List(ctx, BackupsPrefix, func(oi storage.ObjectInfo) error {
		if m, ok := ParseMarkKey(oi.Key); ok {
			out[m.BackupID] = append(out[m.BackupID], m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keep marks in %s: %w", b.Location(), err)
	}
	return out, nil
}

// MarkOptions describe a new mark's object.
type MarkOptions struct {
	Host     string // who wrote it, for people reading the object
	Walvault string // walvault version
	// Retention locks the mark object (S3 Object Lock); nil for none.
	Retention *storage.Retention
}

// markBody is the mark object's content: for people and audits only; the
// key alone says what the mark means.
type markBody struct {
	BackupID string    `json:"backup_id"`
	Keep     bool      `json:"keep"`
	At       time.Time `json:"at"`
	Host     string    `json:"host,omitempty"`
	Walvault string    `json:"walvault_version,omitempty"`
}

// WriteMark records a new keep state for a backup with a conditional
// create. It does not check that the backup exists; callers do. The new
// mark is timed after every existing one, even if this host's clock is
// behind the one that wrote them, so it is the newest.
func WriteMark(ctx context.Context, b storage.Backend, id string, keep bool, now time.Time, opts MarkOptions) (Mark, error) {
	existing, err := LoadMarks(ctx, b, id)
	if err != nil {
		return Mark{}, err
	}
	at := now.UTC()
	if newest, ok := Newest(existing); ok && !at.After(newest.At) {
		at = newest.At.Add(time.Microsecond)
	}
	for try := 0; ; try++ {
		m := Mark{BackupID: id, At: at, Keep: keep, Key: MarkKey(id, at, keep)}
		data, err := json.MarshalIndent(markBody{BackupID: id, Keep: keep, At: at, Host: opts.Host, Walvault: opts.Walvault}, "", "  ")
		if err != nil {
			return Mark{}, err
		}
		data = append(data, '\n')
		err = b.Put(ctx, m.Key, bytes.NewReader(data), storage.PutOptions{
			IfNotExists: true, Size: int64(len(data)), Retention: opts.Retention,
		})
		if errors.Is(err, storage.ErrExists) && try < 3 {
			at = at.Add(time.Microsecond) // another mark in the same instant
			continue
		}
		if err != nil {
			return Mark{}, fmt.Errorf("write keep mark of backup %s: %w", id, err)
		}
		return m, nil
	}
}
