package receive

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/walvault/walvault/repository"
)

// TestPartialEncoderPrefixes encodes growing prefixes of a segment, as
// successive flushes do, and checks each decodes to exactly that prefix
// with the right sha256, whether or not it reuses earlier chunks.
func TestPartialEncoderPrefixes(t *testing.T) {
	seg := make([]byte, 5*chunkSize+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range seg {
		if i%3 == 0 { // part compressible, part not
			seg[i] = byte(rng.Uint32())
		}
	}
	r := bytes.NewReader(seg)
	for _, c := range []repository.Compression{repository.LZ4, repository.Zstd, repository.None} {
		e := newPartialEncoder(c, 0)
		for _, n := range []int64{0, 100, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 7, 3*chunkSize + 7, 2 * chunkSize, int64(len(seg))} {
			body, sum, err := e.encode(r, n)
			if err != nil {
				t.Fatalf("%s: encode %d: %v", c, n, err)
			}
			zr, err := c.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("%s: decode prefix %d: %v", c, n, err)
			}
			if !bytes.Equal(got, seg[:n]) {
				t.Fatalf("%s: prefix %d decodes to %d bytes that differ", c, n, len(got))
			}
			if sum != sha256.Sum256(seg[:n]) {
				t.Fatalf("%s: prefix %d: wrong sha256", c, n)
			}
		}
		e.reset()
		if _, sum, _ := e.encode(r, 10); sum != sha256.Sum256(seg[:10]) {
			t.Fatalf("%s: after reset: wrong sha256", c)
		}
	}
}
