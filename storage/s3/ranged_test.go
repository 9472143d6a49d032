package s3_test

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// testChunk is the chunk size the ranged tests read with, so an object of
// many chunks stays small.
const testChunk = 64 << 10

var objectTime = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// objectServer serves one object with http.ServeContent, which answers
// Range (206 and Content-Range, 416 past the end) and If-Match (412) as RFC
// 9110 says, and records every GET.
type objectServer struct {
	mu   sync.Mutex
	data []byte
	etag string
	gets []seenGet
	// ignoreRange and ignoreIfMatch make it a server without them; noETag
	// one that sends no ETag, weakETag a weak one; refuseIfMatch one that
	// answers If-Match with 501 Not Implemented, and rangeNoETag one that
	// sends the ETag with the first range only.
	ignoreRange, ignoreIfMatch, noETag, weakETag, refuseIfMatch, rangeNoETag bool
	// chunked sends no Content-Length (Transfer-Encoding: chunked), as
	// some gateways and proxies answer.
	chunked bool
	// answer, when set, may answer GET number n (from 1) itself: it
	// returns true when it did.
	answer func(n int, w http.ResponseWriter, r *http.Request) bool
}

type seenGet struct{ rangeHeader, ifMatch string }

func newObjectServer(data []byte) *objectServer {
	return &objectServer{data: data, etag: `"v1"`}
}

func (s *objectServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	s.gets = append(s.gets, seenGet{r.Header.Get("Range"), r.Header.Get("If-Match")})
	n, data, etag := len(s.gets), s.data, s.etag
	s.mu.Unlock()
	if s.answer != nil && s.answer(n, w, r) {
		return
	}
	if s.ignoreRange {
		r.Header.Del("Range")
	}
	if s.ignoreIfMatch {
		r.Header.Del("If-Match")
	}
	if s.refuseIfMatch && r.Header.Get("If-Match") != "" {
		answer{status: http.StatusNotImplemented, code: "NotImplemented", message: "A header you provided implies functionality that is not implemented"}.write(w, r)
		return
	}
	switch {
	case s.rangeNoETag && n > 1:
	case s.weakETag:
		w.Header().Set("ETag", "W/"+etag)
	case !s.noETag:
		w.Header().Set("ETag", etag)
	}
	w.Header().Set("x-amz-meta-v", "1")
	w.Header().Set("Content-Type", "application/octet-stream")
	if s.chunked {
		w = noLength{w}
	}
	http.ServeContent(w, r, "", objectTime, bytes.NewReader(data))
}

// noLength drops the Content-Length ServeContent sets, so the answer goes
// out chunked.
type noLength struct{ http.ResponseWriter }

func (n noLength) WriteHeader(code int) {
	n.Header().Del("Content-Length")
	n.ResponseWriter.WriteHeader(code)
}

// replace stores other in place of the object.
func (s *objectServer) replace(other []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.etag = other, `"v2"`
}

func (s *objectServer) seen() []seenGet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenGet(nil), s.gets...)
}

// oddReads reads r to its end in reads of changing sizes, as a decoder
// does, so chunk boundaries fall inside reads.
func oddReads(r io.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 70_001)
	for i := 0; ; i++ {
		n, err := r.Read(buf[:1+(i*7919)%len(buf)])
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// checkNoDownloads fails unless no buffer of b is out and no download of a
// ranged Get is left running.
func checkNoDownloads(t *testing.T, b *s3.Backend) {
	t.Helper()
	if n := s3.GetBuffersOut(b); n != 0 {
		t.Errorf("chunk buffers out after Close: got %d, want 0", n)
	}
	// Close waits for the downloads, which may still be returning from
	// their function when it does: give them a moment to go, not more.
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		stacks := buf[:runtime.Stack(buf, true)]
		if !bytes.Contains(stacks, []byte("(*rangedBody).download")) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("a download of a ranged Get is still running 5s after Close:\n%s", stacks)
			return
		}
	}
}

