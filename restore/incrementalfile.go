package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// PostgreSQL 17's incremental backups send a relation segment that changed
// only in places as INCREMENTAL.<name>: a header, then the changed blocks.
// The header, in the server's byte order (little-endian on every platform
// walvault restores on), is
//
//	uint32 magic (0xd3ae1f0d)
//	uint32 number of blocks carried, n
//	uint32 truncation block length: the file had at least this many blocks
//	uint32 × n relative block numbers, in the order the blocks follow
//	zero padding up to a multiple of the block size, only when n > 0
//
// then n blocks of the block size. Applied to the file as the previous
// backup of the chain left it: blocks below the truncation length and not
// carried keep their content, the carried blocks replace theirs, the file
// is as long as the truncation length or the highest carried block, and
// anything past the truncation length that is not carried is zeros (the
// relation was truncated below it since the previous backup).

// incrementalMagic starts every INCREMENTAL.* file.
const incrementalMagic = 0xd3ae1f0d

// incrementalPrefix is the name prefix of an incremental file.
const incrementalPrefix = "INCREMENTAL."

// maxRelSegBlocks bounds the block numbers of one relation segment
// (PostgreSQL's largest RELSEG_SIZE, in blocks of its smallest size): a
// header beyond it is damage, and the bound keeps its block list small.
const maxRelSegBlocks = 1 << 31 / 1024

// IncrementalHeader is an INCREMENTAL file's header.
type IncrementalHeader struct {
	Blocks           []uint32 // relative block numbers, in the order the blocks follow
	TruncationLength uint32   // in blocks
	Size             int64    // bytes of the header, padding included
	blockSize        int64
}

// IncrementalTarget returns the name of the file an incremental file
// reconstructs ("base/5/INCREMENTAL.16384" → "base/5/16384") and whether
// name is one.
func IncrementalTarget(name string) (string, bool) {
	dir, file := path.Split(name)
	rest, ok := strings.CutPrefix(file, incrementalPrefix)
	if !ok || rest == "" {
		return name, false
	}
	return dir + rest, true
}

// ReadIncrementalHeader reads the header of an incremental file from r,
// padding included, for blocks of blockSize bytes; r is then at the first
// block.
func ReadIncrementalHeader(r io.Reader, blockSize int64) (IncrementalHeader, error) {
	var fixed [12]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return IncrementalHeader{}, fmt.Errorf("incremental file header: %w", unexpectedEOF(err))
	}
	if m := binary.LittleEndian.Uint32(fixed[0:]); m != incrementalMagic {
		return IncrementalHeader{}, fmt.Errorf("%w: incremental file starts with %#x, not PostgreSQL's magic number %#x", ErrCorrupt, m, uint32(incrementalMagic))
	}
	n := binary.LittleEndian.Uint32(fixed[4:])
	h := IncrementalHeader{TruncationLength: binary.LittleEndian.Uint32(fixed[8:]), blockSize: blockSize}
	if n > maxRelSegBlocks || h.TruncationLength > maxRelSegBlocks {
		return IncrementalHeader{}, fmt.Errorf("%w: incremental file header claims %d blocks and a truncation length of %d blocks, more than a relation segment holds", ErrCorrupt, n, h.TruncationLength)
	}
	list := make([]byte, 4*int(n))
	if _, err := io.ReadFull(r, list); err != nil {
		return IncrementalHeader{}, fmt.Errorf("incremental file block list: %w", unexpectedEOF(err))
	}
	h.Blocks = make([]uint32, n)
	seen := make(map[uint32]bool, n)
	for i := range h.Blocks {
		b := binary.LittleEndian.Uint32(list[4*i:])
		if b >= maxRelSegBlocks || seen[b] {
			return IncrementalHeader{}, fmt.Errorf("%w: incremental file lists block %d twice or beyond a relation segment", ErrCorrupt, b)
		}
		seen[b] = true
		h.Blocks[i] = b
	}
	h.Size = 12 + int64(len(list))
	if n > 0 && h.Size%blockSize != 0 {
		pad := blockSize - h.Size%blockSize
		if _, err := io.CopyN(io.Discard, r, pad); err != nil {
			return IncrementalHeader{}, fmt.Errorf("incremental file header padding: %w", unexpectedEOF(err))
		}
		h.Size += pad
	}
	return h, nil
}

// FileSize is the size of the incremental file itself: header and blocks.
func (h IncrementalHeader) FileSize() int64 { return h.Size + int64(len(h.Blocks))*h.blockSize }

// Length is the length in bytes of the file once the incremental is
// applied.
func (h IncrementalHeader) Length() int64 {
	blocks := int64(h.TruncationLength)
	for _, b := range h.Blocks {
		blocks = max(blocks, int64(b)+1)
	}
	return blocks * h.blockSize
}

// applyIncremental applies the blocks that follow h in r to f, the file as
// the chain's previous backup left it, using one block of memory.
//
// sum, when not nil, is f's length and CRC-32C if known; it is brought
// along to the result's, each replaced block read before it is written
// over. A file cut shorter loses its known CRC (the combined manifest then
// reads it back): the CRC of what remains is not derived here.
func applyIncremental(f *os.File, h IncrementalHeader, r io.Reader, sum *fileSum) error {
	// Cut to the truncation length first: what lay beyond it is gone
	// unless a carried block brings it back, and a gap reads as zeros.
	cut := int64(h.TruncationLength) * h.blockSize
	if err := f.Truncate(cut); err != nil {
		return err
	}
	var old []byte
	if sum != nil && sum.known {
		if cut < sum.size {
			*sum = fileSum{}
		} else {
			sum.crc, sum.size = crc32cExtend(sum.crc, cut-sum.size), cut
			old = make([]byte, h.blockSize)
		}
	}
	buf := make([]byte, h.blockSize)
	for _, b := range h.Blocks {
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("incremental file block %d: %w", b, unexpectedEOF(err))
		}
		off := int64(b) * h.blockSize
		if old != nil {
			if end := off + h.blockSize; end > sum.size {
				// The file grows to the block's end: zeros first, then
				// the block replaces its share of them.
				sum.crc, sum.size = crc32cExtend(sum.crc, end-sum.size), end
			}
			n, err := f.ReadAt(old, off)
			if err != nil && err != io.EOF {
				return err
			}
			clear(old[n:]) // beyond the end of the file: the zeros added above
			sum.crc = crc32cPatch(sum.crc, sum.size, off, h.blockSize, crc32cOf(old), crc32cOf(buf))
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
	}
	if old != nil && sum.size != h.Length() {
		*sum = fileSum{} // cannot happen: the blocks and the cut make the length
	}
	return f.Truncate(h.Length())
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrCorrupt, io.ErrUnexpectedEOF)
	}
	return err
}
