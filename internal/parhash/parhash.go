// Package parhash computes a hash on a second goroutine while the caller
// goes on with other work on the same bytes (compressing, writing), so a
// push or fetch uses both cores instead of hashing and compressing in turn.
package parhash

import (
	"hash"
	"sync"
)

const chunkSize = 256 << 10

// chunks is shared by every Writer: one that starts after another ended
// (a restore hashes its parts one after another, hundreds in a large
// backup) reuses the chunks the earlier one gave back. With a pool per
// Writer, each part's chunks became garbage, about 2.5 MiB per part, and
// a long restore's heap grew to its GC goal on that alone.
var chunks = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}

// Writer is an io.Writer that copies what it is given into pooled chunks and
// hashes them in order on its own goroutine. Sum waits for the hashing to
// finish. Memory is bounded by the queue: at most queueLen chunks.
type Writer struct {
	h     hash.Hash
	work  chan []byte
	done  chan struct{}
	n     int64
	final []byte
}

const queueLen = 8

// New starts hashing with h. Call Sum exactly once, or Close to abandon.
func New(h hash.Hash) *Writer {
	w := &Writer{h: h, work: make(chan []byte, queueLen), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for chunk := range w.work {
			w.h.Write(chunk)
			chunk = chunk[:0]
			chunks.Put(&chunk)
		}
		w.final = w.h.Sum(nil)
	}()
	return w
}

// Write queues a copy of p for hashing; it never fails.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		bp := chunks.Get().(*[]byte)
		k := min(len(p), chunkSize)
		chunk := append((*bp)[:0], p[:k]...)
		w.work <- chunk
		p = p[k:]
	}
	w.n += int64(n)
	return n, nil
}

// Sum waits for every queued byte to be hashed and returns the digest and
// the number of bytes written.
func (w *Writer) Sum() ([]byte, int64) {
	close(w.work)
	<-w.done
	return w.final, w.n
}
