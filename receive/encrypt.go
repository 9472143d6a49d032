package receive

import (
	"context"
	"fmt"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// samePartial compares a partial about to be stored with the one already
// under its key (a restarted receiver re-uploading the same range): by
// sha256 in the clear, by a shared recipient's keyed fingerprint when
// encrypted, as wal-push settles its conflicts. The error says how they
// differ.
func samePartial(ours, theirs map[string]string) error {
	if repository.EncryptedObject(ours) != repository.EncryptedObject(theirs) {
		return fmt.Errorf("is encrypted %q, the received WAL would be %q", theirs[repository.MetaEncryption], ours[repository.MetaEncryption])
	}
	if !repository.EncryptedObject(ours) {
		if theirs[repository.MetaSHA256] != ours[repository.MetaSHA256] {
			return fmt.Errorf("has sha256 %s, received WAL has %s", theirs[repository.MetaSHA256], ours[repository.MetaSHA256])
		}
		return nil
	}
	same, comparable := crypt.SameContent(ours[repository.MetaFingerprints], theirs[repository.MetaFingerprints])
	switch {
	case !comparable:
		return fmt.Errorf("is encrypted to %v, the received WAL to %v, so they cannot be compared (%w)",
			crypt.RecipientsOf(theirs[repository.MetaFingerprints]), crypt.RecipientsOf(ours[repository.MetaFingerprints]), archive.ErrIncomparable)
	case !same:
		return fmt.Errorf("has fingerprints %s, received WAL has %s", theirs[repository.MetaFingerprints], ours[repository.MetaFingerprints])
	}
	return nil
}

// recordRecipients records the keys partials are encrypted to before the
// first of them is stored (repository.RecordRecipients).
func recordRecipients(ctx context.Context, b storage.Backend, id repository.Identity, opts archive.Options) (repository.Identity, error) {
	return repository.RecordRecipients(ctx, b, id, opts.Recipients, opts.Host, opts.Now(), opts.Lock.Retention(opts.Now()))
}
