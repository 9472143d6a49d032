package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// This file walks the records of one WAL segment for the one question a
// restore drill has to ask before PostgreSQL replays it (see
// restore.DrillGuard): does it create or drop a tablespace, and where?
// Replaying such a record makes the server write outside its data
// directory, at the absolute path the record holds.
//
// The format, PostgreSQL 15 to 18 (src/include/access/xlog_internal.h,
// xlogrecord.h, rmgrlist.h and commands/tablespace.h):
//
//   - A segment is a run of pages of xlp_xlog_blcksz bytes. The first page
//     starts with the long header (HeaderSize, 40 bytes), every other one
//     with the short one (24 bytes: magic, xlp_info, xlp_tli,
//     xlp_pageaddr, xlp_rem_len, padding). A page whose xlp_info has
//     XLP_FIRST_IS_CONTRECORD begins with the xlp_rem_len bytes still
//     missing of a record begun on an earlier page (or an earlier
//     segment); where they end, the next record begins, MAXALIGNed to 8.
//   - A record starts on an 8-byte boundary with its 24-byte header:
//     xl_tot_len (uint32, the whole record), xl_xid, xl_prev (uint64, the
//     previous record's start), xl_info (uint8), xl_rmid (uint8), 2
//     padding bytes, xl_crc (CRC-32C of the bytes after the header, then
//     of the header's first 20). It may continue on the following pages
//     (past their headers), even its header; its first 8 bytes are always
//     on its first page.
//   - After the header come block headers (ids 0 to 32), an origin (253)
//     or top-level xid (252) header, and last the main data header: 255
//     and a one-byte length, or 254 and a four-byte one. Then the block
//     data, then the main data, which ends the record.
//   - A tablespace record has xl_rmid 5 (RM_TBLSPC_ID) and no blocks.
//     xl_info & 0xF0 is XLOG_TBLSPC_CREATE (0x00), whose main data is
//     xl_tblspc_create_rec {Oid ts_id; char ts_path[]} (the location,
//     NUL-terminated; empty for an in-place tablespace), or
//     XLOG_TBLSPC_DROP (0x10), whose main data is {Oid ts_id}.
//   - An XLOG_SWITCH record (xl_rmid 0, xl_info 0x40) ends its segment:
//     what follows it there is never read.
//
// The scan reads what PostgreSQL's WAL reader would and stops where it
// would: at a page whose header is not this segment's (left over from an
// earlier use of a recycled file, or zeros), at a record whose length,
// xl_prev or CRC is wrong, at a continuation that does not fit. Those
// checks are PostgreSQL's, none stricter, so every record PostgreSQL could
// replay from the segment is seen.

// Record facts, PostgreSQL 15 to 18.
const (
	shortPageHeaderSize = 24 // SizeOfXLogShortPHD, MAXALIGNed
	recordHeaderSize    = 24 // SizeOfXLogRecord

	xlpFirstIsContRecord          = 0x0001 // XLP_FIRST_IS_CONTRECORD
	xlpFirstIsOverwriteContRecord = 0x0008 // XLP_FIRST_IS_OVERWRITE_CONTRECORD

	rmgrXLOG       = 0    // RM_XLOG_ID
	rmgrTablespace = 5    // RM_TBLSPC_ID
	rmgrInfoMask   = 0xF0 // XLR_RMGR_INFO_MASK
	xlogSwitch     = 0x40 // XLOG_SWITCH

	// What a server writes first on a new timeline, at its switch point
	// (pg_control.h).
	xlogCheckpointShutdown  = 0x00 // XLOG_CHECKPOINT_SHUTDOWN: an end-of-recovery checkpoint
	xlogEndOfRecovery       = 0x90 // XLOG_END_OF_RECOVERY: a promotion
	xlogOverwriteContrecord = 0xD0 // XLOG_OVERWRITE_CONTRECORD: over a record cut at the end of WAL

	// maxRecordSize is the largest xl_tot_len PostgreSQL 15's reader
	// accepts (it refuses a record it cannot allocate, over 1 GiB - 1;
	// 16 and later stop at 1020 MiB). The scan takes the larger limit so
	// that it never stops before PostgreSQL would.
	maxRecordSize = 1<<30 - 1
	// maxTablespaceRecord bounds what is kept of a tablespace record:
	// PostgreSQL writes a location of at most MAXPGPATH (1024) bytes.
	maxTablespaceRecord = 64 << 10
)

