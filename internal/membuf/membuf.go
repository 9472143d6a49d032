// Package membuf is an in-memory buffer made of fixed-size chunks: it grows
// without copying what it holds (a bytes.Buffer doubles and copies, which
// briefly needs twice the memory), and reads back as an io.ReadSeeker so an
// upload can sign, retry and rewind it.
package membuf

import (
	"fmt"
	"io"

	"github.com/walvault/walvault/internal/seekpos"
)

const chunkSize = 1 << 20

// Buffer is written once, then read (and re-read after Seek).
type Buffer struct {
	chunks [][]byte
	size   int64
	off    int64 // read offset
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(b.chunks) == 0 || len(b.chunks[len(b.chunks)-1]) == chunkSize {
			b.chunks = append(b.chunks, make([]byte, 0, chunkSize))
		}
		last := &b.chunks[len(b.chunks)-1]
		k := min(len(p), chunkSize-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
	b.size += int64(n)
	return n, nil
}

// Size is the number of bytes written.
func (b *Buffer) Size() int64 { return b.size }

// Read reads from the current offset.
func (b *Buffer) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && b.off < b.size {
		chunk := b.chunks[b.off/chunkSize]
		k := copy(p[n:], chunk[b.off%chunkSize:])
		n += k
		b.off += int64(k)
	}
	return n, nil
}

// Seek moves the read offset.
func (b *Buffer) Seek(offset int64, whence int) (int64, error) {
	abs, err := seekpos.Resolve(b.off, b.size, offset, whence)
	if err != nil {
		return 0, fmt.Errorf("membuf: %w", err)
	}
	b.off = abs
	return abs, nil
}
