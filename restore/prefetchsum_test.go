package restore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/walvault/walvault/internal/parhash"
)

// recordFor hashes data the way the prefetcher does (through parhash, in
// uneven writes) and returns its record.
func recordFor(t *testing.T, data []byte) sumRecord {
	t.Helper()
	cp := newCheckpointHash(int64(len(data)))
	w := parhash.New(cp, nil)
	for off := 0; off < len(data); {
		k := min(len(data)-off, 300_001)
		w.Write(data[off : off+k])
		off += k
	}
	digest, _ := w.Sum()
	return sumRecord{sha256: hex.EncodeToString(digest), size: int64(len(data)), checkpoints: cp.result()}
}

func writeTemp(t *testing.T, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seg")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func randomBytes(n int, seed uint64) []byte {
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(data)
	return data
}

func TestCheckpointChunk(t *testing.T) {
	for _, c := range []struct{ size, want int64 }{
		{1 << 20, 1 << 20},
		{16 << 20, 1 << 20},
		{64 << 20, 1 << 20},
		{1 << 30, 16 << 20},
		{100<<20 + 1, 1638464}, // rounded up to whole 64-byte blocks
	} {
		got := checkpointChunk(c.size)
		if got != c.want || got%sha256BlockSize != 0 || chunkCount(c.size, got) > checkpointMaxChunks {
			t.Errorf("checkpointChunk(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

// TestCheckFileCheckpoints: the parallel check accepts exactly the file
// whose sha256 is the recorded one, whatever the record's checkpoints say.
func TestCheckFileCheckpoints(t *testing.T) {
	t.Parallel()
	data := randomBytes(5<<20+100, 1) // six chunks, the last one short
	rec := recordFor(t, data)
	if want := sha256.Sum256(data); rec.sha256 != hex.EncodeToString(want[:]) {
		t.Fatalf("record sha256 %s, want the file's", rec.sha256)
	}
	if rec.chunk != 1<<20 || len(rec.states) != 5 {
		t.Fatalf("record: chunk %d with %d states, want 1 MiB and 5", rec.chunk, len(rec.states))
	}
	parsed, ok := parseSumRecord([]byte(rec.String()))
	if !ok || parsed.String() != rec.String() {
		t.Fatalf("record does not survive a round trip: ok %v\n%s\n%s", ok, rec, parsed)
	}
	if err := checkFile(writeTemp(t, data), parsed); err != nil {
		t.Fatalf("intact file refused: %v", err)
	}

	refuse := func(t *testing.T, what string, data []byte, rec sumRecord) {
		t.Helper()
		if err := checkFile(writeTemp(t, data), rec); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", what, err)
		}
	}
	for _, off := range []int{0, 1<<20 - 1, 1 << 20, 3<<20 + 12345, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[off] ^= 0x01
		refuse(t, "one bit flipped", bad, parsed)
	}
	refuse(t, "truncated", data[:len(data)-1], parsed)
	refuse(t, "cut at a chunk boundary", data[:4<<20], parsed)
	refuse(t, "extended", append(bytes.Clone(data), 0), parsed)

	// A record whose checkpoints describe a damaged file, with the
	// repository's sha256: the damaged file still fails, at the digest.
	bad := bytes.Clone(data)
	bad[2<<20+7] ^= 0x80
	forged := recordFor(t, bad)
	forged.sha256 = rec.sha256
	refuse(t, "checkpoints of the damaged file", bad, forged)
	// Checkpoints out of order, or one from another file, fail too.
	swapped := rec
	swapped.states = bytes2(rec.states)
	swapped.states[1], swapped.states[2] = swapped.states[2], swapped.states[1]
	refuse(t, "checkpoints swapped", data, swapped)
	swapped.states = bytes2(rec.states)
	swapped.states[3] = recordFor(t, randomBytes(len(data), 2)).states[3]
	refuse(t, "a checkpoint of another file", data, swapped)
	garbage := rec
	garbage.states = bytes2(rec.states)
	garbage.states[0] = []byte("not a sha256 state")
	refuse(t, "a malformed checkpoint", data, garbage)
}

func bytes2(s [][]byte) [][]byte {
	out := make([][]byte, len(s))
	for i := range s {
		out[i] = bytes.Clone(s[i])
	}
	return out
}

// TestCheckFileOldRecord: a record without checkpoints (written by an
// older walvault) is checked with one sequential SHA-256.
func TestCheckFileOldRecord(t *testing.T) {
	t.Parallel()
	data := randomBytes(3<<20, 3)
	sum := sha256.Sum256(data)
	rec, ok := parseSumRecord([]byte(hex.EncodeToString(sum[:]) + " 3145728\n"))
	if !ok || rec.chunk != 0 {
		t.Fatalf("old record: ok %v, chunk %d", ok, rec.chunk)
	}
	if err := checkFile(writeTemp(t, data), rec); err != nil {
		t.Fatalf("intact file refused: %v", err)
	}
	bad := bytes.Clone(data)
	bad[1<<20] ^= 1
	if err := checkFile(writeTemp(t, bad), rec); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged file: got %v, want ErrCorrupt", err)
	}
}

func TestParseSumRecordRejects(t *testing.T) {
	rec := recordFor(t, randomBytes(2<<20+1, 4)) // three chunks: two states
	good := rec.String()
	if _, ok := parseSumRecord([]byte(good)); !ok {
		t.Fatalf("good record rejected: %s", good)
	}
	st := hex.EncodeToString(rec.states[0])
	for _, bad := range []string{
		"",
		"junk",
		rec.sha256,
		rec.sha256[:63] + " 2097153",
		"zz" + rec.sha256[2:] + " 2097153",
		rec.sha256 + " 0",
		rec.sha256 + " -5",
		rec.sha256 + " 2097153 1048576 " + st, // one state missing
		rec.sha256 + " 2097153 1048576 " + st + " " + st + " " + st, // one too many
		rec.sha256 + " 2097153 1048577 " + st + " " + st,            // not whole blocks
		rec.sha256 + " 2097153 1048576 " + st + " xyz",
	} {
		if _, ok := parseSumRecord([]byte(bad)); ok {
			t.Errorf("record %.80q accepted", bad)
		}
	}
}
