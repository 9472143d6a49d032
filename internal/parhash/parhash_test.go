package parhash

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

func TestSumMatchesSequentialHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 5*chunkSize + 17, 16 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		w := New(sha256.New())
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
