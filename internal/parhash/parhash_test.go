package parhash

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestSumMatchesSequentialHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 5*chunkSize + 17, 16 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		w := New(sha256.New(), nil)
		// Uneven writes, and the caller reusing its buffer after each one.
		buf := make([]byte, 100_003)
		for off := 0; off < len(data); {
			k := copy(buf, data[off:])
			if _, err := w.Write(buf[:k]); err != nil {
				t.Fatal(err)
			}
			for i := range buf[:k] {
				buf[i] = 0xAA
			}
			off += k
		}
		got, n := w.Sum()
		want := sha256.Sum256(data)
		if !bytes.Equal(got, want[:]) || n != int64(size) {
			t.Fatalf("size %d: got %x (%d bytes), want %x (%d bytes)", size, got, n, want, size)
		}
	}
}

// TestWritersInTurnReuseChunks: Writers used one after another, as a
// restore hashes its parts, reuse the chunks of the ones before, so
// hashing many streams in turn allocates about what one does, not that
// times their number.
func TestWritersInTurnReuseChunks(t *testing.T) {
	data := make([]byte, 4<<20)
	chunks := NewChunks()
	hashOne := func() {
		w := New(sha256.New(), chunks)
		for off := 0; off < len(data); off += 1 << 20 {
			w.Write(data[off : off+1<<20])
		}
		w.Sum()
	}
	hashOne() // fills the free list
	const writers = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range writers {
		hashOne()
	}
	runtime.ReadMemStats(&after)
	// Each Writer holds up to queueLen+2 chunks at once (2.5 MiB); what
	// is left per Writer is its struct, channel and hash.
	if per := (after.TotalAlloc - before.TotalAlloc) / writers; per > chunkSize {
		t.Fatalf("each Writer allocated %d bytes on average, more than one %d-byte chunk: Writers in turn do not reuse each other's chunks", per, chunkSize)
	}
}
