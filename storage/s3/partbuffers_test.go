package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
	"github.com/walvault/walvault/storage/storagetest"
)

// holdingServer plays a multipart upload whose part uploads are answered
// only once hold is opened: the client keeps their buffers meanwhile. It
// counts the part bytes it answered.
type holdingServer struct {
	mu    sync.Mutex
	hold  chan struct{}
	acked atomic.Int64
}

func (h *holdingServer) gate() chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hold
}

// setHold makes part uploads wait from now on until the returned channel
// is closed.
func (h *holdingServer) setHold() chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = make(chan struct{})
	return h.hold
}

func (h *holdingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Has("uploads"):
		w.Header().Set("Content-Type", "application/xml")
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`))
	case q.Has("partNumber"):
		n, _ := io.Copy(io.Discard, r.Body)
		select {
		case <-h.gate():
		case <-r.Context().Done():
			return
		}
		h.acked.Add(n)
		w.Header().Set("ETag", `"e"`)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		w.Header().Set("Content-Type", "application/xml")
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>`))
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

// settled waits until n stops growing for a while and returns it.
func settled(n *atomic.Int64) int64 {
	last := n.Load()
	for quiet := 0; quiet < 10; {
		time.Sleep(20 * time.Millisecond)
		if cur := n.Load(); cur != last {
			last, quiet = cur, 0
		} else {
			quiet++
		}
	}
	return last
}

// TestPartBuffersBoundAcrossPuts: two streamed Puts that overlap share the
// Backend's Concurrency part buffers (backup-push starts a part's Put while
// the previous one still uploads): what they read and the server has not
// taken never exceeds Concurrency parts. A cancelled Put gives back its
// buffers, so the other goes on; none is left out after the Puts return.
func TestPartBuffersBoundAcrossPuts(t *testing.T) {
	const concurrency = 2
	srv := &holdingServer{}
	b := newAgainstWith(t, srv, func(c *s3.Config) { c.Concurrency = concurrency })
	body := randomBytes(9, 4*s3.MinPartSize+1)
	var read atomic.Int64
	put := func(ctx context.Context, key string) chan error {
		done := make(chan error, 1)
		go func() {
			done <- b.Put(ctx, key, onlyReader{storagetest.CountingReader{R: bytes.NewReader(body), N: &read}}, storage.PutOptions{Size: -1})
		}()
		return done
	}
	// Each Put reads one byte ahead of its buffers, to tell "exactly one
	// part" from "more".
	const bound = concurrency*s3.MinPartSize + 2

	open := srv.setHold()
	first, second := put(t.Context(), "a"), put(t.Context(), "b")
	if held := settled(&read) - srv.acked.Load(); held > bound {
		t.Errorf("two Puts hold %d bytes read and not uploaded, want at most %d (%d part buffers)", held, bound, concurrency)
	}
	if out := s3.PartBuffersOut(b); out > concurrency {
		t.Errorf("%d part buffers out, want at most %d", out, concurrency)
	}
	close(open)
	for _, done := range []chan error{first, second} {
		if err := <-done; err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if out := s3.PartBuffersOut(b); out != 0 {
		t.Errorf("%d part buffers out after the Puts returned, want 0", out)
	}

	// A Put holding every buffer is cancelled: the one waiting for a
	// buffer goes on and finishes.
	open = srv.setHold()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	read.Store(0)
	cancelled := put(ctx, "c")
	for s3.PartBuffersOut(b) < concurrency {
		time.Sleep(time.Millisecond)
	}
	waiting := put(t.Context(), "d")
	settled(&read)
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put: got %v, want context.Canceled", err)
	}
	close(open)
	select {
	case err := <-waiting:
		if err != nil {
			t.Errorf("Put after the other was cancelled: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Put waited for part buffers a cancelled Put kept")
	}
	if out := s3.PartBuffersOut(b); out != 0 {
		t.Errorf("%d part buffers out after the Puts returned, want 0", out)
	}
}

// createGate answers CreateMultipartUpload only once the client has read
// past its first part and the byte after it (or after a few seconds, then
// noting it had to wait), optionally with an error; parts and the
// completion as holdingServer does, without holding.
type createGate struct {
	read      *atomic.Int64
	fail      bool
	timedOut  atomic.Bool
	aborts    atomic.Int32
	completed atomic.Int32
}

func (c *createGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Has("uploads"):
		deadline := time.Now().Add(3 * time.Second)
		for c.read.Load() <= s3.MinPartSize+1 {
			if time.Now().After(deadline) {
				c.timedOut.Store(true)
				break
			}
			time.Sleep(time.Millisecond)
		}
		if c.fail {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`))
	case q.Has("partNumber"):
		io.Copy(io.Discard, r.Body)
		w.Header().Set("ETag", `"e"`)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		c.completed.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>`))
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		c.aborts.Add(1)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

// TestCreateOverlapsReading: a streamed Put goes on reading its second part
// while CreateMultipartUpload is under way: over a network, waiting for that
// answer first stops the stream (a base backup's) for a round trip per
// object. A refused create still fails the Put with the server's answer,
// gives back every part buffer and leaves no upload to abort.
func TestCreateOverlapsReading(t *testing.T) {
	for _, fail := range []bool{false, true} {
		var read atomic.Int64
		srv := &createGate{read: &read, fail: fail}
		b := newAgainstWith(t, srv, func(c *s3.Config) { c.Concurrency = 2 })
		body := randomBytes(11, 3*s3.MinPartSize)
		err := b.Put(t.Context(), "k", onlyReader{storagetest.CountingReader{R: bytes.NewReader(body), N: &read}}, storage.PutOptions{Size: -1})
		if srv.timedOut.Load() {
			t.Errorf("fail=%v: the client read no further than its first part until CreateMultipartUpload was answered", fail)
		}
		if fail {
			if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
				t.Errorf("Put with the create refused: got %v, want the server's AccessDenied", err)
			}
			if n := srv.aborts.Load(); n != 0 {
				t.Errorf("%d aborts of an upload that was never created", n)
			}
		} else {
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if n := srv.completed.Load(); n != 1 {
				t.Errorf("%d completions, want 1", n)
			}
		}
		if out := s3.PartBuffersOut(b); out != 0 {
			t.Errorf("fail=%v: %d part buffers out after the Put returned, want 0", fail, out)
		}
	}
}
