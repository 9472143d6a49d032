package storagetest

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
)

// generator yields size deterministic pseudo-random bytes (incompressible,
// so no layer can shrink them) without holding them in memory. It has only a
// Read method, so a backend cannot take a shortcut around streaming.
type generator struct {
	src  *rand.ChaCha8
	left int64
	read int64
}

func newGenerator(seed byte, size int64) *generator {
	var s [32]byte
	for i := range s {
		s[i] = seed + byte(i)
	}
	return &generator{src: rand.NewChaCha8(s), left: size}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.src.Read(p) // never fails
	g.left -= int64(n)
	g.read += int64(n)
	return n, nil
}

// errReader is the error failingReader injects.
var errReader = errors.New("storagetest: injected read failure")

// failingReader yields bytes from r, then fails with errReader once after
// bytes have been read, as a dying source file or network peer would.
type failingReader struct {
	r     io.Reader
	after int64
	read  int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.read >= f.after {
		return 0, errReader
	}
	if rest := f.after - f.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.r.Read(p)
	f.read += int64(n)
	return n, err
}

// cancellingReader yields bytes from r and calls cancel once after bytes have
// been read, then keeps yielding: the backend, not the reader, must notice
// that its context is done.
type cancellingReader struct {
	r      io.Reader
	after  int64
	read   int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}

// CountingReader counts into N the bytes read through it; N may be read
// from another goroutine while reads go on.
type CountingReader struct {
	R io.Reader
	N *atomic.Int64
}

func (c CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N.Add(int64(n))
	return n, err
}
