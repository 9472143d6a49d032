package restore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
)

// storedCheck hashes the stored (compressed) bytes of one part as its
// decoder reads them, for a part whose record has a stored sha256: about a
// ninth of the bytes its raw sha256 would cost with lz4. It follows the
// part across the bodies a broken download is read from again.
type storedCheck struct {
	h   hash.Hash // of the part's stored bytes [0, n), in order
	n   int64
	cur *storedTee // the body being read
}

// reader hashes what the decoder reads of a body of the part: the first,
// or one opened again after a break. A body opened again is read from its
// start, so its bytes below n must be the ones hashed from the broken body
// (the object did not change between the two reads): they are hashed apart
// and compared once the body reaches n.
func (c *storedCheck) reader(r io.Reader) io.Reader {
	t := &storedTee{c: c, r: r, skip: c.n}
	if c.n > 0 {
		t.prefix = sha256.New()
		if cl, ok := c.h.(hash.Cloner); ok {
			if d, err := cl.Clone(); err == nil {
				t.want = d.Sum(nil)
			}
		}
	}
	c.cur = t
	return t
}

// drain reads the rest of the current body, up to its end or past max
// stored bytes: a decoder may stop at its frame's end, and anything stored
// after it is part of the object too. Its error is the body's.
func (c *storedCheck) drain(max int64) error {
	if left := max + 1 - c.cur.off; left > 0 {
		_, err := io.Copy(io.Discard, io.LimitReader(c.cur, left))
		return err
	}
	return nil
}

// complete says whether the sum covers the whole body read last: a body
// read again that ended before where the broken one stopped does not.
func (c *storedCheck) complete() error {
	if c.cur != nil && c.cur.prefix != nil {
		return errStoredShorter
	}
	return nil
}

var (
	errStoredChanged = errors.New("the part read again after a broken download differs from what was read before")
	errStoredShorter = errors.New("the part read again after a broken download ended before where the broken one stopped")
)

// storedTee is one body of a part, hashed into its storedCheck as read.
type storedTee struct {
	c   *storedCheck
	r   io.Reader
	off int64 // bytes read from this body
	// skip: bytes of this body already hashed from an earlier one; their
	// own sum goes to prefix, to be compared with want at skip.
	skip   int64
	prefix hash.Hash
	want   []byte
	err    error
}

func (t *storedTee) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.r.Read(p)
	b := p[:n]
	if t.prefix != nil {
		k := int(min(int64(len(b)), t.skip-t.off))
		t.prefix.Write(b[:k])
		t.off += int64(k)
		b = b[k:]
		if t.off == t.skip {
			if !bytes.Equal(t.prefix.Sum(nil), t.want) {
				t.err = errStoredChanged
				return 0, t.err
			}
			t.prefix = nil
		}
	}
	t.c.h.Write(b)
	t.c.n += int64(len(b))
	t.off += int64(len(b))
	return n, err
}
