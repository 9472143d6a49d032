package wal_test

// The scanner on WAL written by real PostgreSQL servers of every supported
// major: the tablespace records it reports are the ones the servers
// wrote (their OIDs from pg_tablespace, their locations), it reads every
// archived segment to its end, and, on PostgreSQL 15, whose pg_waldump the
// test has, it reads exactly the records pg_waldump reads, including
// tablespace records placed across a page boundary, with their header
// split by one, and across a segment boundary.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/wal"
)

func TestScanSegmentRealWAL(t *testing.T) {
	for _, major := range testenv.Majors() {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) { testRealWAL(t, major) })
	}
}

// realWAL is a running test server archiving with cp, with 1 MiB
// segments so that records cross segment boundaries often.
type realWAL struct {
	pg      *testenv.Postgres
	archive string
	tsRoot  string
	n       int
}

func testRealWAL(t *testing.T, major int) {
	archive := testenv.UserDir(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Major:          major,
		WalSegSizeMB:   1,
		ArchiveCommand: "cp %p " + archive + "/%f",
		Conf:           map[string]string{"allow_in_place_tablespaces": "on"},
	})
	e := &realWAL{pg: pg, archive: archive, tsRoot: testenv.UserDir(t)}
	// The segments archived so far may begin with the rest of a record:
	// the scan starts on the one after this switch.
	before := e.pg.SwitchWAL(t)

	var want []wal.TablespaceRecord
	add := func(recs ...wal.TablespaceRecord) { want = append(want, recs...) }
	// A tablespace that holds a table for a while, then is dropped.
	loc := e.location(t, 40)
	oid := e.create(t, "plain", loc)
	pg.SQL(t, "CREATE TABLE in_ts (id int, pad text) TABLESPACE plain; INSERT INTO in_ts SELECT g, repeat('p', 100) FROM generate_series(1, 2000) g; DROP TABLE in_ts; DROP TABLESPACE plain")
	add(wal.TablespaceRecord{Op: wal.TablespaceCreate, OID: oid, Path: loc}, wal.TablespaceRecord{Op: wal.TablespaceDrop, OID: oid})
	// In place (allow_in_place_tablespaces): an empty location.
	oid = e.create(t, "inplace", "")
	pg.SQL(t, "DROP TABLESPACE inplace")
	add(wal.TablespaceRecord{Op: wal.TablespaceCreate, OID: oid}, wal.TablespaceRecord{Op: wal.TablespaceDrop, OID: oid})
	// A location near the longest PostgreSQL takes.
	loc = e.location(t, 900)
	add(wal.TablespaceRecord{Op: wal.TablespaceCreate, OID: e.create(t, "long", loc), Path: loc})

	var placed map[string]wal.LSN
	if major == testenv.DefaultMajor {
		placed = e.placeRecords(t)
	}
	last := pg.SwitchWAL(t)
	pg.WaitArchived(t, last, 60*time.Second)

	names, segs := e.archived(t, before, last)
	recs, scans := scanChain(t, names, segs)
	if len(scans) != len(segs) {
		t.Fatalf("the scan stopped after %d of %d archived segments: %s", len(scans), len(segs), scans[len(scans)-1].Stop)
	}
	for i, sc := range scans {
		if sc.Stop != "" || sc.Continued {
			t.Errorf("%s: the scan stopped at %s (%s), continued %v; the archived WAL is whole", names[i], sc.End, sc.Stop, sc.Continued)
		}
	}
	if !scans[len(scans)-1].Switch {
		t.Errorf("%s ends with pg_switch_wal's record, the scan saw none", last)
	}
	// The records reported are the ones written, in order; the LSNs are
	// checked against pg_waldump below (on 15) or only for order.
	got := make([]wal.TablespaceRecord, len(recs))
	for i, r := range recs {
		got[i] = wal.TablespaceRecord{Op: r.Op, OID: r.OID, Path: r.Path}
		if i > 0 && r.LSN <= recs[i-1].LSN {
			t.Errorf("records out of order: %v", recs)
		}
	}
	if len(got) < len(want) || fmt.Sprint(got[:len(want)]) != fmt.Sprint(want) {
		t.Errorf("tablespace records:\n got  %v\n want %v first", got, want)
	}
	t.Logf("%d segments, %d records, %d of them tablespace records", len(scans), records(scans), len(recs))
	if placed == nil {
		return
	}
	sameAsWaldump(t, pgWaldumpDir(t, e.archive, names[0].String(), last), recs, scans)
	for what, at := range placed {
		if !slices.ContainsFunc(recs, func(r wal.TablespaceRecord) bool { return r.LSN == at }) {
			t.Errorf("the record %s (at %s) was not found: %v", what, at, recs)
		}
	}
}

// location makes a directory of the server user for a tablespace, its
// path about n bytes long.
func (e *realWAL) location(t *testing.T, n int) string {
	t.Helper()
	e.n++
	p := filepath.Join(e.tsRoot, strconv.Itoa(e.n))
	for len(p) < n-1 {
		p = filepath.Join(p, strings.Repeat("t", min(200, n-len(p)-1)))
	}
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.ChownToServerUser(t, filepath.Join(e.tsRoot, strconv.Itoa(e.n)))
	return p
}

