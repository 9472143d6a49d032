// Package parhash computes a hash on a second goroutine while the caller
// goes on with other work on the same bytes (compressing, writing), so a
// push or fetch uses both cores instead of hashing and compressing in turn.
package parhash

import (
	"hash"

	"github.com/walvault/walvault/internal/freelist"
)

const chunkSize = 256 << 10

// Chunks is the free list of chunks that Writers made with it share: a
// restore hashes its parts one after another, hundreds in a large backup,
// each with a new Writer. With a sync.Pool per Writer each part's chunks
// became garbage, about 2.5 MiB a part, which the pool's registration kept
// alive for up to two collections, so a long restore's live heap grew with
// the number of parts. It keeps enough for two Writers at their fullest (a
// restore hashes the part being read and the next one).
type Chunks struct{ list *freelist.List }

// NewChunks starts an empty free list for Writers that run in turn.
func NewChunks() *Chunks { return &Chunks{freelist.New(chunkSize, 2*(queueLen+2))} }

// Writer is an io.Writer that copies what it is given into pooled chunks and
// hashes them in order on its own goroutine. Sum waits for the hashing to
// finish. Memory is bounded by the queue: at most queueLen chunks.
type Writer struct {
	h      hash.Hash
	chunks *Chunks
	work   chan []byte
	done   chan struct{}
	n      int64
	final  []byte
}

const queueLen = 8

// New starts hashing with h, its chunks from chunks (nil: a free list of
// its own). Call Sum exactly once, or Close to abandon.
func New(h hash.Hash, chunks *Chunks) *Writer {
	if chunks == nil {
		chunks = &Chunks{freelist.New(chunkSize, queueLen+2)}
	}
	w := &Writer{h: h, chunks: chunks, work: make(chan []byte, queueLen), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for chunk := range w.work {
			w.h.Write(chunk)
			w.chunks.list.Put(&chunk)
		}
		w.final = w.h.Sum(nil)
	}()
	return w
}

// Write queues a copy of p for hashing; it never fails.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		bp := w.chunks.list.Get()
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
