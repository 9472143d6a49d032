package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// MarkResult is what SetKeep did.
type MarkResult struct {
	// Changed is false when the backup already was in the asked state:
	// nothing was written.
	Changed bool
	// Mark is the new mark, when Changed.
	Mark repository.Mark
}

// SetKeep exempts backup id from retention (keep) or puts it back under
// retention (!keep), the rules of `walvault backup-mark`: the backup must
// exist with its manifest (an INCOMPLETE folder is no backup; the error
// then wraps repository.ErrNoBackup); asking for the state the backup is
// already in writes nothing; otherwise a new mark object is written, never
// a rewrite, locked by the repository's own Object Lock policy (walvault.json)
// whatever opts.Retention says.
func SetKeep(ctx context.Context, b storage.Backend, id string, keep bool, now time.Time, opts repository.MarkOptions) (MarkResult, error) {
	if _, err := repository.LoadBackupManifest(ctx, b, id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return MarkResult{}, fmt.Errorf("%w: backup %s does not exist in %s, or is INCOMPLETE (see backup-list)", repository.ErrNoBackup, id, b.Location())
		}
		return MarkResult{}, err
	}
	marks, err := repository.LoadMarks(ctx, b, id)
	if err != nil {
		return MarkResult{}, err
	}
	if repository.Kept(marks) == keep {
		return MarkResult{}, nil
	}
	ident, err := repository.LoadIdentity(ctx, b)
	if err != nil {
		return MarkResult{}, fmt.Errorf("read repository identity: %w", err)
	}
	opts.Retention = ident.Lock().Retention(now)
	m, err := repository.WriteMark(ctx, b, id, keep, now, opts)
	if err != nil {
		return MarkResult{}, err
	}
	return MarkResult{Changed: true, Mark: m}, nil
}