// TestRangedGet: an object of many chunks reads back byte-exact, with the
// same ObjectInfo as one read at once, in one request per chunk, each
// after the first held to the first answer's ETag; with no buffer free the
// Get reads its ranges itself, fewer and longer.
func TestRangedGet(t *testing.T) {
	data := randomBytes(7, 16*testChunk+123)
	for _, tc := range []struct {
		name      string
		buffers   int
		wantCalls int
	}{
		{"buffers", 4, 17},           // the first chunk, then each of the 16 others
		{"no buffer free", 0, 1 + 4}, // then the 16 others in ranges of 4
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newObjectServer(data)
			b := newAgainst(t, srv)
			s3.SetGetChunks(b, testChunk, tc.buffers)
			rc, info, err := b.Get(t.Context(), "k")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			got, err := oddReads(rc)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("read %d bytes (equal: %v), err %v; want the %d stored", len(got), bytes.Equal(got, data), err, len(data))
			}
			if n, err := rc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("Read after the end: got %d, %v; want 0, EOF", n, err)
			}
			rc.Close()
			if info.Size != int64(len(data)) || info.Metadata["v"] != "1" || !info.ModTime.Equal(objectTime) || info.Key != "k" {
				t.Errorf("ObjectInfo: got %+v, want size %d, metadata v=1, ModTime %v", info, len(data), objectTime)
			}
			seen := srv.seen()
			if len(seen) != tc.wantCalls {
				t.Errorf("GET requests: got %d (%v), want %d", len(seen), seen, tc.wantCalls)
			}
			if len(seen) > 0 && (seen[0].rangeHeader != fmt.Sprintf("bytes=0-%d", testChunk-1) || seen[0].ifMatch != "") {
				t.Errorf("first GET: got %+v, want the first chunk without a condition", seen[0])
			}
			for _, g := range seen[min(1, len(seen)):] {
				if g.ifMatch != `"v1"` || g.rangeHeader == "" {
					t.Errorf("later GET: got %+v, want a range with If-Match \"v1\"", g)
				}
			}
			checkNoDownloads(t, b)
		})
	}
}

// TestRangedGetChunked: answers without Content-Length (chunked) are read
// by the length their Content-Range gives, an object of one chunk and one
// of many alike.
func TestRangedGetChunked(t *testing.T) {
	for _, size := range []int{testChunk / 2, 16*testChunk + 123} {
		data := randomBytes(8, size)
		srv := newObjectServer(data)
		srv.chunked = true
		b := newAgainst(t, srv)
		s3.SetGetChunks(b, testChunk, 4)
		rc, info, err := b.Get(t.Context(), "k")
		if err != nil {
			t.Fatalf("Get of %d bytes answered chunked: %v", size, err)
		}
		got, err := oddReads(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) || info.Size != int64(size) {
			t.Fatalf("read %d bytes (equal: %v), err %v, size %d; want the %d stored", len(got), bytes.Equal(got, data), err, info.Size, size)
		}
	}
}

// TestRangedGetOneRequest: an object up to one chunk costs one request (a
// WAL segment at the default chunk size, an empty object), and so does any
// object on a server that ignores Range; an empty object on a server that
// answers its range with 416 costs two, and so does a larger object on a
// server that sends no ETag, or a weak one, to hold later ranges to (read
// whole then).
func TestRangedGetOneRequest(t *testing.T) {
	for _, tc := range []struct {
		name        string
		size        int
		chunk       int64 // 0: the default
		ignoreRange bool
		refuseEmpty bool // answer 416 to a range of an empty object
		noETag      bool
		weakETag    bool
		wantCalls   int
	}{
		{"WAL segment, default chunk", 3 << 20, 0, false, false, false, false, 1},
		{"exactly one chunk", testChunk, testChunk, false, false, false, false, 1},
		{"one byte more", testChunk + 1, testChunk, false, false, false, false, 2},
		{"server ignores Range", 10*testChunk + 5, testChunk, true, false, false, false, 1},
		{"empty object", 0, testChunk, false, false, false, false, 1},
		{"empty object, 416", 0, testChunk, false, true, false, false, 2},
		{"one chunk, no ETag", testChunk - 1, testChunk, false, false, true, false, 1},
		{"several chunks, no ETag", 3 * testChunk, testChunk, false, false, true, false, 2},
		{"several chunks, weak ETag", 3 * testChunk, testChunk, false, false, false, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(8, tc.size)
			srv := newObjectServer(data)
			srv.ignoreRange, srv.noETag, srv.weakETag = tc.ignoreRange, tc.noETag, tc.weakETag
			if tc.refuseEmpty {
				srv.answer = func(_ int, w http.ResponseWriter, r *http.Request) bool {
					if r.Header.Get("Range") == "" {
						return false
					}
					answer{status: http.StatusRequestedRangeNotSatisfiable, code: "InvalidRange", message: "The requested range is not satisfiable"}.write(w, r)
					return true
				}
			}
			b := newAgainst(t, srv)
			if tc.chunk > 0 {
				s3.SetGetChunks(b, tc.chunk, 4)
			}
			rc, info, err := b.Get(t.Context(), "k")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) || info.Size != int64(tc.size) {
				t.Errorf("read %d bytes (equal: %v), size %d, err %v; want the %d stored", len(got), bytes.Equal(got, data), info.Size, err, tc.size)
			}
			if seen := srv.seen(); len(seen) != tc.wantCalls {
				t.Errorf("GET requests: got %d (%v), want %d", len(seen), seen, tc.wantCalls)
			}
			checkNoDownloads(t, b)
		})
	}
}

