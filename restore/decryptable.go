package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// ErrUndecryptable: an object a restore needs is encrypted only to keys the
// identity file does not hold. Nothing was written.
var ErrUndecryptable = errors.New("the identity file cannot decrypt an object this restore needs")

// checkDecryptable proves, before anything is written, that ids can
// decrypt every object the restore of m reads: its parts (their records in
// the manifest name their recipients) and the WAL from its start (each
// object's metadata does; read for a bounded sample, see
// repository.WALRecipientRuns: a key used only between two sampled
// objects that agree is found when wal-fetch reads it). WAL up to the
// backup's end is always needed; later WAL only up to the target, which
// is not known as a position here: with a target, a later object the
// identity cannot decrypt is a warning (recovery will stop there unless
// the target comes first), without one an error. Keys rotate without
// rewriting objects, so an old backup may need an old key: the error names
// the key and the first object that needs it.
func checkDecryptable(ctx context.Context, b storage.Backend, m repository.BackupManifest, ids *crypt.Identities, hasTarget bool, log *slog.Logger) error {
	if err := checkPartsDecryptable(m, ids); err != nil {
		return err
	}
	// Every key an object is encrypted to is recorded (walvault.json and
	// recipients/, before the object was written): an identity holding
	// them all decrypts every WAL object, and no WAL metadata is read.
	if ids != nil {
		if id, err := repository.LoadIdentity(ctx, b); err == nil {
			inUse, err := repository.RecipientsInUse(ctx, b, id)
			if err != nil {
				return err
			}
			if len(inUse) > 0 && !slices.ContainsFunc(inUse, func(k string) bool { return !ids.Holds(k) }) {
				return nil
			}
		}
	}
	start, err1 := wal.Classify(m.StartWAL)
	stop, err2 := wal.Classify(m.StopWAL)
	if err1 != nil || err2 != nil {
		return nil // an old manifest: the WAL is checked as it is fetched
	}
	var needed []string
	err := b.List(ctx, repository.WALPrefix, func(o storage.ObjectInfo) error {
		k, ok := repository.ParseKey(o.Key)
		if !ok || (k.Kind != repository.KeySegment && k.Kind != repository.KeyWALPartial) {
			return nil
		}
		if k.WAL.Timeline >= start.Timeline && !segBefore(k.WAL.Segment, start.Segment) {
			needed = append(needed, o.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list the WAL in %s: %w", b.Location(), err)
	}
	slices.Sort(needed)
	runs, _, err := repository.WALRecipientRuns(ctx, b, needed)
	if err != nil {
		return err
	}
	for _, run := range runs {
		if !run.Encrypted {
			continue
		}
		key := needed[run.First]
		derr := decryptable(ids, key, run.Recipients)
		if derr == nil {
			continue
		}
		k, _ := repository.ParseKey(key)
		if !hasTarget || !segBefore(stop.Segment, k.WAL.Segment) {
			return fmt.Errorf("%w; nothing was written", derr)
		}
		log.Warn("WAL after the backup is encrypted to keys the identity file does not hold: the restore goes on, and recovery stops with an error at that object unless the target comes first (add the key to the identity file before starting the server)", "key", key, "why", derr)
		return nil
	}
	return nil
}

// segBefore reports whether a comes before b in WAL order (timelines
// aside).
func segBefore(a, b wal.Segment) bool {
	return a.Log < b.Log || (a.Log == b.Log && a.Seg < b.Seg)
}

// decryptable says whether ids hold one of recipients.
func decryptable(ids *crypt.Identities, key string, recipients []string) error {
	if ids == nil {
		return fmt.Errorf("%w: %s is encrypted to %s and no identity file is configured: set decrypt-with (WALVAULT_DECRYPT_WITH)", ErrUndecryptable, key, strings.Join(recipients, ", "))
	}
	for _, r := range recipients {
		if ids.Holds(r) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is the first object encrypted only to %s; the identity file %s holds %s: add the missing key to it",
		ErrUndecryptable, key, strings.Join(recipients, ", "), ids.Path(), strings.Join(ids.IDs(), ", "))
}

// partHasher is the sha256 a part's plaintext is checked with as it is
// read: parhash's, or noHash for an encrypted part, whose body
// (repository.OpenBody) checks its keyed fingerprint at its end, from a
// sha256 of its own: a second one would cost a pass for nothing.
type partHasher interface {
	Write(p []byte) (int, error)
	Sum() ([]byte, int64)
}

type noHash struct{}

func (noHash) Write(p []byte) (int, error) { return len(p), nil }
func (noHash) Sum() ([]byte, int64)        { return nil, 0 }

// checkPartsDecryptable proves that ids can decrypt every encrypted part
// of m (the earlier backups of an incremental chain need no WAL of their
// own).
func checkPartsDecryptable(m repository.BackupManifest, ids *crypt.Identities) error {
	parts := []repository.BackupPart{m.PGManifest}
	for _, a := range m.Archives {
		parts = append(parts, a.Parts...)
	}
	for _, p := range parts {
		if p.Encryption == "" {
			continue
		}
		if err := decryptable(ids, p.Key, repository.ObjectRecipients(p.Meta())); err != nil {
			return fmt.Errorf("%w; nothing was written", err)
		}
	}
	return nil
}