// Operations of a tablespace record (xl_info & 0xF0).
const (
	TablespaceCreate = 0x00 // XLOG_TBLSPC_CREATE
	TablespaceDrop   = 0x10 // XLOG_TBLSPC_DROP
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// TablespaceRecord is a record of PostgreSQL's tablespace resource manager.
type TablespaceRecord struct {
	LSN LSN // where the record starts
	// Op is TablespaceCreate, TablespaceDrop, or another value, which
	// PostgreSQL does not define (its redo would stop with a PANIC).
	Op  uint8
	OID uint32 // ts_id: the tablespace's OID, its name in pg_tblspc
	// Path is a create's location, where the tablespace's files go
	// (pg_tblspc/OID becomes a link to it). "" makes an in-place
	// tablespace: a directory in pg_tblspc itself.
	Path string
}

func (r TablespaceRecord) String() string {
	switch r.Op {
	case TablespaceCreate:
		if r.Path == "" {
			return fmt.Sprintf("CREATE TABLESPACE %d in place (record at %s)", r.OID, r.LSN)
		}
		return fmt.Sprintf("CREATE TABLESPACE %d at %s (record at %s)", r.OID, r.Path, r.LSN)
	case TablespaceDrop:
		return fmt.Sprintf("DROP TABLESPACE %d (record at %s)", r.OID, r.LSN)
	}
	return fmt.Sprintf("tablespace record with unknown operation 0x%02X for tablespace %d (record at %s)", r.Op, r.OID, r.LSN)
}

// Carry is what the scan of one segment leaves for the scan of the next:
// where the last record began (the next one's xl_prev) and the record cut
// at the segment's end, if any, as far as it was read. It is small (a
// tablespace record's bytes at most) and its fields are exported so that
// a caller can store it between two processes.
type Carry struct {
	// End is where the scanned segment ended: the next one's start.
	End LSN
	// Prev is the start of the last record read whole, 0 if unknown.
	Prev LSN
	// The record cut at End; TotLen 0 when there is none.
	RecLSN LSN    // where it starts
	TotLen uint32 // its xl_tot_len
	Got    uint32 // how many of its bytes were read
	// Head is its header as far as read; for a tablespace record, every
	// byte read.
	Head []byte
	// CRC is the CRC-32C of the bytes read after its header.
	CRC uint32
}

// SegmentScan is what ScanSegment found in a segment.
type SegmentScan struct {
	Start LSN // the segment's first byte
	// End is where the WAL PostgreSQL reads from this segment ends: the
	// segment's end, or the first page or record it would refuse (Stop
	// says why).
	End  LSN
	Stop string
	// Switch: the segment ends with an XLOG_SWITCH record.
	Switch bool
	// Continued: the segment begins with the rest of a record whose start
	// the scan was not given (no Carry). That record is not read.
	Continued bool
	// Records counts the records completed in the segment (one begun in
	// an earlier segment included, one cut at its end not).
	Records int
	// Tablespace lists the tablespace records, in WAL order.
	Tablespace []TablespaceRecord
	// TimelineStarts lists where the records a server writes first on a
	// new timeline start (an end-of-recovery record, a shutdown
	// checkpoint, an overwrite of an aborted continuation record), in WAL
	// order: see TimelineStartsAt.
	TimelineStarts []LSN
	pageSize       uint32
	// Next is the Carry for the next segment's scan; nil when PostgreSQL
	// does not read on from this segment into the next (WAL ended in it)
	// or what crosses into it is not known.
	Next *Carry
}

// ScanSegment reads the WAL segment called name from r and reports its
// tablespace records. prev is the Carry of the previous segment's scan: it
// completes a record that began there and continues here. Without it
// (nil), such a record is skipped, and the segment's first record is
// checked as the first record of a recovery is: that is right only where
// PostgreSQL starts reading in this segment, at the backup's checkpoint,
// and never reads the skipped record's beginning.
//
// The segment's long header must pass Header.Check against name; errors
// wrap ErrInvalidHeader then. A record that passes PostgreSQL's checks but
// whose tablespace data cannot be decoded is an error wrapping
// ErrInvalidRecord. Only r's errors are returned as they are; a file that
// ends early ends the WAL there, as for PostgreSQL.
func ScanSegment(r io.Reader, name Segment, prev *Carry) (*SegmentScan, error) {
	h, err := ReadHeaderOf(r, name)
	if err != nil {
		return nil, err
	}
	s := &segmentScanner{
		magic:    h.Magic,
		pageSize: h.BlockSize,
		start:    h.PageAddr,
		segEnd:   h.PageAddr + LSN(h.SegmentSize),
	}
	s.out = &SegmentScan{Start: s.start, End: s.segEnd, pageSize: h.BlockSize}
	if prev == nil {
		s.skip = true
	} else {
		if prev.End != s.start {
			return nil, fmt.Errorf("scan segment %s: the carry given ends at %s, the segment starts at %s", name, prev.End, s.start)
		}
		s.prev = prev.Prev
		if prev.TotLen > 0 {
			s.cur = &partialRecord{lsn: prev.RecLSN, tot: prev.TotLen, got: prev.Got, crc: prev.CRC, head: bytes.Clone(prev.Head)}
			if err := s.cur.restored(); err != nil {
				return nil, fmt.Errorf("scan segment %s: %w", name, err)
			}
		}
	}
	hdr, _ := h.MarshalBinary()
	page := make([]byte, s.pageSize)
	copy(page, hdr)
	pages := h.SegmentSize / h.BlockSize
	for i := uint32(0); i < pages && !s.done; i++ {
		buf := page
		if i == 0 {
			buf = page[HeaderSize:]
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				s.end(s.start+LSN(i)*LSN(s.pageSize), "the file ends before the segment does")
				break
			}
			return nil, fmt.Errorf("read WAL segment %s: %w", name, err)
		}
		s.page(i, page, h)
	}
	if s.err != nil {
		return nil, s.err
	}
	if !s.done {
		s.out.End = s.segEnd
		if !s.skip {
			next := &Carry{End: s.segEnd, Prev: s.prev}
			if c := s.cur; c != nil {
				next.RecLSN, next.TotLen, next.Got, next.Head, next.CRC = c.lsn, c.tot, c.got, c.head, c.crc
			}
			s.out.Next = next
		}
	}
	return s.out, nil
}

