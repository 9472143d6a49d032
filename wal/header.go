package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// HeaderSize is the size of the long page header at the start of every WAL
// segment (PostgreSQL's SizeOfXLogLongPHD with 8-byte MAXALIGN): all that
// ReadHeader reads.
//
// Layout, from src/include/access/xlog_internal.h (XLogPageHeaderData,
// then XLogLongPageHeaderData), identical in PostgreSQL 15 to 18:
//
//	offset size field
//	     0    2 xlp_magic        page magic, one value per major version
//	     2    2 xlp_info         flag bits; XLP_LONG_HEADER on a segment's first page
//	     4    4 xlp_tli          timeline of the first record on the page
//	     8    8 xlp_pageaddr     LSN of the page's first byte
//	    16    4 xlp_rem_len      bytes left of a record continued from the previous page
//	    20    4 (padding to MAXALIGN 8: the short header is 24 bytes)
//	    24    8 xlp_sysid        system identifier from pg_control
//	    32    4 xlp_seg_size     segment size, a cross-check
//	    36    4 xlp_xlog_blcksz  WAL page size, a cross-check
const HeaderSize = 40

// xlp_info flags, PostgreSQL 15 to 18.
const (
	xlpLongHeader = 0x0002 // XLP_LONG_HEADER
	xlpAllFlags   = 0x000F // XLP_ALL_FLAGS
)

// pageMagic maps XLOG_PAGE_MAGIC to the PostgreSQL major version that
// writes it, or 0 for unknown magic. The values are those of each release
// (testdata/README.md says where each was checked); development versions
// use other values until their release candidate.
func pageMagic(magic uint16) int {
	switch magic {
	case 0xD110:
		return 15
	case 0xD113:
		return 16
	case 0xD116:
		return 17
	case 0xD118:
		return 18
	}
	return 0
}

const supportedMagic = "PostgreSQL 15 (0xD110), 16 (0xD113), 17 (0xD116) and 18 (0xD118)"

// Header is the long page header at the start of a WAL segment.
type Header struct {
	Magic       uint16     // xlp_magic
	PGMajor     int        // PostgreSQL major version writing Magic; 0 if unknown
	Info        uint16     // xlp_info flag bits
	Timeline    TimelineID // xlp_tli: timeline of the page's first record, may be older than the file's
	PageAddr    LSN        // xlp_pageaddr: LSN of the segment's first byte
	RemLen      uint32     // xlp_rem_len
	SystemID    uint64     // xlp_sysid: the cluster's system identifier
	SegmentSize uint32     // xlp_seg_size
	BlockSize   uint32     // xlp_xlog_blcksz: WAL page size
}

// ReadHeader reads the first HeaderSize bytes of a WAL segment from r and
// decodes them. It reads nothing more: to pass the whole segment on,
// re-join the stream with io.MultiReader.
//
// PostgreSQL writes WAL in the server's byte order. ReadHeader decodes
// little-endian (x86-64, arm64); a header whose page magic is a known one
// byte-swapped is refused as a big-endian segment. Other unknown magic is
// decoded (PGMajor 0) and left for Check to report. A stream shorter than
// HeaderSize is an error wrapping both ErrInvalidHeader and
// io.ErrUnexpectedEOF.
func ReadHeader(r io.Reader) (Header, error) {
	var b [HeaderSize]byte
	n, err := io.ReadFull(r, b[:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, &headerError{
				msg: fmt.Sprintf("WAL segment header: file too short: got %d of %d bytes", n, HeaderSize),
				err: io.ErrUnexpectedEOF,
			}
		}
		return Header{}, fmt.Errorf("read WAL segment header: %w", err)
	}
	magic := binary.LittleEndian.Uint16(b[0:2])
	if pageMagic(magic) == 0 {
		if v := pageMagic(bits.ReverseBytes16(magic)); v != 0 {
			return Header{}, headerErrorf("WAL segment header: big-endian segment not supported: "+
				"page magic reads 0x%04X, which is PostgreSQL %d's 0x%04X byte-swapped; walvault reads little-endian WAL only",
				magic, v, bits.ReverseBytes16(magic))
		}
	}
	return Header{
		Magic:       magic,
		PGMajor:     pageMagic(magic),
		Info:        binary.LittleEndian.Uint16(b[2:4]),
		Timeline:    TimelineID(binary.LittleEndian.Uint32(b[4:8])),
		PageAddr:    LSN(binary.LittleEndian.Uint64(b[8:16])),
		RemLen:      binary.LittleEndian.Uint32(b[16:20]),
		SystemID:    binary.LittleEndian.Uint64(b[24:32]),
		SegmentSize: binary.LittleEndian.Uint32(b[32:36]),
		BlockSize:   binary.LittleEndian.Uint32(b[36:40]),
	}, nil
}

