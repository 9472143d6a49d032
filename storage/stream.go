package storage

import (
	"errors"
	"io"
)

// TagStreamErrors wraps the body of an object being read, so an error of
// the storage stream (a reset connection, a timeout) can be told apart from
// an error a decoder raises on malformed bytes read through it: the first
// means "try again", the second "this object is corrupt".
func TagStreamErrors(body io.Reader) io.Reader { return streamReader{body} }

// StreamError returns the storage error inside err when err came from a
// body wrapped by TagStreamErrors, and nil otherwise.
func StreamError(err error) error {
	var se streamError
	if errors.As(err, &se) {
		return se.err
	}
	return nil
}

type streamReader struct{ r io.Reader }

func (s streamReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = streamError{err}
	}
	return n, err
}

type streamError struct{ err error }

func (e streamError) Error() string { return e.err.Error() }
func (e streamError) Unwrap() error { return e.err }
