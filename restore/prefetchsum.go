package restore

// The sha256 record beside a prefetched segment, and the check a cache hit
// runs before handing the segment over.
//
// The check must prove the file's sha256 is the one the repository
// recorded, and one SHA-256 over 16 MiB takes about 10 ms of one core: as
// long as the whole rest of a hit. SHA-256 is sequential, but its state can
// be saved at any point (encoding.BinaryMarshaler). While the prefetcher
// hashes the download against the repository's sha256, it saves the state
// at each chunk boundary; a hit then hashes every chunk from the saved
// state before it, all chunks at once on every core, and compares each
// result with the saved state after it, and the last one's digest with
// the repository's sha256. Chunk 0 starts from a fresh SHA-256, so by
// induction every chunk started from the state a sequential pass over the
// file would have had: the check proves exactly what one sequential
// SHA-256 would, and a forged or damaged state can only make it fail.

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	// A chunk is at least checkpointMinChunk and a segment has at most
	// checkpointMaxChunks of them: enough to keep every core busy, few
	// enough to keep the record small (a state is 108 bytes).
	checkpointMinChunk  = 1 << 20
	checkpointMaxChunks = 64
	sha256BlockSize     = 64
)

// checkpoints are SHA-256 states at chunk boundaries: states[i] is the
// state after chunk i, for every chunk but the last (whose digest is the
// file's sha256).
type checkpoints struct {
	chunk  int64
	states [][]byte
}

// checkpointChunk is the chunk size for a file of size bytes: whole
// SHA-256 blocks, so that no input is buffered in a saved state.
func checkpointChunk(size int64) int64 {
	c := (size + checkpointMaxChunks - 1) / checkpointMaxChunks
	c = (c + sha256BlockSize - 1) / sha256BlockSize * sha256BlockSize
	return max(c, checkpointMinChunk)
}

func chunkCount(size, chunk int64) int {
	return int((size + chunk - 1) / chunk)
}

// checkpointHash is a SHA-256 that saves its state at every chunk
// boundary as it goes.
type checkpointHash struct {
	hash.Hash
	chunk  int64
	n      int64
	states [][]byte
}

func newCheckpointHash(size int64) *checkpointHash {
	return &checkpointHash{Hash: sha256.New(), chunk: checkpointChunk(size)}
}

func (h *checkpointHash) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		k := min(int64(len(p)), h.chunk-h.n%h.chunk)
		h.Hash.Write(p[:k])
		h.n += k
		p = p[k:]
		if h.n%h.chunk == 0 {
			state, err := h.Hash.(encoding.BinaryMarshaler).MarshalBinary()
			if err != nil {
				return written - len(p), err
			}
			h.states = append(h.states, state)
		}
	}
	return written, nil
}

// result drops the state after the last chunk, which the digest stands
// for; call it once the whole file was written.
func (h *checkpointHash) result() checkpoints {
	states := h.states
	if n := chunkCount(h.n, h.chunk); len(states) >= n && n > 0 {
		states = states[:n-1]
	}
	return checkpoints{chunk: h.chunk, states: states}
}

// sumRecord is the file beside a prefetched segment:
//
//	<sha256> <size> [<chunk> <state after chunk 0> ... <state after chunk n-2>]
//
// with the states in hex. Without the checkpoints (a record written by an
// older walvault) the check is one sequential SHA-256.
type sumRecord struct {
	sha256 string
	size   int64
	checkpoints
}

func (r sumRecord) String() string {
	var b strings.Builder
	b.WriteString(r.sha256 + " " + strconv.FormatInt(r.size, 10))
	if r.chunk > 0 {
		b.WriteString(" " + strconv.FormatInt(r.chunk, 10))
		for _, s := range r.states {
			b.WriteString(" " + hex.EncodeToString(s))
		}
	}
	b.WriteString("\n")
	return b.String()
}

// parseSumRecord reads a record; false when it is malformed, in which case
// the segment is not served from the cache.
func parseSumRecord(data []byte) (sumRecord, bool) {
	fields := strings.Fields(string(data))
	if len(fields) < 2 || len(fields[0]) != sha256.Size*2 {
		return sumRecord{}, false
	}
	if _, err := hex.DecodeString(fields[0]); err != nil {
		return sumRecord{}, false
	}
	size, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || size <= 0 {
		return sumRecord{}, false
	}
	r := sumRecord{sha256: fields[0], size: size}
	if len(fields) == 2 {
		return r, true
	}
	chunk, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil || chunk <= 0 || chunk%sha256BlockSize != 0 || len(fields) != 3+chunkCount(size, chunk)-1 {
		return sumRecord{}, false
	}
	r.chunk = chunk
	for _, f := range fields[3:] {
		s, err := hex.DecodeString(f)
		if err != nil {
			return sumRecord{}, false
		}
		r.states = append(r.states, s)
	}
	return r, true
}

// checkFile proves that f is want.size bytes with sha256 want.sha256,
// hashing its chunks on every core when the record has checkpoints.
func checkFile(f *os.File, want sumRecord) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.Size() != want.size {
		return fmt.Errorf("%w: prefetched copy is %d bytes, expected %d", ErrCorrupt, info.Size(), want.size)
	}
	if want.chunk == 0 {
		h := sha256.New()
		n, err := io.Copy(h, io.NewSectionReader(f, 0, want.size+1))
		if err != nil {
			return err
		}
		if n != want.size {
			return fmt.Errorf("%w: prefetched copy is %d bytes, expected %d", ErrCorrupt, n, want.size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want.sha256 {
			return fmt.Errorf("%w: prefetched copy has sha256 %s, expected %s", ErrCorrupt, got, want.sha256)
		}
		return nil
	}
	n := chunkCount(want.size, want.chunk)
	var (
		next     atomic.Int64
		failed   atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := checkChunk(f, want, i, buf); err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	// Stat said the size was right; make sure nothing was appended since.
	if k, _ := f.ReadAt(make([]byte, 1), want.size); k != 0 {
		return fmt.Errorf("%w: prefetched copy is longer than %d bytes", ErrCorrupt, want.size)
	}
	return nil
}

// checkChunk hashes chunk i from the state before it and compares the
// result with the state after it (the sha256, for the last chunk).
func checkChunk(f *os.File, want sumRecord, i int, buf []byte) error {
	h := sha256.New()
	if i > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(want.states[i-1]); err != nil {
			return fmt.Errorf("%w: unusable checkpoint in the prefetch record: %v", ErrCorrupt, err)
		}
	}
	off := int64(i) * want.chunk
	end := min(off+want.chunk, want.size)
	for off < end {
		k, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: prefetched copy ends at byte %d, expected %d", ErrCorrupt, off+int64(k), want.size)
			}
			return err
		}
		h.Write(buf[:k])
		off += int64(k)
	}
	if i == chunkCount(want.size, want.chunk)-1 {
		if got := hex.EncodeToString(h.Sum(nil)); got != want.sha256 {
			return fmt.Errorf("%w: prefetched copy has sha256 %s, expected %s", ErrCorrupt, got, want.sha256)
		}
		return nil
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	if !bytes.Equal(state, want.states[i]) {
		return fmt.Errorf("%w: prefetched copy differs from the verified download in bytes %d to %d", ErrCorrupt, int64(i)*want.chunk, end)
	}
	return nil
}
