package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// readLog counts what the uploader read from the server.
type readLog struct {
	r io.Reader
	n atomic.Int64
}

func (l *readLog) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n.Add(int64(n))
	return n, err
}

// bodyWatch checks, as each Put starts, that every Put still running has
// read its body to the end (its pipe's readToEnd is closed): only one Put
// reads its body at a time. It looks at the pipe's own signal, the one the
// uploader waits for: a count kept around the Put's reads would see the
// next Put start in the moment between that signal and the previous
// Put's read returning io.EOF.
type bodyWatch struct {
	storage.Backend
	mu       sync.Mutex
	running  map[*bufPipe]bool
	overlaps int // Puts that started while another had not read its body
}

func (w *bodyWatch) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	pipe, ok := r.(*bufPipe)
	if !ok {
		return fmt.Errorf("Put of %s: body %T, want the uploader's *bufPipe", key, r)
	}
	w.mu.Lock()
	for other := range w.running {
		select {
		case <-other.readToEnd():
		default:
			w.overlaps++
		}
	}
	if w.running == nil {
		w.running = map[*bufPipe]bool{}
	}
	w.running[pipe] = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, pipe)
		w.mu.Unlock()
	}()
	return w.Backend.Put(ctx, key, r, opts)
}

// readAtOnce is how many Puts started while another still read its body.
func (w *bodyWatch) readAtOnce() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overlaps
}

// TestUploadPipelineOrder: slow Puts do not reorder the parts; the next
// part is read and compressed while the previous one's Put finishes, but
// only one Put reads its body at a time (the storage's part buffers are
// filled by one Put only; the other just sends and completes), at most two
// run at once, and each part keeps its own sha256 and size.
func TestUploadPipelineOrder(t *testing.T) {
	for _, c := range []repository.Compression{repository.LZ4, repository.None} {
		t.Run(string(c), func(t *testing.T) {
			inner := mem.New()
			const partSize = 64 << 10
			in := randomBytes(7*partSize + 123)
			src := &readLog{r: bytes.NewReader(in)}
			var readWhileSlow atomic.Int64
			// Some Puts linger after reading their whole body.
			sb := storagetest.NewFault(inner)
			slow := func(key string) bool { return strings.Contains(key, ".00002") || strings.Contains(key, ".00005") }
			sb.Before(storagetest.OpPut, slow, func(context.Context, string) error {
				// The source goes on meanwhile: part 3 is read while
				// part 2's Put lingers.
				time.Sleep(100 * time.Millisecond)
				readWhileSlow.Store(src.n.Load())
				return nil
			})
			sb.Delay(storagetest.OpPut, slow, 50*time.Millisecond)
			watch := &bodyWatch{Backend: sb}
			u := &uploader{b: watch, id: "20261125T103000Z", compression: c, partSize: partSize, meta: map[string]string{"host": "db-1"}}
			parts, err := u.archive(t.Context(), "base.tar", src)
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) != 8 {
				t.Fatalf("got %d parts, want 8", len(parts))
			}
			var joined []byte
			for i, p := range parts {
				if want := repository.BackupPartKey(u.id, "base.tar", i, c); p.Key != want {
					t.Errorf("part %d: key %s, want %s", i, p.Key, want)
				}
				raw := readPart(t, inner, p)
				// readPart checked the stored sha256; the raw bytes are the input's.
				if got, want := sha256Hex(raw), sha256Hex(in[i*partSize:min(len(in), (i+1)*partSize)]); got != want {
					t.Errorf("part %d: raw sha256 %s, want %s", i, got, want)
				}
				joined = append(joined, raw...)
			}
			if !bytes.Equal(joined, in) {
				t.Errorf("parts joined differ from the input")
			}
			if n := watch.readAtOnce(); n != 0 {
				t.Errorf("%d Puts started while another still read its body, want none (their buffers must not add up)", n)
			}
			if most := sb.MaxInFlight(storagetest.OpPut); most > maxPartsInFlight {
				t.Errorf("%d Puts ran at once, want at most %d", most, maxPartsInFlight)
			}
			checkStoredInOrder(t, sb.Returned(storagetest.OpPut))
			if got := readWhileSlow.Load(); got <= 3*partSize {
				t.Errorf("read %d bytes while part 2's Put lingered, want part 3 read ahead (more than %d)", got, 3*partSize)
			}
			if ourGoroutines() != "" {
				t.Errorf("goroutines left: %s", ourGoroutines())
			}
		})
	}
}

// checkStoredInOrder fails unless the Puts of keys returned in the order
// of their keys (the parts' order).
func checkStoredInOrder(t *testing.T, keys []string) {
	t.Helper()
	if !slices.IsSorted(keys) {
		t.Errorf("Puts returned in the order %v, want the parts' order", keys)
	}
}

