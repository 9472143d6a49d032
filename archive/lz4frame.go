package archive

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"math/bits"
	"runtime"
	"sync"

	"github.com/pierrec/lz4/v4"

	"github.com/walvault/walvault/internal/membuf"
)

// wal-push writes lz4 frames in the format repository.LZ4.NewWriter writes,
// so every reader of the repository (walvault, `lz4 -d`, `lz4 -t`) decodes
// them: frame format version 1, independent blocks of at most 1 MiB, no
// block checksums, and an xxh32 content checksum. They are built here, block
// by block, rather than by the lz4 package's Writer, because one push must
// hash and compress 16 MiB on two cores about as fast as a C `lz4 -1` does
// on one: each block is read once into a buffer that the compressors (in
// parallel) and the sha256 the upload's metadata needs (in order) both read,
// with no copy per consumer; and blocks are compressed with the reference
// implementation's fast algorithm (what `lz4 -1` runs), about a third
// faster on WAL than the Writer's default for about 3% more output.
const (
	frameMagic = 0x184D2204
	frameFLG   = 0x60 // version 01, independent blocks
	// flagContentChecksum: the frame ends with the xxh32 of its content.
	flagContentChecksum = 0x04
	frameBD             = 0x60 // block maximum size: 1 MiB
	frameBlockSize      = 1 << 20
	// uncompressedBit marks a block stored as it is (lz4 could not shrink it).
	uncompressedBit = 1 << 31
)

// LZ4BlockSize is the largest block of the repository's lz4 frames.
const LZ4BlockSize = frameBlockSize

// AppendLZ4FrameHeader appends the header of an lz4 frame in the
// repository's format, with or without a content checksum at its end.
func AppendLZ4FrameHeader(dst []byte, contentChecksum bool) []byte {
	flg := byte(frameFLG)
	if contentChecksum {
		flg |= flagContentChecksum
	}
	dst = binary.LittleEndian.AppendUint32(dst, frameMagic)
	return append(dst, flg, frameBD, byte(xxh32([]byte{flg, frameBD})>>8))
}

// AppendLZ4FrameEnd appends the end mark of a frame without a content
// checksum.
func AppendLZ4FrameEnd(dst []byte) []byte {
	return binary.LittleEndian.AppendUint32(dst, 0)
}

// CompressLZ4Block compresses src (at most LZ4BlockSize bytes) into dst
// (at least len(src) bytes) with the reference implementation's fast
// algorithm and returns the compressed size, or 0 when src does not shrink
// and is stored as it is. A destination the size of the block makes the
// compressor give up on data it cannot shrink, as the lz4 Writer does.
func CompressLZ4Block(c *lz4.CompressorCCompat, src, dst []byte) int {
	n, err := c.CompressBlock(src, dst[:len(src)])
	if err != nil || n >= len(src) {
		return 0
	}
	return n
}

// AppendLZ4BlockHeader appends a block's size field: n compressed bytes
// follow, or, when n is 0, rawLen bytes stored as they are.
func AppendLZ4BlockHeader(dst []byte, n, rawLen int) []byte {
	if n > 0 {
		return binary.LittleEndian.AppendUint32(dst, uint32(n))
	}
	return binary.LittleEndian.AppendUint32(dst, uint32(rawLen)|uncompressedBit)
}

// AppendLZ4Block appends one block of a frame: compressed[:n] when n > 0,
// else raw stored as it is.
func AppendLZ4Block(dst, raw, compressed []byte, n int) []byte {
	dst = AppendLZ4BlockHeader(dst, n, len(raw))
	if n > 0 {
		return append(dst, compressed[:n]...)
	}
	return append(dst, raw...)
}

// frameBlock is one block in flight: read, then hashed and compressed at
// once by different goroutines, then appended to the frame in order.
type frameBlock struct {
	raw  []byte // frameBlockSize capacity; data is raw[:n]
	data []byte
	out  []byte // frameBlockSize: compressed data that does not fit is stored raw
	n    int    // compressed size, 0: store raw
	wg   sync.WaitGroup
}

var blockPool = sync.Pool{New: func() any {
	return &frameBlock{raw: make([]byte, frameBlockSize), out: make([]byte, frameBlockSize)}
}}

// maxCompressors bounds the compressing goroutines of one encode, and so
// its memory on a machine with many cores.
const maxCompressors = 4