// partialRecord is a record being read, possibly across pages and
// segments.
type partialRecord struct {
	lsn LSN
	tot uint32
	got uint32
	// head is the header as far as read, then, when whole, every byte.
	head  []byte
	whole bool   // a tablespace record: every byte is kept
	big   bool   // a tablespace record too large to keep
	crc   uint32 // CRC-32C of the bytes after the header so far
}

// restored sets whole and big for a record taken from a Carry, and checks
// that the Carry is consistent.
func (c *partialRecord) restored() error {
	if c.tot < recordHeaderSize || c.got == 0 || c.got >= c.tot || uint32(len(c.head)) > c.got || len(c.head) < int(min(c.got, recordHeaderSize)) {
		return fmt.Errorf("the carried record at %s is inconsistent (%d of %d bytes, %d kept)", c.lsn, c.got, c.tot, len(c.head))
	}
	if len(c.head) >= recordHeaderSize {
		c.markKind()
		if c.whole && uint32(len(c.head)) != c.got {
			return fmt.Errorf("the carried tablespace record at %s keeps %d of the %d bytes read", c.lsn, len(c.head), c.got)
		}
	}
	return nil
}

// markKind decides, once the header is complete, whether to keep the
// record's bytes.
func (c *partialRecord) markKind() {
	if c.head[17] == rmgrTablespace {
		c.big = c.tot > maxTablespaceRecord
		c.whole = !c.big
	}
}

