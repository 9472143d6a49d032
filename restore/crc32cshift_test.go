package restore

import (
	"math/rand/v2"
	"testing"
)

// TestCRC32CArithmetic checks the CRC-32C of a file extended with zeros
// and of one patched block by block against hash/crc32 over the bytes.
func TestCRC32CArithmetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for _, n := range []int{0, 1, 7, 8192, 3*8192 + 5} {
		msg := random(n)
		for _, zeros := range []int64{0, 1, 13, 8192, 1 << 20, 9 << 20} {
			want := crc32cOf(append(append([]byte{}, msg...), make([]byte, zeros)...))
			if got := crc32cExtend(crc32cOf(msg), zeros); got != want {
				t.Errorf("%d bytes + %d zeros: got %08x, want %08x", n, zeros, got, want)
			}
		}
	}

	const block = 8192
	file := random(40 * block)
	sum := crc32cOf(file)
	for range 50 {
		off := int64(rng.IntN(len(file)/block)) * block
		if rng.IntN(4) == 0 {
			off += int64(rng.IntN(block)) // not block-aligned: the arithmetic does not care
			off = min(off, int64(len(file)-block))
		}
		newBlock := random(block)
		sum = crc32cPatch(sum, int64(len(file)), off, block, crc32cOf(file[off:off+block]), crc32cOf(newBlock))
		copy(file[off:], newBlock)
		if want := crc32cOf(file); sum != want {
			t.Fatalf("after a block at %d changed: got %08x, want %08x", off, sum, want)
		}
	}
}
