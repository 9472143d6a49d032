package receive

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
)

// partialEncoder encodes the open segment's prefix for each partial upload
// without redoing the work of earlier ones: the segment is cut into 1 MiB
// chunks, each full chunk is compressed and hashed once, and a flush only
// compresses and hashes the chunk still being filled. The frame is built
// with archive's lz4 primitives, as wal-push builds its own, without the
// content checksum (it cannot carry over from one flush to the next as the
// sha256 state does; the sha256 in the object's metadata covers the
// content). Memory: the compressed full chunks plus two 1 MiB buffers,
// instead of the whole segment raw and compressed on every flush.
//
// In zstd each chunk is a frame of its own (with its content checksum):
// concatenated frames are one valid zstd stream, which `zstd -d` and
// repository.Zstd's reader decode whole.
//
// With recipients (an encrypted repository), the keyed fingerprints come
// from the sha256 (crypt.Recipients.FingerprintsOf), and each body is
// encrypted once built: age runs over the compressed bytes only, as
// wal-push's does.
type partialEncoder struct {
	compression repository.Compression
	chunks      int    // full chunks encoded so far
	blocks      []byte // their encoded blocks, in order
	hashState   []byte // sha256 state after them
	chunk       []byte // read buffer
	dst         []byte // compression scratch
	body        []byte // the last frame built (reused)
	lz          lz4.CompressorCCompat
	zstd        *zstd.Encoder // nil unless compression is zstd

	recipients *crypt.Recipients // nil: stored in the clear
	sealed     bytes.Buffer      // the last body encrypted (reused)
}

// chunkSize is the repository's lz4 block size.
const chunkSize = archive.LZ4BlockSize

// newPartialEncoder encodes in c, zstd at level (0: its default), and
// encrypts to r when it is not nil.
func newPartialEncoder(c repository.Compression, level int, r *crypt.Recipients) *partialEncoder {
	e := &partialEncoder{compression: c, recipients: r, chunk: make([]byte, chunkSize), dst: make([]byte, chunkSize)}
	if c == repository.Zstd {
		if level == 0 {
			level = repository.DefaultZstdLevel
		}
		// Options that cannot fail: a valid level, no window given.
		e.zstd, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1))
	}
	return e
}

// reset forgets the previous segment.
func (e *partialEncoder) reset() {
	e.chunks, e.blocks, e.hashState = 0, e.blocks[:0], nil
}

// encode returns the stored form of the first n bytes of f, their sha256
// and, encrypted, their keyed fingerprints (crypt.Fingerprinter.Sum). The
// body is valid until the next call.
func (e *partialEncoder) encode(f io.ReaderAt, n int64) (body []byte, sum [sha256.Size]byte, fingerprints string, err error) {
	if int64(e.chunks)*chunkSize > n {
		e.reset() // not a prefix of what was encoded: start over
	}
	h := sha256.New()
	if e.hashState != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(e.hashState); err != nil {
			return nil, sum, "", err
		}
	}
	for int64(e.chunks+1)*chunkSize <= n {
		if _, err := f.ReadAt(e.chunk, int64(e.chunks)*chunkSize); err != nil {
			return nil, sum, "", err
		}
		h.Write(e.chunk)
		e.blocks = e.appendBlock(e.blocks, e.chunk)
		e.chunks++
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return nil, sum, "", err
		}
		e.hashState = state
	}
	tail := e.chunk[:n-int64(e.chunks)*chunkSize]
	if len(tail) > 0 {
		if _, err := f.ReadAt(tail, int64(e.chunks)*chunkSize); err != nil {
			return nil, sum, "", err
		}
	}
	copy(sum[:], sumWith(h, tail))
	e.body = e.body[:0]
	if e.compression == repository.LZ4 {
		e.body = archive.AppendLZ4FrameHeader(e.body, false)
	}
	e.body = append(e.body, e.blocks...)
	if len(tail) > 0 {
		e.body = e.appendBlock(e.body, tail)
	}
	if e.compression == repository.LZ4 {
		e.body = archive.AppendLZ4FrameEnd(e.body)
	}
	if e.recipients == nil {
		return e.body, sum, "", nil
	}
	return e.seal(sum)
}

// seal encrypts the body just built and fingerprints its plaintext.
func (e *partialEncoder) seal(sum [sha256.Size]byte) ([]byte, [sha256.Size]byte, string, error) {
	e.sealed.Reset()
	w, err := e.recipients.NewWriter(&e.sealed)
	if err != nil {
		return nil, sum, "", fmt.Errorf("start encryption: %w", err)
	}
	if _, err := w.Write(e.body); err != nil {
		return nil, sum, "", err
	}
	if err := w.Close(); err != nil {
		return nil, sum, "", err
	}
	return e.sealed.Bytes(), sum, e.recipients.FingerprintsOf(sum[:]), nil
}

func sumWith(h hash.Hash, tail []byte) []byte {
	h.Write(tail)
	return h.Sum(nil)
}

// appendBlock appends src's encoded form: a zstd frame, an lz4 block
// (stored raw when it does not shrink) or, without compression, src
// itself.
func (e *partialEncoder) appendBlock(out, src []byte) []byte {
	if e.zstd != nil {
		return e.zstd.EncodeAll(src, out)
	}
	if e.compression != repository.LZ4 {
		return append(out, src...)
	}
	return archive.AppendLZ4Block(out, src, e.dst, archive.CompressLZ4Block(&e.lz, src, e.dst))
}
