package waltest

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/walvault/walvault/wal"
)

// Record is one WAL record for a Writer: its header fields and the bytes
// after its 24-byte header (block headers, main data header, data).
type Record struct {
	XID  uint32
	Info uint8 // xl_info
	RMID uint8 // xl_rmid
	Body []byte
}

// withMainData returns the bytes after a record header that carry data
// as main data: the short main data header (255, length) below 256
// bytes, else the long one (254, four-byte length), as PostgreSQL writes
// them.
func withMainData(data []byte) []byte {
	if len(data) < 256 {
		return append([]byte{255, byte(len(data))}, data...)
	}
	b := make([]byte, 5, 5+len(data))
	b[0] = 254
	binary.LittleEndian.PutUint32(b[1:], uint32(len(data)))
	return append(b, data...)
}

// TablespaceCreate is the record CREATE TABLESPACE writes (resource
// manager 5, XLOG_TBLSPC_CREATE): the OID, then the location and its NUL.
func TablespaceCreate(oid uint32, location string) Record {
	data := binary.LittleEndian.AppendUint32(nil, oid)
	data = append(append(data, location...), 0)
	return Record{Info: wal.TablespaceCreate, RMID: 5, Body: withMainData(data)}
}

// TablespaceDrop is the record DROP TABLESPACE writes (XLOG_TBLSPC_DROP).
func TablespaceDrop(oid uint32) Record {
	return Record{Info: wal.TablespaceDrop, RMID: 5, Body: withMainData(binary.LittleEndian.AppendUint32(nil, oid))}
}

// Switch is an XLOG_SWITCH record (pg_switch_wal()): nothing after it in
// its segment is read.
func Switch() Record { return Record{RMID: 0, Info: 0x40} }

// Noop is an XLOG_NOOP record whose xl_tot_len is size (24, or 26 and
// more): filler that PostgreSQL's reader accepts and its redo ignores.
func Noop(t testing.TB, size int) Record {
	t.Helper()
	const header, short, long = 24, 2, 5
	r := Record{RMID: 0, Info: 0x20}
	switch {
	case size == header:
	case size >= header+short && size-header-short < 256:
		r.Body = withMainData(make([]byte, size-header-short))
	case size >= header+long+256:
		r.Body = withMainData(make([]byte, size-header-long))
	case size > header+short:
		// 282 to 284: too long for the short header, too short for the
		// long one as PostgreSQL chooses it; the reader takes either.
		b := make([]byte, 5, size-header)
		b[0] = 254
		binary.LittleEndian.PutUint32(b[1:], uint32(size-header-long))
		r.Body = append(b, make([]byte, size-header-long)...)
	default:
		t.Fatalf("waltest: no record is %d bytes long", size)
	}
	return r
}

// Writer lays records out in WAL segments of a cluster as PostgreSQL
// writes them: on 8-byte boundaries, across pages (8 KiB, each with its
// header, the continuation flag and length set) and segments, each record
// with its xl_prev and CRC. Pages it never reaches stay zero.
type Writer struct {
	t        testing.TB
	c        Cluster
	first    wal.Segment
	start    wal.LSN
	pageSize uint32
	buf      []byte  // the WAL from start
	pos      wal.LSN // where the next record goes
	prev     wal.LSN
}