// encodeLZ4 reads r to EOF and returns its lz4 frame, and the sha256 and
// size of what it read. Memory: the frame, plus up to maxCompressors+2
// blocks in flight of 2 MiB each (8 MiB on two cores).
func encodeLZ4(r io.Reader) (*membuf.Buffer, []byte, int64, error) {
	workers := min(max(1, runtime.GOMAXPROCS(0)), maxCompressors)
	inFlight := workers + 2 // so reading stays ahead of both consumers

	sha := sha256.New()
	toHash := make(chan *frameBlock, inFlight)
	toCompress := make(chan *frameBlock, inFlight)
	var done sync.WaitGroup
	done.Add(1)
	go hashBlocks(sha, toHash, &done)
	for range workers {
		done.Add(1)
		go compressBlocks(toCompress, &done)
	}
	var queue []*frameBlock
	stop := func() {
		close(toHash)
		close(toCompress)
		done.Wait()
		for _, b := range queue {
			blockPool.Put(b)
		}
	}

	var out membuf.Buffer
	out.Write(AppendLZ4FrameHeader(nil, true))

	content := newXXH32()
	var size int64
	// emit appends the oldest block once both consumers are done with it.
	emit := func() {
		b := queue[0]
		queue = queue[1:]
		b.wg.Wait()
		var bh [4]byte
		out.Write(AppendLZ4BlockHeader(bh[:0], b.n, len(b.data)))
		if b.n > 0 {
			out.Write(b.out[:b.n])
		} else {
			out.Write(b.data)
		}
		blockPool.Put(b)
	}
	for eof := false; !eof; {
		if len(queue) == inFlight {
			emit()
		}
		b := blockPool.Get().(*frameBlock)
		n, err := io.ReadFull(r, b.raw)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			eof = true
		case err != nil:
			blockPool.Put(b)
			stop()
			return nil, nil, 0, err
		}
		if n == 0 {
			blockPool.Put(b)
			break
		}
		b.data = b.raw[:n]
		content.Write(b.data)
		size += int64(n)
		b.wg.Add(2)
		queue = append(queue, b)
		toHash <- b
		toCompress <- b
	}
	for len(queue) > 0 {
		emit()
	}
	stop()
	var tail [8]byte // end mark, then the content checksum
	binary.LittleEndian.PutUint32(tail[4:], content.Sum32())
	out.Write(tail[:])
	return &out, sha.Sum(nil), size, nil
}

// hashBlocks hashes blocks in the order they were read.
func hashBlocks(h hash.Hash, in <-chan *frameBlock, done *sync.WaitGroup) {
	defer done.Done()
	for b := range in {
		h.Write(b.data)
		b.wg.Done()
	}
}

// compressBlocks compresses blocks in any order.
func compressBlocks(in <-chan *frameBlock, done *sync.WaitGroup) {
	defer done.Done()
	var c lz4.CompressorCCompat
	for b := range in {
		b.n = CompressLZ4Block(&c, b.data, b.out)
		b.wg.Done()
	}
}

// xxh32 (seed 0) is the lz4 frame's checksum; the lz4 package keeps its own
// implementation internal.
const (
	prime32x1 uint32 = 2654435761
	prime32x2 uint32 = 2246822519
	prime32x3 uint32 = 3266489917
	prime32x4 uint32 = 668265263
	prime32x5 uint32 = 374761393
)

type xxh32State struct {
	v     [4]uint32
	total uint64
	buf   [16]byte
	nbuf  int
}

func newXXH32() *xxh32State {
	p1, p2 := prime32x1, prime32x2 // variables: the sums wrap, as they must
	return &xxh32State{v: [4]uint32{p1 + p2, p2, 0, -p1}}
}

func xxh32(p []byte) uint32 {
	x := newXXH32()
	x.Write(p)
	return x.Sum32()
}

func xxhRound(acc, in uint32) uint32 {
	return bits.RotateLeft32(acc+in*prime32x2, 13) * prime32x1
}

func (x *xxh32State) Write(p []byte) {
	x.total += uint64(len(p))
	if x.nbuf > 0 {
		k := copy(x.buf[x.nbuf:], p)
		x.nbuf += k
		p = p[k:]
		if x.nbuf < len(x.buf) {
			return
		}
		x.stripes(x.buf[:])
		x.nbuf = 0
	}
	whole := len(p) &^ 15
	x.stripes(p[:whole])
	x.nbuf = copy(x.buf[:], p[whole:])
}

func (x *xxh32State) stripes(p []byte) {
	v1, v2, v3, v4 := x.v[0], x.v[1], x.v[2], x.v[3]
	for ; len(p) >= 16; p = p[16:] {
		v1 = xxhRound(v1, binary.LittleEndian.Uint32(p[0:]))
		v2 = xxhRound(v2, binary.LittleEndian.Uint32(p[4:]))
		v3 = xxhRound(v3, binary.LittleEndian.Uint32(p[8:]))
		v4 = xxhRound(v4, binary.LittleEndian.Uint32(p[12:]))
	}
	x.v = [4]uint32{v1, v2, v3, v4}
}

func (x *xxh32State) Sum32() uint32 {
	var h uint32
	if x.total >= 16 {
		h = bits.RotateLeft32(x.v[0], 1) + bits.RotateLeft32(x.v[1], 7) + bits.RotateLeft32(x.v[2], 12) + bits.RotateLeft32(x.v[3], 18)
	} else {
		h = prime32x5 // seed 0
	}
	h += uint32(x.total)
	p := x.buf[:x.nbuf]
	for ; len(p) >= 4; p = p[4:] {
		h += binary.LittleEndian.Uint32(p) * prime32x3
		h = bits.RotateLeft32(h, 17) * prime32x4
	}
	for _, c := range p {
		h += uint32(c) * prime32x5
		h = bits.RotateLeft32(h, 11) * prime32x1
	}
	h ^= h >> 15
	h *= prime32x2
	h ^= h >> 13
	h *= prime32x3
	h ^= h >> 16
	return h
}
