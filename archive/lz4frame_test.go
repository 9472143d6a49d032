package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/walvault/walvault/repository"
)

// lz4Writer encodes p with the lz4 package's Writer, as repository.LZ4
// does: the reference for the frame format.
func lz4Writer(t *testing.T, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := repository.LZ4.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomBytes(n int, seed byte) []byte {
	p := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(p)
	return p
}

// walLike is compressible, like WAL: runs of zeros between random records.
func walLike(n int) []byte {
	p := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i += 512 {
		for j := i; j < min(n, i+rng.IntN(200)); j++ {
			p[j] = byte(rng.Uint32())
		}
	}
	return p
}

// TestXXH32: the content checksum is the one the lz4 package's Writer
// writes at the end of a frame, for any length and any split of the input.
func TestXXH32(t *testing.T) {
	known := map[string]uint32{"": 0x02CC5D05, "a": 0x550D7456, "abc": 0x32D153FF}
	for in, want := range known {
		if got := xxh32([]byte(in)); got != want {
			t.Errorf("xxh32(%q): got %08x, want %08x", in, got, want)
		}
	}
	data := randomBytes(4<<10+3, 7)
	for _, n := range []int{0, 1, 3, 4, 15, 16, 17, 31, 32, 33, 100, 4<<10 + 3} {
		frame := lz4Writer(t, data[:n])
		want := binary.LittleEndian.Uint32(frame[len(frame)-4:])
		if got := xxh32(data[:n]); got != want {
			t.Errorf("xxh32 of %d bytes: got %08x, want %08x (lz4 Writer)", n, got, want)
		}
		for _, step := range []int{1, 5, 16, 17} {
			x := newXXH32()
			for p := data[:n]; len(p) > 0; {
				k := min(step, len(p))
				x.Write(p[:k])
				p = p[k:]
			}
			if got := x.Sum32(); got != want {
				t.Errorf("xxh32 of %d bytes written %d at a time: got %08x, want %08x", n, step, got, want)
			}
		}
	}
}

// TestEncodeLZ4: every input comes back byte for byte through the reader
// wal-fetch uses (which checks the frame's header and content checksums),
// with its sha256 and size, in a frame with the Writer's header.
func TestEncodeLZ4(t *testing.T) {
	random := randomBytes(3<<20+7, 1)
	wal := walLike(3<<20 + 5)
	tests := map[string][]byte{
		"empty":                   nil,
		"one byte":                {42},
		"under a stripe":          []byte("fifteen bytes.."),
		"one block less a byte":   wal[:frameBlockSize-1],
		"one block":               wal[:frameBlockSize],
		"one block and a byte":    wal[:frameBlockSize+1],
		"compressible":            wal,
		"incompressible":          random,
		"compressible then not":   append(bytes.Clone(wal[:2<<20]), random[:1<<20+9]...),
		"16 MiB, like a segment":  bytes.Repeat(wal[:1<<20], 16),
		"zeros (a fresh segment)": make([]byte, 2<<20),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			body, sum, size, err := encodeLZ4(bytes.NewReader(in))
			if err != nil {
				t.Fatalf("encodeLZ4: %v", err)
			}
			if want := sha256.Sum256(in); !bytes.Equal(sum, want[:]) || size != int64(len(in)) {
				t.Errorf("encodeLZ4: sha256 %x size %d, want %x %d", sum, size, want, len(in))
			}
			frame, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(frame)) != body.Size() {
				t.Errorf("Size %d, but %d bytes read", body.Size(), len(frame))
			}
			if want := lz4Writer(t, nil)[:7]; !bytes.Equal(frame[:7], want) {
				t.Errorf("frame header % x, want the lz4 Writer's % x", frame[:7], want)
			}
			zr, err := repository.LZ4.NewReader(bytes.NewReader(frame))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(got, in) {
				t.Fatalf("decoded %d bytes differ from the %d encoded", len(got), len(in))
			}
		})
	}
	// Random data is stored raw, not expanded.
	body, _, _, err := encodeLZ4(bytes.NewReader(random))
	if err != nil {
		t.Fatal(err)
	}
	if blocks := (len(random) + frameBlockSize - 1) / frameBlockSize; body.Size() != int64(len(random)+7+4*blocks+8) {
		t.Errorf("incompressible input of %d bytes: frame of %d bytes, want it stored raw (%d)", len(random), body.Size(), len(random)+7+4*blocks+8)
	}
}

type failingReader struct {
	r     io.Reader
	after int
	err   error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, f.err
	}
	n, err := f.r.Read(p[:min(len(p), f.after)])
	f.after -= n
	return n, err
}

// TestEncodeLZ4ReadError: a read error ends the encode with that error.
func TestEncodeLZ4ReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, after := range []int{0, 100, frameBlockSize, 5*frameBlockSize + 3} {
		r := &failingReader{r: bytes.NewReader(walLike(8 << 20)), after: after, err: boom}
		if _, _, _, err := encodeLZ4(r); !errors.Is(err, boom) {
			t.Errorf("read error after %d bytes: got %v, want %v", after, err, boom)
		}
	}
}

func BenchmarkEncodeLZ4(b *testing.B) {
	in := walLike(16 << 20)
	b.SetBytes(int64(len(in)))
	for range b.N {
		if _, _, _, err := encodeLZ4(bytes.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}
