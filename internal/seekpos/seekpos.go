package seekpos

import (
	"errors"
	"io"
)

// Resolve returns the absolute position that Seek(offset, whence) asks for
// of a body of size bytes read up to cur. A position past the end is
// allowed, as io.Seeker allows it; a negative one is an error.
func Resolve(cur, size, offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = cur + offset
	case io.SeekEnd:
		abs = size + offset
	default:
		return 0, errors.New("invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("negative position")
	}
	return abs, nil
}
