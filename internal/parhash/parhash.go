// Package parhash computes a hash on a second goroutine while the caller
// goes on with other work on the same bytes (compressing, writing), so a
// push or fetch uses both cores instead of hashing and compressing in turn.
package parhash

import "hash"

const chunkSize = 256 << 10

// Chunks is a bounded free list of chunks that Writers made with it share:
// a restore hashes its parts one after another, hundreds in a large
// backup, each with a new Writer. With a sync.Pool per Writer each part's
// chunks became garbage, about 2.5 MiB a part, which the pool's
// registration kept alive for up to two collections, so a long restore's
// live heap grew with the number of parts. A free list rather than a
// sync.Pool so that reuse does not depend on the collector (or on the race
// detector, which makes a Pool drop a quarter of what it is given): it
// keeps enough for two Writers at their fullest (a restore hashes the part
// being read and the next one) and leaves the rest to the collector.
type Chunks struct{ free chan *[]byte }

// NewChunks starts an empty free list for Writers that run in turn.
func NewChunks() *Chunks { return &Chunks{free: make(chan *[]byte, 2*(queueLen+2))} }

func (c *Chunks) get() *[]byte {
	select {
	case b := <-c.free:
		return b
	default:
		b := make([]byte, 0, chunkSize)
		return &b
	}
}

func (c *Chunks) put(b *[]byte) {
	*b = (*b)[:0]
	select {
	case c.free <- b:
	default:
	}
}

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
		chunks = &Chunks{free: make(chan *[]byte, queueLen+2)}
	}
	w := &Writer{h: h, chunks: chunks, work: make(chan []byte, queueLen), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for chunk := range w.work {
			w.h.Write(chunk)
			w.chunks.put(&chunk)
		}
		w.final = w.h.Sum(nil)
	}()
	return w
}

// Write queues a copy of p for hashing; it never fails.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		bp := w.chunks.get()
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
