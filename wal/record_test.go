package wal_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// testCluster is the cluster of the synthetic WAL: 1 MiB segments (128
// pages of 8 KiB) keep the tests fast.
var testCluster = waltest.Cluster{SystemID: 7300000000000000042, SegmentSize: wal.MinSegmentSize}

// scanChain scans segs in order, each with the Carry of the one before
// (the first with none), as wal-fetch hands them to a drill's server.
func scanChain(t *testing.T, names []wal.Segment, segs [][]byte) ([]wal.TablespaceRecord, []*wal.SegmentScan) {
	t.Helper()
	var recs []wal.TablespaceRecord
	var scans []*wal.SegmentScan
	var carry *wal.Carry
	for i, data := range segs {
		sc, err := wal.ScanSegment(bytes.NewReader(data), names[i], carry)
		if err != nil {
			t.Fatalf("scan %s: %v", names[i], err)
		}
		recs = append(recs, sc.Tablespace...)
		scans = append(scans, sc)
		carry = sc.Next
		if carry == nil {
			break
		}
	}
	return recs, scans
}

func records(scans []*wal.SegmentScan) int {
	n := 0
	for _, sc := range scans {
		n += sc.Records
	}
	return n
}

// waldump is what PostgreSQL 15's pg_waldump reads from WAL segments: its
// tablespace records and how many records it read before stopping.
type waldump struct {
	tablespace []wal.TablespaceRecord
	records    int
	stderr     string
}

var waldumpLine = regexp.MustCompile(`^rmgr: (\S+) .* lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: (.*)$`)
var tablespaceDesc = regexp.MustCompile(`^(CREATE|DROP) (\d+)(?: "(.*)")?$`)

// pgWaldump runs PostgreSQL 15's pg_waldump on segs: PostgreSQL's own
// reader, the reference the scanner must agree with.
func pgWaldump(t *testing.T, names []wal.Segment, segs [][]byte) waldump {
	t.Helper()
	dir := t.TempDir()
	for i, data := range segs {
		if err := os.WriteFile(filepath.Join(dir, names[i].String()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return pgWaldumpDir(t, dir, names[0].String(), names[len(segs)-1].String())
}

func pgWaldumpDir(t *testing.T, dir, first, last string) waldump {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(testenv.PGBinDir(t), "pg_waldump"), "-p", dir, first, last)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("pg_waldump: %v", err)
	}
	var d waldump
	d.stderr = stderr.String()
	for _, line := range strings.Split(stdout.String(), "\n") {
		m := waldumpLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d.records++
		if m[1] != "Tablespace" {
			continue
		}
		lsn, err := wal.ParseLSN(m[2])
		if err != nil {
			t.Fatal(err)
		}
		td := tablespaceDesc.FindStringSubmatch(m[3])
		if td == nil {
			t.Fatalf("pg_waldump: unexpected tablespace record: %s", line)
		}
		oid, _ := strconv.ParseUint(td[2], 10, 32)
		r := wal.TablespaceRecord{LSN: lsn, Op: wal.TablespaceCreate, OID: uint32(oid), Path: td[3]}
		if td[1] == "DROP" {
			r.Op = wal.TablespaceDrop
		}
		d.tablespace = append(d.tablespace, r)
	}
	return d
}

// sameAsWaldump fails unless the scan found what pg_waldump found: the
// same tablespace records, and as many records in all.
func sameAsWaldump(t *testing.T, d waldump, recs []wal.TablespaceRecord, scans []*wal.SegmentScan) {
	t.Helper()
	if fmt.Sprint(recs) != fmt.Sprint(d.tablespace) {
		t.Errorf("tablespace records:\n scan       %v\n pg_waldump %v", recs, d.tablespace)
	}
	if n := records(scans); n != d.records {
		t.Errorf("the scan read %d records, pg_waldump %d (%s)", n, d.records, strings.TrimSpace(d.stderr))
	}
}

// longPath is a tablespace location of n bytes.
func longPath(n int) string {
	p := "/srv/pg/tablespaces/"
	return p + strings.Repeat("x", n-len(p))
}

// TestScanSegmentPlacement puts a CREATE TABLESPACE record everywhere a
// record can be relative to page and segment boundaries: inside a page,
// its data across a page boundary, its header split by one (8 or 16 bytes
// on the first page), across a segment boundary the same ways, and
// spanning a whole page. The scan of the segments in order, each with the
// previous one's Carry, finds it and the DROP after it, as pg_waldump does.
func TestScanSegmentPlacement(t *testing.T) {
	const page = 8192
	seg := wal.LSN(testCluster.SegmentSize)
	first := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	start, _ := first.StartLSN(testCluster.SegmentSize)
	tests := []struct {
		name string
		at   wal.LSN // where the create record starts
		path int     // its location's length
	}{
		{"inside a page", start + 3*page + 512, 40},
		{"data across a page", start + 4*page - 64, 300},
		{"header split 8 bytes", start + 5*page - 8, 40},
		{"header split 16 bytes", start + 5*page - 16, 40},
		{"header whole, data on the next page", start + 6*page - 24, 40},
		{"long location across a page", start + 7*page - 600, 1000},
		{"data across a segment", start + seg - 64, 300},
		{"header across a segment (8 bytes)", start + seg - 8, 40},
		{"header across a segment (16 bytes)", start + seg - 16, 40},
		{"header whole, data in the next segment", start + seg - 24, 40},
		{"long location across a segment", start + seg - 504, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := testCluster.NewWriter(t, first)
			w.Add(waltest.Noop(t, 100))
			w.FillTo(tc.at)
			path := longPath(tc.path)
			if got := w.Add(waltest.TablespaceCreate(16390, path)); got != tc.at {
				t.Fatalf("the record went to %s, want %s", got, tc.at)
			}
			drop := w.Add(waltest.TablespaceDrop(16390))
			w.Add(waltest.Noop(t, 64))
			names, segs := w.Segments()
			recs, scans := scanChain(t, names, segs)
			want := []wal.TablespaceRecord{
				{LSN: tc.at, Op: wal.TablespaceCreate, OID: 16390, Path: path},
				{LSN: drop, Op: wal.TablespaceDrop, OID: 16390},
			}
			if fmt.Sprint(recs) != fmt.Sprint(want) {
				t.Errorf("found %v, want %v", recs, want)
			}
			sameAsWaldump(t, pgWaldump(t, names, segs), recs, scans)
		})
	}
}

