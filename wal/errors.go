package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors. The errors this package returns wrap one of them, so
// callers can tell "this is not a name PostgreSQL would write" from "this
// segment's header does not match" with errors.Is, while the message keeps
// the detail.
var (
	// ErrNotWALName: a string is not a WAL file name of the kind asked for
	// (Classify, ParseSegmentName).
	ErrNotWALName = errors.New("not a WAL file name")
	// ErrInvalidHeader: a segment's first bytes are not a header this
	// package accepts, or disagree with the segment's name (ReadHeader,
	// Header.Check).
	ErrInvalidHeader = errors.New("invalid WAL segment header")
	// ErrInvalidRecord: a record that passes PostgreSQL's checks (length,
	// xl_prev, CRC) cannot be decoded (ScanSegment).
	ErrInvalidRecord = errors.New("invalid WAL record")
)

// nameError is a rejected file name. Its message names what was expected
// ("WAL file name", "WAL segment name"), the input and the reason.
type nameError struct {
	what   string
	name   string
	reason string
}

func (e *nameError) Error() string {
	return fmt.Sprintf("not a %s: %q: %s", e.what, e.name, e.reason)
}

func (e *nameError) Is(target error) bool { return target == ErrNotWALName }

// headerError is a rejected segment header.
type headerError struct {
	msg string
	err error // optional cause, for example io.ErrUnexpectedEOF
}

func (e *headerError) Error() string { return e.msg }

func (e *headerError) Is(target error) bool { return target == ErrInvalidHeader }

func (e *headerError) Unwrap() error { return e.err }

func headerErrorf(format string, args ...any) error {
	return &headerError{msg: fmt.Sprintf(format, args...)}
}