type segmentScanner struct {
	magic    uint16
	pageSize uint32
	start    LSN
	segEnd   LSN
	prev     LSN            // the last complete record's start; 0: unknown
	cur      *partialRecord // the record being read
	// skip: the next page's continuation belongs to a record whose start
	// is unknown (no Carry); it is passed over.
	skip bool
	done bool
	err  error
	out  *SegmentScan
}

// end stops the scan: PostgreSQL's WAL ends at at.
func (s *segmentScanner) end(at LSN, reason string) {
	s.done = true
	s.out.End, s.out.Stop, s.out.Next = at, reason, nil
}

// page reads page i of the segment (p holds it whole; the first page's
// long header is h).
func (s *segmentScanner) page(i uint32, p []byte, h Header) {
	addr := s.start + LSN(i)*LSN(s.pageSize)
	info, rem, hdrLen := h.Info, h.RemLen, uint32(HeaderSize)
	if i > 0 {
		magic := binary.LittleEndian.Uint16(p[0:])
		info = binary.LittleEndian.Uint16(p[2:])
		pageAddr := LSN(binary.LittleEndian.Uint64(p[8:]))
		rem = binary.LittleEndian.Uint32(p[16:])
		// WAL ends at the page, or at the start of the record it cuts.
		at := addr
		if s.cur != nil {
			at = s.cur.lsn
		}
		switch {
		case magic != s.magic:
			s.end(at, fmt.Sprintf("the page at %s has magic 0x%04X, not the segment's 0x%04X (an unused page)", addr, magic, s.magic))
			return
		case pageAddr != addr:
			s.end(at, fmt.Sprintf("the page at %s says it is at %s (left from an earlier use of the file)", addr, pageAddr))
			return
		case info&^xlpAllFlags != 0:
			s.end(at, fmt.Sprintf("the page at %s has invalid xlp_info 0x%04X", addr, info))
			return
		}
		hdrLen = shortPageHeaderSize
		if info&xlpLongHeader != 0 { // as PostgreSQL sizes a page's header
			hdrLen = HeaderSize
		}
	}
	pos := hdrLen
	room := s.pageSize - pos
	switch {
	case s.cur != nil || s.skip:
		if info&xlpFirstIsContRecord == 0 {
			if s.cur != nil && info&xlpFirstIsOverwriteContRecord == 0 {
				s.end(s.cur.lsn, fmt.Sprintf("the record at %s continues onto the page at %s, which does not continue it", s.cur.lsn, addr))
				return
			}
			// The record was abandoned where a crash cut it (its
			// successor overwrote the rest), or its start is unknown:
			// either way reading goes on with this page's first record.
			s.cur, s.skip = nil, false
			break
		}
		if s.cur != nil && rem != s.cur.tot-s.cur.got {
			s.end(s.cur.lsn, fmt.Sprintf("the page at %s continues the record at %s with %d bytes, the record lacks %d", addr, s.cur.lsn, rem, s.cur.tot-s.cur.got))
			return
		}
		n := min(rem, room)
		if s.cur != nil {
			if !s.feed(p[pos : pos+n]) {
				return
			}
		} else if i == 0 {
			s.out.Continued = true
		}
		if rem > n {
			return // it goes on past this page
		}
		if s.cur != nil {
			if s.complete(); s.done {
				return
			}
		}
		s.skip = false
		pos = align8(pos + n)
	case info&xlpFirstIsContRecord != 0:
		s.end(addr+LSN(pos), fmt.Sprintf("the page at %s continues a record, but none was begun before it", addr))
		return
	}
	for pos < s.pageSize {
		lsn := addr + LSN(pos)
		tot := binary.LittleEndian.Uint32(p[pos:])
		switch {
		case tot == 0:
			s.end(lsn, fmt.Sprintf("no record at %s (zeros)", lsn))
			return
		case tot < recordHeaderSize || tot > maxRecordSize:
			s.end(lsn, fmt.Sprintf("invalid record length %d at %s", tot, lsn))
			return
		}
		s.cur = &partialRecord{lsn: lsn, tot: tot}
		n := min(tot, s.pageSize-pos)
		if !s.feed(p[pos : pos+n]) {
			return
		}
		if n < tot {
			return // it goes on on the next page
		}
		if s.complete(); s.done {
			return
		}
		pos = align8(pos + n)
	}
}