// TestScanSegmentContinuedWithoutCarry scans a segment that begins with
// the rest of a tablespace record without the previous segment's Carry,
// as for the first segment a recovery reads: the record is not reported
// (its start is unknown), the segment says it was continued, and the
// records after it are read.
func TestScanSegmentContinuedWithoutCarry(t *testing.T) {
	first := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	start, _ := first.StartLSN(testCluster.SegmentSize)
	w := testCluster.NewWriter(t, first)
	w.FillTo(start + wal.LSN(testCluster.SegmentSize) - 64)
	w.Add(waltest.TablespaceCreate(16390, longPath(900)))
	drop := w.Add(waltest.TablespaceDrop(16391))
	names, segs := w.Segments()
	sc, err := wal.ScanSegment(bytes.NewReader(segs[1]), names[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []wal.TablespaceRecord{{LSN: drop, Op: wal.TablespaceDrop, OID: 16391}}
	if !sc.Continued || fmt.Sprint(sc.Tablespace) != fmt.Sprint(want) {
		t.Errorf("continued %v, found %v; want continued, %v", sc.Continued, sc.Tablespace, want)
	}
	// With the Carry, the create is there too.
	recs, _ := scanChain(t, names, segs)
	if len(recs) != 2 || recs[0].OID != 16390 {
		t.Errorf("with the carry: found %v", recs)
	}
}

// TestScanSegmentEnds damages WAL before a CREATE TABLESPACE record in
// the ways PostgreSQL's reader stops at: the scan stops at the same place,
// and so does not report the record, which PostgreSQL never replays
// either. pg_waldump reads as many records.
func TestScanSegmentEnds(t *testing.T) {
	const page = 8192
	first := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	start, _ := first.StartLSN(testCluster.SegmentSize)
	seg := wal.LSN(testCluster.SegmentSize)
	type layout struct {
		names []wal.Segment
		segs  [][]byte
		at    wal.LSN // the damaged spot
	}
	// build writes 50 records, then a create; damage changes the bytes.
	build := func(t *testing.T, at wal.LSN, damage func(l layout)) layout {
		w := testCluster.NewWriter(t, first)
		for range 50 {
			w.Add(waltest.Noop(t, 200))
		}
		w.FillTo(at)
		w.Add(waltest.Noop(t, 200))
		w.Add(waltest.TablespaceCreate(16390, "/srv/ts"))
		w.Add(waltest.Noop(t, 64))
		names, segs := w.Segments()
		l := layout{names, segs, at}
		damage(l)
		return l
	}
	byteAt := func(l layout, lsn wal.LSN) *byte {
		off := lsn - start
		return &l.segs[off/seg][off%seg]
	}
	tests := []struct {
		name   string
		at     wal.LSN
		damage func(l layout)
		stop   string
	}{
		{"bad CRC", start + 20*page + 80, func(l layout) { *byteAt(l, l.at+100) ^= 1 }, "fails its CRC"},
		{"bad xl_prev", start + 20*page + 80, func(l layout) { *byteAt(l, l.at+8) ^= 8 }, "xl_prev"},
		{"zero length", start + 20*page + 80, func(l layout) {
			for i := range wal.LSN(4) {
				*byteAt(l, l.at+i) = 0
			}
		}, "zeros"},
		{"short length", start + 20*page + 80, func(l layout) { *byteAt(l, l.at) = 20; *byteAt(l, l.at+1) = 0 }, "invalid record length"},
		{"page left from an earlier use", start + 21*page - 64, func(l layout) { *byteAt(l, start+21*page+8) ^= 0x10 }, "earlier use"},
		{"page not continuing", start + 21*page - 64, func(l layout) { *byteAt(l, start+21*page+2) &^= 1 }, "does not continue it"},
		{"continuation length wrong", start + 21*page - 64, func(l layout) { *byteAt(l, start+21*page+16)++ }, "the record lacks"},
		{"unused page", start + 21*page - 64, func(l layout) { *byteAt(l, start+21*page) = 0 }, "magic"},
		{"next segment not continuing", start + seg - 64, func(l layout) { *byteAt(l, start+seg+2) &^= 1 }, "does not continue it"},
		{"next segment's continuation too long", start + seg - 64, func(l layout) { *byteAt(l, start+seg+16)++ }, "the record lacks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := build(t, tc.at, tc.damage)
			recs, scans := scanChain(t, l.names, l.segs)
			last := scans[len(scans)-1]
			if len(recs) != 0 || last.End != tc.at || !strings.Contains(last.Stop, tc.stop) || last.Next != nil {
				t.Errorf("found %v, WAL ends at %s (%s), next %v; want nothing, the end at %s (%q)", recs, last.End, last.Stop, last.Next, tc.at, tc.stop)
			}
			sameAsWaldump(t, pgWaldump(t, l.names, l.segs), recs, scans)
		})
	}
}

// TestScanSegmentSwitch: after an XLOG_SWITCH record nothing of its
// segment is read (not even a tablespace record chained to the switch,
// CRC and all), and the next segment is read from its start.
func TestScanSegmentSwitch(t *testing.T) {
	first := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	start, _ := first.StartLSN(testCluster.SegmentSize)
	w := testCluster.NewWriter(t, first)
	w.Add(waltest.Noop(t, 100))
	sw := w.Add(waltest.Switch())
	next := w.Add(waltest.TablespaceCreate(16400, "/srv/next"))
	names, segs := w.Segments()
	copy(segs[0][sw-start+24:], recordBytes(waltest.TablespaceCreate(16499, "/srv/after-the-switch"), sw))
	recs, scans := scanChain(t, names, segs)
	want := []wal.TablespaceRecord{{LSN: next, Op: wal.TablespaceCreate, OID: 16400, Path: "/srv/next"}}
	if !scans[0].Switch || scans[0].End != start+wal.LSN(testCluster.SegmentSize) || fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Errorf("switch %v, end %s, found %v; want the switch, the end at the segment's, %v", scans[0].Switch, scans[0].End, recs, want)
	}
	sameAsWaldump(t, pgWaldump(t, names, segs), recs, scans)
}

