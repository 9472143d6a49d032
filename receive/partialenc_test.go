package receive

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/walvault/walvault/crypt/crypttest"
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
		e := newPartialEncoder(c, 0, nil)
		for _, n := range []int64{0, 100, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 7, 3*chunkSize + 7, 2 * chunkSize, int64(len(seg))} {
			body, sum, fps, err := e.encode(r, n)
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
			if sum != sha256.Sum256(seg[:n]) || fps != "" {
				t.Fatalf("%s: prefix %d: wrong sha256, or fingerprints %q in the clear", c, n, fps)
			}
		}
		e.reset()
		if _, sum, _, _ := e.encode(r, 10); sum != sha256.Sum256(seg[:10]) {
			t.Fatalf("%s: after reset: wrong sha256", c)
		}
	}
}

// TestPartialEncoderEncrypted: with recipients, every prefix is an age
// file that decrypts and decompresses to exactly that prefix, and its
// fingerprints are those of the prefix, as wal-push would record them.
func TestPartialEncoderEncrypted(t *testing.T) {
	seg := walBytes(1, 0, 3*chunkSize+777)
	key := crypttest.NewKey(t)
	rec, ids := crypttest.Recipients(t, key), key.Identities(t)
	r := bytes.NewReader(seg)
	for _, c := range []repository.Compression{repository.LZ4, repository.None} {
		e := newPartialEncoder(c, 0, rec)
		for _, n := range []int64{100, chunkSize, 2*chunkSize + 5, chunkSize + 1, int64(len(seg))} {
			body, sum, fps, err := e.encode(r, n)
			if err != nil {
				t.Fatalf("%s: encode %d: %v", c, n, err)
			}
			if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) {
				t.Fatalf("%s: prefix %d is not an age file", c, n)
			}
			want := rec.NewFingerprinter()
			want.Write(seg[:n])
			if fps != want.Sum() || sum != sha256.Sum256(seg[:n]) {
				t.Fatalf("%s: prefix %d: fingerprints %s, want %s (or a wrong sha256)", c, n, fps, want.Sum())
			}
			meta := map[string]string{}
			repository.Codec{Compression: c, Recipients: rec}.Describe(meta, fps)
			plain, err := repository.OpenBody(bytes.NewReader(body), c, ids, meta)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(plain)
			if err != nil || !bytes.Equal(got, seg[:n]) {
				t.Fatalf("%s: prefix %d reads back as %d bytes, %v", c, n, len(got), err)
			}
		}
	}
}