// TestRangedGetReplaced: an object replaced after the first answer is a
// read error, refused by If-Match (412) or, on a server that ignores
// If-Match or answers it with 501 Not Implemented, by the ETag of the later
// answer; on the latter, a later range answered without an ETag is a read
// error too. The bytes handed out before the error are the first
// object's, never the second's.
func TestRangedGetReplaced(t *testing.T) {
	data, other := randomBytes(9, 16*testChunk), randomBytes(10, 16*testChunk)
	for _, tc := range []struct {
		name                                 string
		ignoreIfMatch, refuseIfMatch, noETag bool
		replace                              bool
		wantErr                              string
	}{
		{"If-Match", false, false, false, true, "changed while it was read"},
		{"If-Match ignored", true, false, false, true, "changed while it was read"},
		{"If-Match refused", false, true, false, true, "changed while it was read"},
		{"If-Match refused, range without an ETag", false, true, true, false, "without an ETag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newObjectServer(data)
			srv.ignoreIfMatch, srv.refuseIfMatch, srv.rangeNoETag = tc.ignoreIfMatch, tc.refuseIfMatch, tc.noETag
			srv.answer = func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n == 2 && tc.replace { // the first request after the first answer
					srv.replace(other)
				}
				return false
			}
			b := newAgainst(t, srv)
			s3.SetGetChunks(b, testChunk, 4)
			rc, _, err := b.Get(t.Context(), "k")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			got, err := oddReads(rc)
			rc.Close()
			if err == nil {
				t.Fatalf("read: got %d bytes and no error, want an error", len(got))
			}
			t.Logf("read error: %v", err)
			if !bytes.HasPrefix(data, got) {
				t.Errorf("the %d bytes read before the error are not the first object's", len(got))
			}
			if !strings.HasPrefix(err.Error(), "get k: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("read error: got %q, want storage.OpError's \"get k: \" and %q", err, tc.wantErr)
			}
			if !tc.ignoreIfMatch && !slices.ContainsFunc(srv.seen()[1:], func(g seenGet) bool { return g.ifMatch == `"v1"` }) {
				t.Errorf("GET requests: got %v, want later ones with If-Match \"v1\"", srv.seen())
			}
			checkNoDownloads(t, b)
		})
	}
}

// TestRangedGetIfMatchRefused: on a server that answers If-Match with 501
// Not Implemented, the ranges after the first go without it: the whole
// object reads back, and later Gets of the same Backend send no If-Match
// at all (TestRangedGetReplaced has what it refuses there).
func TestRangedGetIfMatchRefused(t *testing.T) {
	data := randomBytes(12, 16*testChunk+5)
	srv := newObjectServer(data)
	srv.refuseIfMatch = true
	b := newAgainst(t, srv)
	s3.SetGetChunks(b, testChunk, 4)
	for i := range 2 {
		rc, _, err := b.Get(t.Context(), "k")
		if err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
		got, err := oddReads(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get %d: read %d bytes (equal: %v), err %v; want the %d stored", i, len(got), bytes.Equal(got, data), err, len(data))
		}
	}
	// The first Get tries If-Match on up to getAhead (3) downloads
	// before the first 501 comes back; then each Get asks for its 16
	// later ranges without it.
	seen := srv.seen()
	firstRange := fmt.Sprintf("bytes=0-%d", testChunk-1)
	var conditional, unconditional, secondGet int
	for i, g := range seen {
		switch {
		case g.rangeHeader == firstRange:
			secondGet = i
		case g.ifMatch != "":
			conditional++
			if secondGet > 0 {
				t.Errorf("GET %d (%+v): If-Match after the server refused it", i, g)
			}
		default:
			unconditional++
		}
	}
	if conditional < 1 || conditional > 3 || unconditional != 32 {
		t.Errorf("GET requests: got %d with If-Match and %d later ranges without (%v); want 1 to 3, then 32", conditional, unconditional, seen)
	}
	checkNoDownloads(t, b)
}

