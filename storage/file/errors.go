package file

import (
	"errors"
	"syscall"

	"github.com/walvault/walvault/storage"
)

// permanentErrnos are the errors retrying cannot fix: a full disk or quota,
// a permission problem, a read-only filesystem.
var permanentErrnos = [...]syscall.Errno{
	syscall.ENOSPC, syscall.EDQUOT, syscall.EACCES, syscall.EPERM, syscall.EROFS,
}

// classify marks err permanent when retrying it is pointless, so the retry
// decorator gives up at once. nil stays nil.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var p *storage.PermanentError
	if errors.As(err, &p) {
		return err
	}
	for _, errno := range permanentErrnos {
		if errors.Is(err, errno) {
			return storage.Permanent(err)
		}
	}
	return err
}
