package receive

import (
	"context"
	"fmt"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// samePartial compares a partial about to be stored with the one already
// under its key (a restarted receiver re-uploading the same range) as
// wal-push settles its conflicts. The error says how they differ.
func samePartial(ours, theirs map[string]string) error {
	same, err := archive.SameContent(ours, theirs)
	switch {
	case err != nil:
		return fmt.Errorf("is stored, and %w", err)
	case !same:
		return fmt.Errorf("differs from the received WAL:\n%s", archive.DescribeSides(ours, theirs))
	}
	return nil
}

// recordRecipients records the keys partials are encrypted to before the
// first of them is stored (repository.RecordRecipients).
func recordRecipients(ctx context.Context, b storage.Backend, id repository.Identity, opts archive.Options) (repository.Identity, error) {
	return repository.RecordRecipients(ctx, b, id, opts.Recipients, opts.Host, opts.Now(), opts.Lock.Retention(opts.Now()))
}