// TestRangedGetTruncated: a range shorter than asked for is an error,
// whether the answer says so (Content-Range, Content-Length) or its body
// just ends early: the first (an error of Get or of a read), one downloaded
// ahead or one read by the reader itself (a read error). Only a first
// answer that says it is shorter is read on from where it ends.
func TestRangedGetTruncated(t *testing.T) {
	data := randomBytes(11, 6*testChunk)
	size := len(data)
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, off, n int)
	}{
		{"short range", func(w http.ResponseWriter, off, n int) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-101, size))
			w.Header().Set("Content-Length", fmt.Sprint(n-100))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[off : off+n-100])
		}},
		{"short answer, whole range claimed", func(w http.ResponseWriter, off, n int) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
			w.Header().Set("Content-Length", fmt.Sprint(n-100))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[off : off+n-100])
		}},
		{"body cut", func(w http.ResponseWriter, off, n int) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
			w.Header().Set("Content-Length", fmt.Sprint(n))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[off : off+n-100])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // closes the connection mid-body
		}},
	} {
		// The first answer; the third chunk, downloaded ahead; without
		// buffers the reader's second request (chunks 2 to 5).
		for _, where := range []struct {
			name           string
			buffers, cutAt int
		}{{"first", 4, 0}, {"ahead", 4, 2 * testChunk}, {"reader's own", 0, testChunk}} {
			buffers, cutAt := where.buffers, where.cutAt
			t.Run(tc.name+"/"+where.name, func(t *testing.T) {
				srv := newObjectServer(data)
				var cutLast atomic.Int64 // the last byte of the range cut
				srv.answer = func(_ int, w http.ResponseWriter, r *http.Request) bool {
					var first, last int
					if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil || first != cutAt {
						return false
					}
					cutLast.Store(int64(last))
					w.Header().Set("ETag", `"v1"`)
					tc.answer(w, first, last-first+1)
					return true
				}
				b := newAgainst(t, srv)
				s3.SetGetChunks(b, testChunk, buffers)
				var got []byte
				rc, _, err := b.Get(t.Context(), "k")
				if err == nil {
					got, err = oddReads(rc)
					rc.Close()
				}
				if tc.name == "short range" && where.name == "first" {
					// A first answer shorter than asked for but whole is
					// an answer: the later ranges start where it ends.
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("read %d bytes (equal: %v), err %v; want the %d stored", len(got), bytes.Equal(got, data), err, len(data))
					}
					return
				}
				if tc.name == "body cut" {
					// A range whose body broke, wherever it is read, is
					// asked for again from where it broke, not from its
					// start.
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("read %d bytes (equal: %v), err %v; want the %d stored, the cut range resumed", len(got), bytes.Equal(got, data), err, len(data))
					}
					want := fmt.Sprintf("bytes=%d-%d", cutLast.Load()-99, cutLast.Load())
					if !slices.ContainsFunc(srv.seen(), func(g seenGet) bool { return g.rangeHeader == want }) {
						t.Errorf("GETs %+v: want one for the rest of the cut range, %s", srv.seen(), want)
					}
					return
				}
				if err == nil {
					t.Fatalf("read with a truncated range: got %d bytes and EOF, want an error", len(got))
				}
				t.Logf("read error: %v", err)
				if !bytes.HasPrefix(data, got) || len(got) >= len(data) {
					t.Errorf("read %d bytes before the error, want fewer than the object's %d, and the object's", len(got), len(data))
				}
				checkNoDownloads(t, b)
			})
		}
	}
}

