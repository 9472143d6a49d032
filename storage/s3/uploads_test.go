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

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walvault/walvault/internal/testenv"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// cancellingReader cancels its context once n bytes were read, as Ctrl-C
// midway through an upload does.
type cancellingReader struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if c.n -= int64(k); c.n <= 0 {
		c.cancel()
	}
	return k, err
}

// TestS3CancelledMultipartAborts: a multipart upload whose context is
// cancelled midway is aborted all the same (on a context of its own), so
// no upload is left behind.
func TestS3CancelledMultipartAborts(t *testing.T) {
	v := testenv.StartVersity(t)
	useGateway(t, v)
	bucket := newBucket(t, v, false)
	b := newBackend(t, v, s3.Config{Bucket: bucket, PartSize: 5 << 20, Concurrency: 2})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := &cancellingReader{r: bytes.NewReader(randomBytes(4, 16<<20)), n: 11 << 20, cancel: cancel}
	err := b.Put(ctx, "big", r, storage.PutOptions{Size: -1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled midway: got %v, want context.Canceled", err)
	}
	if _, err := b.Stat(t.Context(), "big"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after a cancelled Put: got %v, want storage.ErrNotFound", err)
	}
	checkNoUploads(t, v, bucket)
}

// TestS3ListAndAbortUploads: the incomplete uploads under the repository's
// prefix are listed (others in the bucket are not) and aborted, also on
// MinIO, which answers a ListMultipartUploads prefix only when it is a
// whole key.
func TestS3ListAndAbortUploads(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *testenv.S3Server{"versity": testenv.StartVersity, "minio": testenv.StartMinIO} {
		t.Run(name, func(t *testing.T) { testListAndAbortUploads(t, start(t)) })
	}
}

func testListAndAbortUploads(t *testing.T, v *testenv.S3Server) {
	useGateway(t, v)
	bucket := newBucket(t, v, false)
	b := newBackend(t, v, s3.Config{Bucket: bucket, Prefix: "repo"})
	client := v.Client(t)
	before := time.Now().Add(-time.Minute)
	for _, key := range []string{"repo/backups/20261125T103000Z/base.tar.00000.lz4", "repository-other/x", "other/y"} {
		if _, err := client.CreateMultipartUpload(t.Context(), &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Fatalf("CreateMultipartUpload %s: %v", key, err)
		}
	}
	var got []storage.Upload
	list := func() {
		got = nil
		if err := b.ListUploads(t.Context(), "", func(u storage.Upload) error { got = append(got, u); return nil }); err != nil {
			t.Fatalf("ListUploads: %v", err)
		}
	}
	list()
	if len(got) != 1 || got[0].Key != "backups/20261125T103000Z/base.tar.00000.lz4" || got[0].ID == "" || got[0].Started.Before(before) {
		t.Fatalf("ListUploads: got %+v, want the one upload under the prefix, with its id and start", got)
	}
	stale, ok, err := storage.StaleUploads(t.Context(), storage.Stack(b, storage.StackOptions{}), "", time.Hour, time.Now())
	if err != nil || !ok || len(stale) != 0 {
		t.Errorf("StaleUploads(1h) through the stack: got %+v, %v, %v; want none (the upload is new), true, nil", stale, ok, err)
	}
	stale, _, _ = storage.StaleUploads(t.Context(), storage.Stack(b, storage.StackOptions{}), "", 0, time.Now())
	if len(stale) != 1 {
		t.Errorf("StaleUploads(0): got %+v, want the upload", stale)
	}
	if err := b.AbortUpload(t.Context(), got[0]); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	if err := b.AbortUpload(t.Context(), got[0]); err != nil {
		t.Errorf("AbortUpload of an upload already aborted: got %v, want nil", err)
	}
	list()
	if len(got) != 0 {
		t.Errorf("ListUploads after the abort: got %+v, want none", got)
	}
	out, err := client.ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil || len(out.Uploads) != 2 {
		t.Errorf("uploads outside the repository: got %d (%v), want both left alone", len(out.Uploads), err)
	}
}

// flakyAbort is failingServer whose first aborts fail too (503), as the
// outage that failed an upload may fail its abort.
type flakyAbort struct {
	*failingServer
	failures atomic.Int32
}

func (f *flakyAbort) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete && r.URL.Query().Has("uploadId") && f.failures.Add(-1) >= 0 {
		f.mu.Lock()
		f.counts["abort"]++
		f.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.failingServer.ServeHTTP(w, r)
}

// TestAbortRetriedThroughOutage: the abort of a failed multipart upload is
// retried past the SDK's attempts while the server is failing, so a short
// outage leaves no upload behind.
func TestAbortRetriedThroughOutage(t *testing.T) {
	f := &flakyAbort{failingServer: &failingServer{counts: map[string]int{}}}
	f.failures.Store(4)                                                                // more than one call's SDK attempts (3)
	b := newAgainstWith(t, f, func(c *s3.Config) { c.RequestRetryTime = time.Second }) // the parts fail soon
	body := onlyReader{strings.NewReader(strings.Repeat("x", s3.MinPartSize+1))}
	if err := b.Put(context.Background(), "k", body, storage.PutOptions{Size: -1}); err == nil {
		t.Fatal("Put against a server failing every part: got nil, want an error")
	}
	if got := f.count("abort"); got != 5 {
		t.Errorf("abort requests: got %d, want 5 (4 refused, then the one that succeeds)", got)
	}
}

// slowCreateServer answers CreateMultipartUpload only after a while (the
// upload made at once), takes any part, and records aborts.
type slowCreateServer struct {
	delay   time.Duration
	aborted atomic.Int32
}

func (s *slowCreateServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		time.Sleep(s.delay)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>big</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`))
	case r.Method == http.MethodPut && q.Has("partNumber"):
		io.Copy(io.Discard, r.Body)
		w.Header().Set("ETag", `"p"`)
	case r.Method == http.MethodDelete && q.Get("uploadId") == "u1":
		s.aborted.Add(1)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusInternalServerError)
	}
}

// TestS3CancelDuringCreateAborts: a Put cancelled while the server is
// still answering its CreateMultipartUpload hears the answer (within a
// grace) and aborts the upload the server made, instead of leaving it.
func TestS3CancelDuringCreateAborts(t *testing.T) {
	srv := &slowCreateServer{delay: 500 * time.Millisecond}
	// Two part buffers: the second fills while the create is answered.
	b := newAgainstWith(t, srv, func(c *s3.Config) { c.Concurrency = 2 })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancelled once the second part begins to fill, while the create
	// (sent when the first part is full) waits for its answer.
	r := &cancellingReader{r: bytes.NewReader(randomBytes(5, 3*s3.MinPartSize)), n: s3.MinPartSize + 1<<20, cancel: cancel}
	err := b.Put(ctx, "big", r, storage.PutOptions{Size: -1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put cancelled midway: got %v, want context.Canceled", err)
	}
	if got := srv.aborted.Load(); got != 1 {
		t.Fatalf("aborts of the upload the server made: %d, want 1", got)
	}
}

// stragglerServer takes a multipart upload whose parts answer slowly, and
// keeps listing it after the first abort, as an S3 server does when a part
// upload still in progress lands after the abort; the second abort ends it.
type stragglerServer struct {
	mu     sync.Mutex
	aborts int
	lists  int
}

func (s *stragglerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>big</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`))
	case r.Method == http.MethodPut && q.Has("partNumber"):
		s.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		time.Sleep(300 * time.Millisecond)
		s.mu.Lock()
		w.Header().Set("ETag", `"p"`)
	case r.Method == http.MethodDelete && q.Get("uploadId") == "u1":
		s.aborts++
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && q.Has("uploads"):
		s.lists++
		w.Header().Set("Content-Type", "application/xml")
		uploads := ""
		if s.aborts < 2 {
			uploads = `<Upload><Key>big</Key><UploadId>u1</UploadId></Upload>`
		}
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>bucket</Bucket><IsTruncated>false</IsTruncated>` + uploads + `</ListMultipartUploadsResult>`))
	default:
		w.WriteHeader(http.StatusInternalServerError)
	}
}

// TestS3AbortRepeatedWhileListed: a cancelled Put whose part requests were
// cut off looks for its upload once aborted and aborts it again while the
// server still lists it, so no straggling part leaves an upload behind.
func TestS3AbortRepeatedWhileListed(t *testing.T) {
	srv := &stragglerServer{}
	b := newAgainstWith(t, srv, func(c *s3.Config) { c.Concurrency = 2 })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancelled while the first part's request waits for its answer.
	r := &cancellingReader{r: bytes.NewReader(randomBytes(6, 3*s3.MinPartSize)), n: s3.MinPartSize + 1<<20, cancel: cancel}
	if err := b.Put(ctx, "big", r, storage.PutOptions{Size: -1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put cancelled midway: got %v, want context.Canceled", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.aborts != 2 || srv.lists != 2 {
		t.Errorf("aborts and listings: got %d and %d, want 2 and 2 (aborted, still listed, aborted again, gone)", srv.aborts, srv.lists)
	}
}