// feed adds b, the next bytes of the current record. It returns false when
// the record's header turned out invalid (the scan ended).
func (s *segmentScanner) feed(b []byte) bool {
	c := s.cur
	if c.got < recordHeaderSize {
		k := min(uint32(len(b)), recordHeaderSize-c.got)
		c.head = append(c.head, b[:k]...)
		c.got += k
		b = b[k:]
		if c.got == recordHeaderSize {
			if !s.checkHeader() {
				return false
			}
			c.markKind()
		}
	}
	if len(b) > 0 {
		c.crc = crc32.Update(c.crc, castagnoli, b)
		if c.whole {
			c.head = append(c.head, b...)
		}
		c.got += uint32(len(b))
	}
	return true
}

// checkHeader checks the current record's xl_prev as PostgreSQL does: the
// previous record's start when that is known, else only that it lies
// before the record.
func (s *segmentScanner) checkHeader() bool {
	c := s.cur
	prev := LSN(binary.LittleEndian.Uint64(c.head[8:]))
	switch {
	case s.prev != 0 && prev != s.prev:
		s.end(c.lsn, fmt.Sprintf("the record at %s has xl_prev %s, the previous record is at %s", c.lsn, prev, s.prev))
		return false
	case s.prev == 0 && prev >= c.lsn:
		s.end(c.lsn, fmt.Sprintf("the record at %s has xl_prev %s, not before it", c.lsn, prev))
		return false
	}
	return true
}

// complete finishes the current record, read whole: its CRC, then what it
// is.
func (s *segmentScanner) complete() {
	c := s.cur
	s.cur = nil
	if got, want := crc32.Update(c.crc, castagnoli, c.head[:20]), binary.LittleEndian.Uint32(c.head[20:]); got != want {
		s.end(c.lsn, fmt.Sprintf("the record at %s fails its CRC", c.lsn))
		return
	}
	s.out.Records++
	s.prev = c.lsn
	info, rmid := c.head[16], c.head[17]
	switch {
	case rmid == rmgrXLOG && info&rmgrInfoMask == xlogSwitch:
		// Nothing after a switch is read: the next record is the next
		// segment's first.
		s.done = true
		s.out.Switch = true
		s.out.End = s.segEnd
		s.out.Next = &Carry{End: s.segEnd, Prev: c.lsn}
	case rmid == rmgrXLOG && (info&rmgrInfoMask == xlogEndOfRecovery || info&rmgrInfoMask == xlogCheckpointShutdown || info&rmgrInfoMask == xlogOverwriteContrecord):
		s.out.TimelineStarts = append(s.out.TimelineStarts, c.lsn)
	case rmid == rmgrTablespace:
		if c.big {
			s.fail(fmt.Errorf("%w: the tablespace record at %s is %d bytes long, more than PostgreSQL writes (a location is at most 1024 bytes)", ErrInvalidRecord, c.lsn, c.tot))
			return
		}
		rec, err := decodeTablespace(c.lsn, c.head)
		if err != nil {
			s.fail(err)
			return
		}
		s.out.Tablespace = append(s.out.Tablespace, rec)
	}
}

func (s *segmentScanner) fail(err error) {
	s.done = true
	s.err = err
}

func align8(n uint32) uint32 { return (n + 7) &^ 7 }