// TestRangedGetCloseEarly: Close in the middle of a read, with downloads
// stuck on a silent server, ends them at once and gives every buffer back.
func TestRangedGetCloseEarly(t *testing.T) {
	data := randomBytes(12, 8*testChunk)
	srv := newObjectServer(data)
	srv.answer = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			return false
		}
		// Half a chunk, then silence until the client gives up.
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", fmt.Sprint(testChunk))
		w.Header().Set("Content-Range", strings.Replace(r.Header.Get("Range"), "=", " ", 1)+fmt.Sprintf("/%d", len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, testChunk/2))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	}
	b := newAgainst(t, srv)
	s3.SetGetChunks(b, testChunk, 4)
	rc, _, err := b.Get(t.Context(), "k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatalf("first read: %v", err)
	}
	// The downloads ahead have begun (3, the most one Get has).
	for deadline := time.Now().Add(10 * time.Second); len(srv.seen()) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("GET requests: got %d, want 4 (the first and 3 ahead)", len(srv.seen()))
		}
		time.Sleep(time.Millisecond)
	}
	if n := s3.GetBuffersOut(b); n != 3 {
		t.Errorf("chunk buffers out during the read: got %d, want 3", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- rc.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s: the downloads were not cancelled")
	}
	checkNoDownloads(t, b)
	if _, err := rc.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close: got nil, want an error")
	}
}

// TestS3RangedGet: against the gateway, an object of many chunks reads
// back byte-exact with the ObjectInfo of a HEAD, and one replaced during
// the read is a read error, never the second object's bytes.
func TestS3RangedGet(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	b := newBackend(t, v, s3.Config{Bucket: newBucket(t, v, false), Prefix: "p"})
	s3.SetGetChunks(b, testChunk, 4)
	ctx := t.Context()
	key := "backups/b1/base.tar.lz4.part2"
	data := randomBytes(13, 20*testChunk+77)
	md := map[string]string{"v": "1"}
	if err := b.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{Size: int64(len(data)), Metadata: md}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	stat, err := b.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	rc, info, err := b.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	got, err := oddReads(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read %d bytes (equal: %v), err %v; want the %d stored", len(got), bytes.Equal(got, data), err, len(data))
	}
	// The gateway sends Object Lock dates on HEAD only (doc.go).
	if info.Size != stat.Size || !info.ModTime.Equal(stat.ModTime) || !maps.Equal(info.Metadata, stat.Metadata) {
		t.Errorf("Get's ObjectInfo %+v, want Stat's %+v", info, stat)
	}

	rc, _, err = b.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatalf("first read: %v", err)
	}
	other := randomBytes(14, len(data))
	if err := b.Put(ctx, key, bytes.NewReader(other), storage.PutOptions{Size: int64(len(other))}); err != nil {
		t.Fatalf("Put over it: %v", err)
	}
	rest, err := oddReads(rc)
	got = append(head, rest...)
	if err == nil {
		t.Fatalf("read of an object replaced meanwhile: got %d bytes and no error, want an error", len(got))
	}
	t.Logf("read error: %v", err)
	if !bytes.HasPrefix(data, got) {
		t.Errorf("the %d bytes read before the error are not the first object's", len(got))
	}
	rc.Close()
	checkNoDownloads(t, b)
}

// TestRangedGetCutEveryMegabyte: a link that cuts every connection after
// so many bytes still gets the object whole: resumes that each move at
// least resumeProgress do not count against the bound (explore25b F3:
// restore gave up after five cuts of one range).
func TestRangedGetCutEveryMegabyte(t *testing.T) {
	data := randomBytes(12, 2<<20)
	size := len(data)
	const perConnection = 100 << 10
	srv := newObjectServer(data)
	srv.answer = func(_ int, w http.ResponseWriter, r *http.Request) bool {
		var first, last int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil {
			return false
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, size))
		w.Header().Set("Content-Length", fmt.Sprint(last-first+1))
		w.WriteHeader(http.StatusPartialContent)
		if last-first+1 <= perConnection {
			w.Write(data[first : last+1])
			return true
		}
		w.Write(data[first : first+perConnection])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the link cuts the connection
	}
	b := newAgainst(t, srv)
	s3.SetGetChunks(b, 1<<20, 2) // ten cuts in every range
	rc, _, err := b.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (equal: %v), err %v; want the %d stored", len(got), bytes.Equal(got, data), err, size)
	}
}
