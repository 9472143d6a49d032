package receive

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"io"

	"github.com/pierrec/lz4/v4"

	"github.com/walvault/walvault/repository"
)

// partialEncoder encodes the open segment's prefix for each partial upload
// without redoing the work of earlier ones: the segment is cut into 1 MiB
// chunks, each full chunk is compressed and hashed once, and a flush only
// compresses and hashes the chunk still being filled. The lz4 frame it
// builds (independent 1 MiB blocks, no content checksum: the sha256 in the
// object's metadata covers the content) is one every lz4 reader decodes.
// Memory: the compressed full chunks plus two 1 MiB buffers, instead of
// the whole segment raw and compressed on every flush.
type partialEncoder struct {
	compression repository.Compression
	chunks      int    // full chunks encoded so far
	blocks      []byte // their encoded blocks, in order
	hashState   []byte // sha256 state after them
	chunk       []byte // read buffer
	dst         []byte // compression scratch
	body        []byte // the last frame built (reused)
	lz          lz4.Compressor
}

// chunkSize is lz4's 1 MiB block size, the repository's own.
const chunkSize = 1 << 20

// lz4FrameHeader and lz4EndMark frame the blocks as the lz4 package writes
// a frame with 1 MiB independent blocks and no checksums; taken from the
// package itself so the descriptor's checksum byte is right by construction.
var lz4FrameHeader, lz4EndMark = func() ([]byte, []byte) {
	var buf bytes.Buffer
	zw := lz4.NewWriter(&buf)
	if err := zw.Apply(lz4.BlockSizeOption(lz4.Block1Mb), lz4.ChecksumOption(false)); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	b := buf.Bytes()
	if len(b) != 11 {
		panic(fmt.Sprintf("lz4: an empty frame is %d bytes, want 11", len(b)))
	}
	return b[:7], b[7:]
}()

func newPartialEncoder(c repository.Compression) *partialEncoder {
	return &partialEncoder{compression: c, chunk: make([]byte, chunkSize), dst: make([]byte, lz4.CompressBlockBound(chunkSize))}
}

// reset forgets the previous segment.
func (e *partialEncoder) reset() {
	e.chunks, e.blocks, e.hashState = 0, e.blocks[:0], nil
}

// encode returns the stored form of the first n bytes of f and their
// sha256. The body is valid until the next call.
func (e *partialEncoder) encode(f io.ReaderAt, n int64) ([]byte, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if int64(e.chunks)*chunkSize > n {
		e.reset() // not a prefix of what was encoded: start over
	}
	h := sha256.New()
	if e.hashState != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(e.hashState); err != nil {
			return nil, sum, err
		}
	}
	for int64(e.chunks+1)*chunkSize <= n {
		if _, err := f.ReadAt(e.chunk, int64(e.chunks)*chunkSize); err != nil {
			return nil, sum, err
		}
		h.Write(e.chunk)
		e.blocks = e.appendBlock(e.blocks, e.chunk)
		e.chunks++
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return nil, sum, err
		}
		e.hashState = state
	}
	tail := e.chunk[:n-int64(e.chunks)*chunkSize]
	if len(tail) > 0 {
		if _, err := f.ReadAt(tail, int64(e.chunks)*chunkSize); err != nil {
			return nil, sum, err
		}
	}
	copy(sum[:], sumWith(h, tail))
	e.body = e.body[:0]
	if e.compression == repository.LZ4 {
		e.body = append(e.body, lz4FrameHeader...)
	}
	e.body = append(e.body, e.blocks...)
	if len(tail) > 0 {
		e.body = e.appendBlock(e.body, tail)
	}
	if e.compression == repository.LZ4 {
		e.body = append(e.body, lz4EndMark...)
	}
	return e.body, sum, nil
}

func sumWith(h hash.Hash, tail []byte) []byte {
	h.Write(tail)
	return h.Sum(nil)
}

// appendBlock appends src's encoded form: an lz4 block (stored raw when it
// does not shrink) or, without compression, src itself.
func (e *partialEncoder) appendBlock(out, src []byte) []byte {
	if e.compression != repository.LZ4 {
		return append(out, src...)
	}
	n, err := e.lz.CompressBlock(src, e.dst)
	if err != nil || n == 0 || n >= len(src) {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(src))|1<<31)
		return append(out, src...)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(n))
	return append(out, e.dst[:n]...)
}