// TestUploadPutsOverlap: the next part's Put starts once the previous one
// has read its body, while that one still lingers (its last part uploads
// and completion, over a network), not once it has returned; but it sees
// the end of its body, so stores its object, only after the previous Put
// has returned.
func TestUploadPutsOverlap(t *testing.T) {
	inner := mem.New()
	const partSize = 64 << 10
	in := randomBytes(5*partSize + 99)
	sb := storagetest.NewFault(inner)
	release := make(chan struct{})
	// Part 2's Put has read its body and waits for release.
	sb.Before(storagetest.OpPut, storagetest.Contains(".00002"), func(ctx context.Context, _ string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	watch := &bodyWatch{Backend: sb}
	u := &uploader{b: watch, id: "20261125T103000Z", compression: repository.LZ4, partSize: partSize, meta: map[string]string{"host": "db-1"}}
	type result struct {
		parts []repository.BackupPart
		err   error
	}
	done := make(chan result, 1)
	go func() {
		parts, err := u.archive(t.Context(), "base.tar", bytes.NewReader(in))
		done <- result{parts, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for sb.Calls(storagetest.OpPut) < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	started := sb.Calls(storagetest.OpPut) >= 4
	// Part 3's Put must not store its object while part 2's lingers.
	time.Sleep(50 * time.Millisecond)
	_, err3 := inner.Stat(t.Context(), repository.BackupPartKey(u.id, "base.tar", 3, repository.LZ4))
	close(release)
	res := <-done
	if !started {
		t.Fatalf("part 3's Put did not start while part 2's lingered after reading its body")
	}
	if !errors.Is(err3, storage.ErrNotFound) {
		t.Errorf("part 3 stored (Stat: %v) while part 2's Put had not returned", err3)
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	var joined []byte
	for _, p := range res.parts {
		joined = append(joined, readPart(t, inner, p)...)
	}
	if len(res.parts) != 6 || !bytes.Equal(joined, in) {
		t.Errorf("got %d parts holding %d bytes, want 6 holding the %d put in", len(res.parts), len(joined), len(in))
	}
	if n := watch.readAtOnce(); n != 0 {
		t.Errorf("%d Puts started while another still read its body, want none", n)
	}
	checkStoredInOrder(t, sb.Returned(storagetest.OpPut))
	if g := ourGoroutines(); g != "" {
		t.Errorf("goroutines left: %s", g)
	}
}

// TestUploadPipelineFailure: a Put failing while the next part is already
// being compressed stops everything: an error naming the failed part, no
// parts returned, no later part stored, no goroutine left.
func TestUploadPipelineFailure(t *testing.T) {
	diskFull := errors.New("no space left on device")
	inner := mem.New()
	const partSize = 64 << 10
	// The Put of part 2 reads its whole body, then fails, slowly: the
	// next part is under way meanwhile.
	fb := storagetest.NewFault(inner)
	fb.Delay(storagetest.OpPut, storagetest.Contains(".00002"), 50*time.Millisecond)
	fb.Fail(storagetest.OpPut, storagetest.Contains(".00002"), diskFull)
	u := &uploader{b: fb, id: "20261125T103000Z", compression: repository.LZ4, partSize: partSize}
	parts, err := u.archive(t.Context(), "base.tar", bytes.NewReader(randomBytes(20*partSize)))
	if !errors.Is(err, diskFull) || parts != nil {
		t.Fatalf("archive: got %d parts, %v; want none and an error wrapping %v", len(parts), err, diskFull)
	}
	if !strings.Contains(err.Error(), "base.tar.00002") {
		t.Errorf("error %q does not name the failed part", err)
	}
	if g := ourGoroutines(); g != "" {
		t.Errorf("goroutines left running after a failed upload:\n%s", g)
	}
	_ = inner.List(t.Context(), "", func(oi storage.ObjectInfo) error {
		for _, later := range []string{".00003", ".00004"} {
			if strings.Contains(oi.Key, later) {
				t.Errorf("%s stored after an earlier part failed", oi.Key)
			}
		}
		return nil
	})
}

func TestBufPipe(t *testing.T) {
	in := randomBytes(3*bufPipeChunk + 77)
	p := newBufPipe()
	done := make(chan []byte)
	go func() {
		got, _ := io.ReadAll(iotestHalf{p})
		done <- got
	}()
	for rest := in; len(rest) > 0; {
		k := min(len(rest), 1000)
		if _, err := p.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := p.CloseWrite(nil); err != nil {
		t.Fatal(err)
	}
	if got := <-done; !bytes.Equal(got, in) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(in))
	}

	// A closed reader fails the writer, also one blocked on a full buffer.
	p = newBufPipe()
	stop := errors.New("reader gone")
	go func() {
		time.Sleep(20 * time.Millisecond)
		p.CloseRead(stop)
	}()
	_, err := p.Write(make([]byte, (bufPipeChunks+2)*bufPipeChunk))
	if !errors.Is(err, stop) {
		t.Fatalf("Write after CloseRead: %v, want %v", err, stop)
	}
}

type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) { return h.r.Read(p[:max(1, len(p)/2)]) }