// TestScanSegmentOverwrittenContinuation: a record cut by a crash, whose
// rest was overwritten after the crash (the next page says
// XLP_FIRST_IS_OVERWRITE_CONTRECORD), is abandoned, and the records of the
// page are read, the tablespace record among them.
func TestScanSegmentOverwrittenContinuation(t *testing.T) {
	const page = 8192
	first := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	start, _ := first.StartLSN(testCluster.SegmentSize)
	w := testCluster.NewWriter(t, first)
	w.Add(waltest.Noop(t, 100))
	last := w.FillTo(start + 2*page - 64)
	w.Add(waltest.Noop(t, 300)) // cut at the page's end by the crash
	names, segs := w.Segments()
	// What the server wrote after the crash: the page from its header on,
	// flagged as overwriting the missing continuation. Its first record's
	// xl_prev is the last record before the cut one.
	p := segs[0][2*page:]
	clear(p[:page])
	binary.LittleEndian.PutUint16(p[0:], 0xD110)
	binary.LittleEndian.PutUint16(p[2:], 0x0008)
	binary.LittleEndian.PutUint32(p[4:], 1)
	binary.LittleEndian.PutUint64(p[8:], uint64(start+2*page))
	copy(p[24:], recordBytes(waltest.TablespaceCreate(16401, "/srv/after"), last))
	recs, scans := scanChain(t, names[:1], segs[:1])
	want := []wal.TablespaceRecord{{LSN: start + 2*page + 24, Op: wal.TablespaceCreate, OID: 16401, Path: "/srv/after"}}
	if fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Errorf("found %v, want %v", recs, want)
	}
	sameAsWaldump(t, pgWaldump(t, names[:1], segs[:1]), recs, scans)
}

