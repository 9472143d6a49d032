package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/walvault/walvault/storage"
)

// lockHint puts what to do first when a push with lock settings met a
// storage that cannot lock objects (a bucket without Object Lock).
func lockHint(err error, lock lockSettings, location string) error {
	if err == nil || lock.LockMode == "" || !errors.Is(err, storage.ErrUnsupported) {
		return err
	}
	return fmt.Errorf("lock-mode %s asks for Object Lock, but %s cannot lock objects: enable Object Lock on the bucket (when creating it; AWS also allows it later on a versioned bucket, many S3-compatible servers do not) or set lock-mode off; nothing was stored: %w",
		strings.ToLower(string(lock.LockMode)), location, err)
}