// MarshalBinary encodes h as the HeaderSize bytes ReadHeader decodes
// (little-endian, padding zero), for tests and tools that build segments.
// PGMajor is not encoded: it follows from Magic.
func (h Header) MarshalBinary() ([]byte, error) {
	b := make([]byte, HeaderSize)
	binary.LittleEndian.PutUint16(b[0:2], h.Magic)
	binary.LittleEndian.PutUint16(b[2:4], h.Info)
	binary.LittleEndian.PutUint32(b[4:8], uint32(h.Timeline))
	binary.LittleEndian.PutUint64(b[8:16], uint64(h.PageAddr))
	binary.LittleEndian.PutUint32(b[16:20], h.RemLen)
	binary.LittleEndian.PutUint64(b[24:32], h.SystemID)
	binary.LittleEndian.PutUint32(b[32:36], h.SegmentSize)
	binary.LittleEndian.PutUint32(b[36:40], h.BlockSize)
	return b, nil
}

// Check reports whether h can be the header of the segment called name
// (a .partial file follows the same rules as its segment). It checks, in
// order: the page magic is one of a supported PostgreSQL version, the
// first page carries a long header and no unknown flag, the segment and
// block sizes are valid and name fits the segment size, the header's
// timeline is not newer than the name's, and the page address is where the
// name says the segment starts.
//
// The header's timeline may be older than the name's: xlp_tli is the
// timeline of the first record on the page, and the first segment of a new
// timeline begins with a copy of its parent's WAL (PostgreSQL 15 writes
// timeline 1 in the header of 000000020000000000000004 when timeline 2
// starts in segment 4; testdata/segments/ok holds one).
//
// The system identifier is not checked here: compare h.SystemID with the
// repository's. Errors wrap ErrInvalidHeader and say what the header holds
// and what the name implies.
func (h Header) Check(name Segment) error {
	major := pageMagic(h.Magic)
	switch {
	case major == 0 && pageMagic(bits.ReverseBytes16(h.Magic)) != 0:
		return headerErrorf("segment %s: big-endian segment not supported (page magic 0x%04X is byte-swapped)", name, h.Magic)
	case major == 0:
		return headerErrorf("segment %s: unknown WAL page magic 0x%04X: walvault supports %s", name, h.Magic, supportedMagic)
	case h.Info&xlpLongHeader == 0:
		return headerErrorf("segment %s: first page has no long header (xlp_info 0x%04X lacks XLP_LONG_HEADER 0x%04X): not the start of a WAL segment",
			name, h.Info, xlpLongHeader)
	case h.Info&^xlpAllFlags != 0:
		return headerErrorf("segment %s: invalid xlp_info bits 0x%04X (PostgreSQL %d defines 0x%04X)", name, h.Info&^xlpAllFlags, major, xlpAllFlags)
	}
	if ValidateSegmentSize(h.SegmentSize) != nil {
		return headerErrorf("segment %s: header segment size %d is invalid: want a power of two between 1 MiB and 1 GiB", name, h.SegmentSize)
	}
	if h.BlockSize < 1<<10 || h.BlockSize > 64<<10 || h.BlockSize&(h.BlockSize-1) != 0 {
		return headerErrorf("segment %s: header block size %d is invalid: want a power of two between 1 KiB and 64 KiB", name, h.BlockSize)
	}
	if per := segmentsPerLog(h.SegmentSize); name.Seg >= per {
		return headerErrorf("segment %s: segment number %08X is out of range for the header's segment size %s (the last in each log is %08X)",
			name, name.Seg, formatSize(h.SegmentSize), per-1)
	}
	switch {
	case name.Timeline == 0:
		return headerErrorf("segment %s: file name timeline 0 is not valid", name)
	case h.Timeline == 0:
		return headerErrorf("segment %s: header timeline 0 is not valid", name)
	case h.Timeline > name.Timeline:
		return headerErrorf("segment %s: header timeline %d, file name says %d (the header may name an older timeline, never a newer one)",
			name, h.Timeline, name.Timeline)
	}
	want, _ := name.StartLSN(h.SegmentSize) // size, timeline and number checked above
	if h.PageAddr != want {
		return headerErrorf("segment %s: header page address %s, file name says %s", name, h.PageAddr, want)
	}
	return nil
}

// ReadHeaderOf reads the long header at the start of r, the segment called
// name, and checks it against the name (Check): ReadHeader's and Check's
// errors, as they are.
func ReadHeaderOf(r io.Reader, name Segment) (Header, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return Header{}, err
	}
	if err := h.Check(name); err != nil {
		return Header{}, err
	}
	return h, nil
}
