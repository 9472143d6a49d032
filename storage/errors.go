package storage

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Backends wrap them (fmt.Errorf("...: %w", ErrNotFound))
// so messages keep the operation and key; callers test with errors.Is.
var (
	// ErrNotFound: the key does not exist. Authoritative: never a guess made
	// because the storage could not be reached.
	ErrNotFound = errors.New("object not found")
	// ErrExists: a conditional create found the key already present.
	ErrExists = errors.New("object already exists")
	// ErrLocked: the object is under retention and cannot be deleted yet.
	ErrLocked = errors.New("object is locked by retention")
	// ErrUnsupported: the backend cannot do what the options ask (for
	// example Object Lock on a local directory).
	ErrUnsupported = errors.New("not supported by this storage")
)

// LockedError is ErrLocked with what the backend learned of the lock on
// the way: its retain-until date (zero when it did not say) and why.
type LockedError struct {
	Until time.Time
	Why   string
}

func (e *LockedError) Error() string { return ErrLocked.Error() + " (" + e.Why + ")" }
func (e *LockedError) Unwrap() error { return ErrLocked }

// LockedUntil returns the retain-until date a LockedError in err's chain
// carries, if any.
func LockedUntil(err error) (time.Time, bool) {
	var l *LockedError
	if errors.As(err, &l) && !l.Until.IsZero() {
		return l.Until, true
	}
	return time.Time{}, false
}

// PermanentError marks an error that retrying cannot fix (bad credentials, a
// missing bucket, a full disk). The retry decorator gives up at once on it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so IsPermanent reports true. nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether retrying err is pointless: typed answers
// (not found, exists, locked, unsupported) and errors marked Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p) ||
		errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) ||
		errors.Is(err, ErrLocked) || errors.Is(err, ErrUnsupported)
}

// OpError wraps a backend failure with the operation and key, so every
// message says what was being done to what.
func OpError(op, key string, err error) error {
	return fmt.Errorf("%s %s: %w", op, key, err)
}