// NewWriter starts writing WAL at the start of segment first.
func (c Cluster) NewWriter(t testing.TB, first wal.Segment) *Writer {
	t.Helper()
	start, err := first.StartLSN(c.SegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	return &Writer{t: t, c: c, first: first, start: start, pageSize: 8192, pos: start}
}

// Pos is where the next record goes (before the page header, when that
// is at a page's start).
func (w *Writer) Pos() wal.LSN { return w.pos }

// Add writes r at the insert position and returns the LSN it starts at.
func (w *Writer) Add(r Record) wal.LSN {
	w.t.Helper()
	rec := make([]byte, 24, 24+len(r.Body))
	binary.LittleEndian.PutUint32(rec[0:], uint32(24+len(r.Body)))
	binary.LittleEndian.PutUint32(rec[4:], r.XID)
	binary.LittleEndian.PutUint64(rec[8:], uint64(w.prev))
	rec[16], rec[17] = r.Info, r.RMID
	rec = append(rec, r.Body...)
	crc := crc32.Update(0, castagnoli, rec[24:])
	binary.LittleEndian.PutUint32(rec[20:], crc32.Update(crc, castagnoli, rec[:20]))
	return w.AddRaw(rec)
}

// AddRaw writes rec, a whole record with its header as given (xl_prev and
// CRC included, right or not), and returns the LSN it starts at.
func (w *Writer) AddRaw(rec []byte) wal.LSN {
	w.t.Helper()
	w.pos = (w.pos + 7) &^ 7
	if w.pageOffset() == 0 {
		w.pageHeader(0)
	}
	at := w.pos
	for rest := rec; len(rest) > 0; {
		if w.pageOffset() == 0 {
			w.pageHeader(uint32(len(rest)))
		}
		n := min(len(rest), int(w.pageSize-w.pageOffset()))
		copy(w.bytes(w.pos, n), rest[:n])
		w.pos += wal.LSN(n)
		rest = rest[n:]
	}
	w.prev = at
	if len(rec) >= 18 && rec[17] == 0 && rec[16]&0xF0 == 0x40 { // a switch: the segment is done
		seg := wal.LSN(w.c.SegmentSize)
		w.pos = (w.pos + seg - 1) / seg * seg
	}
	return at
}

// FillTo adds a Noop record so that the next record starts at lsn (on an
// 8-byte boundary, and not in a page header), and returns where it starts
// (0: no room was left to fill). The gap must be 0 or hold at least 24
// bytes.
func (w *Writer) FillTo(lsn wal.LSN) wal.LSN {
	w.t.Helper()
	w.pos = (w.pos + 7) &^ 7
	if lsn%8 != 0 || lsn < w.pos {
		w.t.Fatalf("waltest: cannot fill from %s to %s", w.pos, lsn)
	}
	// The bytes from pos to lsn that are not page headers.
	var room uint64
	for p := w.pos; p < lsn; {
		off := uint32(uint64(p) % uint64(w.pageSize))
		if off == 0 {
			p += wal.LSN(w.headerSize(p))
			continue
		}
		pageEnd := p + wal.LSN(w.pageSize-off)
		room += uint64(min(pageEnd, lsn) - p)
		p = pageEnd
	}
	if room == 0 {
		return 0
	}
	at := w.Add(Noop(w.t, int(room)))
	if got := w.pos; got != lsn && !(uint64(got)%uint64(w.pageSize) == 0 && got+wal.LSN(w.headerSize(got)) == lsn) {
		w.t.Fatalf("waltest: filled to %s, want %s", got, lsn)
	}
	return at
}

// Segments returns the segments written so far, from the first one to the
// one the last record ends in, and their names.
func (w *Writer) Segments() ([]wal.Segment, [][]byte) {
	w.t.Helper()
	var names []wal.Segment
	var segs [][]byte
	s := w.first
	for off := 0; off < len(w.buf); off += int(w.c.SegmentSize) {
		names = append(names, s)
		segs = append(segs, w.buf[off:off+int(w.c.SegmentSize)])
		next, err := s.Next(w.c.SegmentSize)
		if err != nil {
			w.t.Fatal(err)
		}
		s = next
	}
	return names, segs
}

// PageSize is the WAL page size the Writer uses.
func (w *Writer) PageSize() uint32 { return w.pageSize }

func (w *Writer) pageOffset() uint32 { return uint32(uint64(w.pos) % uint64(w.pageSize)) }

func (w *Writer) headerSize(at wal.LSN) uint32 {
	if uint64(at)%uint64(w.c.SegmentSize) == 0 {
		return wal.HeaderSize
	}
	return 24
}

// pageHeader writes the header of the page starting at pos and moves pos
// past it; rem > 0 marks the page as continuing a record that lacks rem
// bytes.
func (w *Writer) pageHeader(rem uint32) {
	h := wal.Header{Magic: 0xD110, Timeline: w.first.Timeline, PageAddr: w.pos, RemLen: rem, SystemID: w.c.SystemID, SegmentSize: w.c.SegmentSize, BlockSize: w.pageSize}
	if rem > 0 {
		h.Info |= 0x0001 // XLP_FIRST_IS_CONTRECORD
	}
	size := w.headerSize(w.pos)
	if size == wal.HeaderSize {
		h.Info |= 0x0002 // XLP_LONG_HEADER
	}
	b, err := h.MarshalBinary()
	if err != nil {
		w.t.Fatal(err)
	}
	copy(w.bytes(w.pos, int(size)), b[:size])
	w.pos += wal.LSN(size)
}

// bytes returns the n bytes of WAL at lsn, growing the buffer by whole
// segments.
func (w *Writer) bytes(lsn wal.LSN, n int) []byte {
	off := int(lsn - w.start)
	for off+n > len(w.buf) {
		w.buf = append(w.buf, make([]byte, w.c.SegmentSize)...)
	}
	return w.buf[off : off+n]
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
