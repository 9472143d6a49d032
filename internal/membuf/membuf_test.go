package membuf

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

func TestWriteReadSeek(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 12345} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		var b Buffer
		for off := 0; off < size; {
			k := min(size-off, 1+rng.IntN(70_000))
			b.Write(data[off : off+k])
			off += k
		}
		if b.Size() != int64(size) {
			t.Fatalf("Size() = %d, want %d", b.Size(), size)
		}
		for round := 0; round < 2; round++ {
			got, err := io.ReadAll(&b)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d round %d: read back %d bytes (err %v), want the %d written", size, round, len(got), err, size)
			}
			if _, err := b.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
		}
		if size > 10 {
			if _, err := b.Seek(-10, io.SeekEnd); err != nil {
				t.Fatal(err)
			}
			tail, _ := io.ReadAll(&b)
			if !bytes.Equal(tail, data[size-10:]) {
				t.Fatalf("size %d: last 10 bytes after Seek differ", size)
			}
		}
	}
	var b Buffer
	if _, err := b.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("Seek to a negative position: want an error")
	}
}