// recordBytes is r as a whole record with xl_prev prev and its CRC.
func recordBytes(r waltest.Record, prev wal.LSN) []byte {
	rec := make([]byte, 24, 24+len(r.Body))
	binary.LittleEndian.PutUint32(rec[0:], uint32(24+len(r.Body)))
	binary.LittleEndian.PutUint64(rec[8:], uint64(prev))
	rec[16], rec[17] = r.Info, r.RMID
	rec = append(rec, r.Body...)
	tab := crc32.MakeTable(crc32.Castagnoli)
	binary.LittleEndian.PutUint32(rec[20:], crc32.Update(crc32.Update(0, tab, rec[24:]), tab, rec[:20]))
	return rec
}

// TestScanSegmentTestdata scans the real PostgreSQL 15 segments of
// testdata/: as many records as pg_waldump reads in each (counted when
// they were made), to the switch or, in the .partial, to the zeros after
// the last record.
func TestScanSegmentTestdata(t *testing.T) {
	tests := []struct {
		file    string
		records int
		end     wal.LSN
		sw      bool
	}{
		{"000000010000000000000002", 202, 0x3000000, true},
		{"000000020000000000000004", 105, 0x5000000, true},
		{"000000010000000000000004.partial", 101, 0x4002D98, false},
	}
	for _, tc := range tests {
		f, err := os.Open(filepath.Join("testdata", "segments", "ok", tc.file+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := wal.ParseSegmentName(tc.file[:24])
		sc, err := wal.ScanSegment(zr, name, nil)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if sc.Records != tc.records || sc.End != tc.end || sc.Switch != tc.sw || len(sc.Tablespace) != 0 {
			t.Errorf("%s: %d records, end %s (%s), switch %v, tablespace %v; want %d records, end %s, switch %v, none",
				tc.file, sc.Records, sc.End, sc.Stop, sc.Switch, sc.Tablespace, tc.records, tc.end, tc.sw)
		}
	}
}

// FuzzScanSegment: whatever a segment holds after its header, the scan
// neither panics nor reads outside the segment (and the record carried
// into it), with a Carry or without.
func FuzzScanSegment(f *testing.F) {
	first := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	start, _ := first.StartLSN(testCluster.SegmentSize)
	w := testCluster.NewWriter(f, first)
	w.Add(waltest.Noop(f, 100))
	w.FillTo(start + 8192 - 16)
	w.Add(waltest.TablespaceCreate(16390, longPath(300)))
	w.Add(waltest.TablespaceDrop(16390))
	w.FillTo(start + 3*8192 - 8)
	w.Add(waltest.Switch())
	_, segs := w.Segments()
	f.Add(segs[0][wal.HeaderSize:4*8192], uint32(0), []byte(nil))
	f.Add(segs[0][wal.HeaderSize:8192], uint32(300), segs[0][8192-16:8192])
	f.Fuzz(func(t *testing.T, body []byte, tot uint32, head []byte) {
		seg := testCluster.Segment(t, first, 1)
		clear(seg[wal.HeaderSize:])
		copy(seg[wal.HeaderSize:], body)
		for _, carry := range []*wal.Carry{nil, {End: start}, {End: start, Prev: start - 100, RecLSN: start - 16, TotLen: tot, Got: uint32(len(head)), Head: head}} {
			sc, err := wal.ScanSegment(bytes.NewReader(seg), first, carry)
			if err != nil {
				continue
			}
			// WAL may end at the start of the carried record.
			if sc.End < start-16 || sc.End > start+wal.LSN(testCluster.SegmentSize) {
				t.Fatalf("the scan ended at %s, outside the segment", sc.End)
			}
			for _, r := range sc.Tablespace {
				if r.LSN < start-16 || r.LSN >= sc.End {
					t.Fatalf("a record at %s, outside what was read", r.LSN)
				}
			}
		}
	})
}