// decodeTablespace reads a tablespace record's main data.
func decodeTablespace(lsn LSN, rec []byte) (TablespaceRecord, error) {
	main, err := mainData(rec)
	if err != nil {
		return TablespaceRecord{}, fmt.Errorf("%w: the tablespace record at %s: %v", ErrInvalidRecord, lsn, err)
	}
	if len(main) < 4 {
		return TablespaceRecord{}, fmt.Errorf("%w: the tablespace record at %s has %d bytes of data, want at least the 4 of a tablespace OID", ErrInvalidRecord, lsn, len(main))
	}
	r := TablespaceRecord{LSN: lsn, Op: rec[16] & rmgrInfoMask, OID: binary.LittleEndian.Uint32(main)}
	if r.Op == TablespaceCreate {
		path := main[4:]
		if i := bytes.IndexByte(path, 0); i >= 0 {
			path = path[:i]
		}
		r.Path = string(path)
	}
	return r, nil
}

// mainData returns the main data of rec, a whole record, walking its
// block headers as PostgreSQL's DecodeXLogRecord does: headers until the
// bytes left are those the headers announced, the main data header last,
// the main data at the very end.
func mainData(rec []byte) ([]byte, error) {
	off, total := uint64(recordHeaderSize), uint64(0)
	var mainLen uint64
	need := func(n uint64) error {
		if off+n > uint64(len(rec)) {
			return fmt.Errorf("record header cut short at byte %d", off)
		}
		return nil
	}
loop:
	for uint64(len(rec))-off > total {
		id := rec[off]
		switch {
		case id == 255: // XLR_BLOCK_ID_DATA_SHORT
			if err := need(2); err != nil {
				return nil, err
			}
			mainLen = uint64(rec[off+1])
			off += 2
			break loop
		case id == 254: // XLR_BLOCK_ID_DATA_LONG
			if err := need(5); err != nil {
				return nil, err
			}
			mainLen = uint64(binary.LittleEndian.Uint32(rec[off+1:]))
			off += 5
			break loop
		case id == 253: // XLR_BLOCK_ID_ORIGIN: a RepOriginId
			off += 3
		case id == 252: // XLR_BLOCK_ID_TOPLEVEL_XID: a TransactionId
			off += 5
		case id <= 32: // a block reference (XLR_MAX_BLOCK_ID 32)
			if err := need(4); err != nil {
				return nil, err
			}
			flags := rec[off+1]
			total += uint64(binary.LittleEndian.Uint16(rec[off+2:]))
			off += 4
			if flags&0x10 != 0 { // BKPBLOCK_HAS_IMAGE: XLogRecordBlockImageHeader
				if err := need(5); err != nil {
					return nil, err
				}
				total += uint64(binary.LittleEndian.Uint16(rec[off:]))
				bimg := rec[off+4]
				off += 5
				// BKPIMAGE_HAS_HOLE on a compressed image (PGLZ, LZ4 or
				// ZSTD): an XLogRecordBlockCompressHeader follows.
				if bimg&0x01 != 0 && bimg&(0x04|0x08|0x10) != 0 {
					off += 2
				}
			}
			if flags&0x80 == 0 { // not BKPBLOCK_SAME_REL: a RelFileLocator
				off += 12
			}
			off += 4 // BlockNumber
		default:
			return nil, fmt.Errorf("invalid block id %d at byte %d", id, off)
		}
		if err := need(0); err != nil {
			return nil, err
		}
	}
	total += mainLen
	if uint64(len(rec))-off != total {
		return nil, fmt.Errorf("the record's headers announce %d bytes of data, %d follow them", total, uint64(len(rec))-off)
	}
	return rec[uint64(len(rec))-mainLen:], nil
}

// TimelineStartsAt says whether a record a server writes first on a new
// timeline starts at at, a timeline's switch point: there, or, for a
// switch point on a page boundary (the start of a segment after a WAL
// switch), just after the page's header.
func (s *SegmentScan) TimelineStartsAt(at LSN) bool {
	first := at
	switch {
	case at == s.Start:
		first += HeaderSize
	case s.pageSize > 0 && at > s.Start && uint64(at-s.Start)%uint64(s.pageSize) == 0:
		first += shortPageHeaderSize
	}
	return slices.Contains(s.TimelineStarts, at) || slices.Contains(s.TimelineStarts, first)
}
