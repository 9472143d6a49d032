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
// object's metadata does; one metadata request per file). WAL up to the
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
	for _, key := range needed {
		info, err := b.Stat(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read the metadata of %s in %s: %w", key, b.Location(), err)
		}
		if !repository.EncryptedObject(info.Metadata) {
			continue
		}
		derr := decryptable(ids, key, repository.ObjectRecipients(info.Metadata))
		if derr == nil {
			continue
		}
		k, _ := repository.ParseKey(key)
		if !hasTarget || !segBefore(stop.Segment, k.WAL.Segment) {
			return derr
		}
		log.Warn("WAL after the backup is encrypted to keys the identity file does not hold: recovery stops there unless the target comes first", "key", key, "error", derr)
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
		return fmt.Errorf("%w: %s is encrypted to %s and no identity file is configured: set decrypt-with (WALVAULT_DECRYPT_WITH); nothing was written", ErrUndecryptable, key, strings.Join(recipients, ", "))
	}
	for _, r := range recipients {
		if ids.Holds(r) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is the first object encrypted only to %s; the identity file %s holds %s: add the missing key to it; nothing was written",
		ErrUndecryptable, key, strings.Join(recipients, ", "), ids.Path(), strings.Join(ids.IDs(), ", "))
}

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
			return err
		}
	}
	return nil
}