// create runs CREATE TABLESPACE and returns the tablespace's OID.
func (e *realWAL) create(t *testing.T, name, loc string) uint32 {
	t.Helper()
	out := e.pg.SQL(t, fmt.Sprintf("CREATE TABLESPACE %s LOCATION '%s'; SELECT oid FROM pg_tablespace WHERE spcname = '%s'", name, loc, name))
	oid, err := strconv.ParseUint(out, 10, 32)
	if err != nil {
		t.Fatalf("tablespace %s: oid %q", name, out)
	}
	return uint32(oid)
}

func (e *realWAL) insertLSN(t *testing.T) wal.LSN {
	t.Helper()
	lsn, err := wal.ParseLSN(e.pg.SQL(t, "SELECT pg_current_wal_insert_lsn()"))
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// padTo writes one logical message that ends where the next record must
// begin, at, which must lie at least a page ahead. The message's record
// is 55 bytes and its text: header 24, long main data header 5,
// xl_logical_message 24, prefix "p" and its NUL.
func (e *realWAL) padTo(t *testing.T, at wal.LSN) {
	t.Helper()
	cur := e.insertLSN(t)
	size := uint64(at - cur)
	for p := (uint64(cur)/8192 + 1) * 8192; p < uint64(at); p += 8192 {
		if p%wal.MinSegmentSize == 0 {
			size -= wal.HeaderSize
		} else {
			size -= 24
		}
	}
	e.pg.SQL(t, fmt.Sprintf("SELECT pg_logical_emit_message(false, 'p', repeat('m', %d)) IS NOT NULL", size-55))
	if got := e.insertLSN(t); got != at {
		t.Fatalf("padding from %s by %d bytes ended at %s, want %s", cur, size, got, at)
	}
}

// tablespaceRecordAfter finds the one tablespace record written after
// from, and its length, with pg_waldump on the server's pg_wal.
func (e *realWAL) tablespaceRecordAfter(t *testing.T, from wal.LSN) (wal.LSN, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.PGBinDir(t), "pg_waldump"), "-p", filepath.Join(e.pg.DataDir, "pg_wal"), "-s", from.String(), "-e", e.insertLSN(t).String(), "-r", "Tablespace")
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("pg_waldump: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if m := waldumpLine.FindStringSubmatch(line); m != nil {
			lsn, _ := wal.ParseLSN(m[2])
			var rec, tot int
			if _, err := fmt.Sscanf(line[strings.Index(line, "len (rec/tot):")+len("len (rec/tot):"):], "%d/%d", &rec, &tot); err != nil {
				t.Fatalf("pg_waldump line %q: %v", line, err)
			}
			return lsn, tot
		}
	}
	t.Fatalf("pg_waldump found no tablespace record after %s:\n%s", from, out)
	return 0, 0
}

// placeRecords writes CREATE TABLESPACE records that cross a page
// boundary in their data, have their header split by one, and cross a
// segment boundary, and returns where they are. CREATE TABLESPACE writes
// a few catalog records before its own; their size is learned from the
// first try and the padding adjusted, a few times if something else
// wrote WAL in between.
func (e *realWAL) placeRecords(t *testing.T) map[string]wal.LSN {
	t.Helper()
	const page = 8192
	goals := []struct {
		what string
		// where, from the boundary after the next page, the record should
		// start
		back  wal.LSN
		inSeg bool
		path  int
	}{
		{"across a page", 296, false, 700},
		{"header split by a page", 8, false, 60},
		{"across a segment", 296, true, 700},
		{"header split by a segment", 16, true, 60},
	}
	placed := map[string]wal.LSN{}
	prelude := wal.LSN(0)
	for _, g := range goals {
		for try := 0; ; try++ {
			if try == 8 {
				t.Fatalf("could not place a tablespace record %s in %d tries", g.what, try)
			}
			cur := e.insertLSN(t)
			unit := wal.LSN(page)
			if g.inSeg {
				unit = wal.MinSegmentSize
			}
			boundary := (cur/unit + 2) * unit
			goal := boundary - g.back
			if prelude == 0 {
				goal = boundary - 2000 // learn the prelude first
			}
			e.padTo(t, goal-prelude)
			loc := e.location(t, g.path)
			e.create(t, fmt.Sprintf("placed%d", e.n), loc)
			at, tot := e.tablespaceRecordAfter(t, goal-prelude)
			prelude = at - (goal - prelude)
			if at == boundary-g.back && at+wal.LSN(tot) > boundary {
				placed[g.what] = at
				break
			}
			t.Logf("%s: the record went to %s, not %s; the catalog records before it take %d bytes, trying again", g.what, at, boundary-g.back, prelude)
		}
	}
	return placed
}

// archived reads the archived segments after first, up to last, in order.
func (e *realWAL) archived(t *testing.T, first, last string) ([]wal.Segment, [][]byte) {
	t.Helper()
	entries, err := os.ReadDir(e.archive)
	if err != nil {
		t.Fatal(err)
	}
	var names []wal.Segment
	var segs [][]byte
	for _, ent := range entries {
		s, err := wal.ParseSegmentName(ent.Name())
		if err != nil || ent.Name() <= first || ent.Name() > last {
			continue
		}
		if len(names) > 0 {
			if next, _ := names[len(names)-1].Next(wal.MinSegmentSize); next != s {
				t.Fatalf("the archive skips from %s to %s", names[len(names)-1], s)
			}
		}
		data, err := os.ReadFile(filepath.Join(e.archive, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		names, segs = append(names, s), append(segs, data)
	}
	if len(names) == 0 {
		t.Fatalf("no segment archived after %s up to %s", first, last)
	}
	return names, segs
}
