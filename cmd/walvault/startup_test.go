package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// maxOwnInitAllocs bounds the heap allocations of any one walvault
// package's initialisation. Every package linked into the binary is
// initialised in every process, wal-push and wal-fetch included, so
// walvault's own packages build nothing at init: a regexp compiled there
// costs 30 to 150 allocations, a table of a few dozen entries as many.
// What remains is a sync.OnceValue wrapper (2) or a small map (up to 10).
const maxOwnInitAllocs = 16

// initRecord is one line of GODEBUG=inittrace=1: "init PKG @T ms, C ms
// clock, B bytes, N allocs".
type initRecord struct {
	pkg           string
	clockMS       float64
	bytes, allocs int
}

func parseInitTrace(out []byte) []initRecord {
	var recs []initRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// init PKG @T ms, C ms clock, B bytes, N allocs
		if len(f) != 11 || f[0] != "init" || f[6] != "clock," || f[10] != "allocs" {
			continue
		}
		clock, err1 := strconv.ParseFloat(f[4], 64)
		b, err2 := strconv.Atoi(f[7])
		n, err3 := strconv.Atoi(f[9])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		recs = append(recs, initRecord{pkg: f[1], clockMS: clock, bytes: b, allocs: n})
	}
	return recs
}

// TestOwnPackagesInitialiseNothing starts this test binary again, with no
// test to run, under GODEBUG=inittrace=1: it links every package the
// walvault binary links, so the trace is the start-up of any walvault
// command. Each of walvault's own packages must initialise within
// maxOwnInitAllocs allocations. (The heavy initialisers, the AWS SDK,
// Prometheus, protobuf and the CLI's documentation renderer, are
// third-party and linked for other commands; the README's "Process start"
// benchmark says what they cost.)
func TestOwnPackagesInitialiseNothing(t *testing.T) {
	// Three starts, each package's fewest allocations: under -race a
	// sync.Pool drops what is put back at random, so an init that takes
	// a pooled object (fmt's printer) allocates more in some starts.
	var recs []initRecord
	var stderr bytes.Buffer
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		stderr.Reset()
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s -test.run=^$ with GODEBUG=inittrace=1: %v\n%s", os.Args[0], err, stderr.Bytes())
		}
		recs = fewestAllocs(recs, parseInitTrace(stderr.Bytes()))
	}
	const own = "github.com/walvault/walvault/"
	// This package's record includes its test files' tables, and testenv
	// is linked only into tests; main.go and the rest of this package
	// declare nothing that initialises.
	testOnly := map[string]bool{own + "cmd/walvault": true, own + "internal/testenv": true}
	var seen, heavy []string
	for _, r := range recs {
		if !strings.HasPrefix(r.pkg, own) || testOnly[r.pkg] {
			continue
		}
		seen = append(seen, r.pkg)
		if r.allocs > maxOwnInitAllocs {
			heavy = append(heavy, r.pkg+": "+strconv.Itoa(r.allocs)+" allocs, "+strconv.Itoa(r.bytes)+" bytes")
		}
	}
	// The trace names only packages with initialisation work; a change
	// that breaks the parsing must not pass as "nothing initialised".
	if len(recs) < 50 {
		t.Fatalf("inittrace listed %d packages, expected the whole binary's (over 100); output:\n%s", len(recs), stderr.Bytes())
	}
	if len(heavy) > 0 {
		t.Errorf("walvault packages initialise more than %d allocations at start-up, in every process (make it lazy: sync.OnceValue):\n  %s",
			maxOwnInitAllocs, strings.Join(heavy, "\n  "))
	}
	t.Logf("%d packages initialised, %d of them walvault's: %s", len(recs), len(seen), strings.Join(seen, ", "))
}

// fewestAllocs merges the records of another start into recs, keeping
// each package's smallest allocation count.
func fewestAllocs(recs, more []initRecord) []initRecord {
	if recs == nil {
		return more
	}
	index := make(map[string]int, len(recs))
	for i, r := range recs {
		index[r.pkg] = i
	}
	for _, r := range more {
		if i, ok := index[r.pkg]; ok && r.allocs < recs[i].allocs {
			recs[i] = r
		}
	}
	return recs
}

func TestParseInitTrace(t *testing.T) {
	out := []byte("init internal/bytealg @0.004 ms, 0 ms clock, 0 bytes, 0 allocs\n" +
		"init github.com/walvault/walvault/repository @72 ms, 0.057 ms clock, 7536 bytes, 81 allocs\n" +
		"PASS\n")
	recs := parseInitTrace(out)
	want := []initRecord{{"internal/bytealg", 0, 0, 0}, {"github.com/walvault/walvault/repository", 0.057, 7536, 81}}
	if len(recs) != len(want) {
		t.Fatalf("parsed %+v, want %+v", recs, want)
	}
	for i := range want {
		if recs[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, recs[i], want[i])
		}
	}
}

// maxAllocsBeforeHandoff bounds what is initialised before
// internal/handoff, whose init hands a wal-push or wal-fetch to a running
// wal-helper: the runtime's and the standard library's lowest packages,
// about 200 allocations. The AWS SDK's endpoint tables alone are 700 each.
const maxAllocsBeforeHandoff = 400

// TestHandoffInitialisesFirst: internal/handoff is initialised before any
// heavy package, so a handed-off call pays for little more than the Go
// runtime. Go initialises packages in import-path order as their imports
// are done; an import added to handoff, or a heavy package that sorts
// before it with light imports, fails this.
func TestHandoffInitialisesFirst(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s -test.run=^$ with GODEBUG=inittrace=1: %v\n%s", os.Args[0], err, stderr.Bytes())
	}
	recs := parseInitTrace(stderr.Bytes())
	var before []string
	allocs := 0
	for _, r := range recs {
		if r.pkg == "github.com/walvault/walvault/internal/handoff" {
			if allocs > maxAllocsBeforeHandoff {
				t.Errorf("%d allocations initialised before internal/handoff, want at most %d: %s", allocs, maxAllocsBeforeHandoff, strings.Join(before, ", "))
			}
			t.Logf("before internal/handoff: %d packages, %d allocations", len(before), allocs)
			return
		}
		allocs += r.allocs
		before = append(before, r.pkg+" ("+strconv.Itoa(r.allocs)+")")
	}
	t.Fatalf("internal/handoff not in the init trace (it must keep an init, and be linked):\n%s", stderr.Bytes())
}
