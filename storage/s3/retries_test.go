package s3_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// failingServer answers 500 to every request but the start and the abort
// of a multipart upload, and counts the requests by kind.
type failingServer struct {
	mu     sync.Mutex
	counts map[string]int
}

func (f *failingServer) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[kind]
}

func (f *failingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind := r.Method
	switch {
	case r.Method == http.MethodHead && strings.Trim(r.URL.Path, "/") == "bucket":
		kind = "HeadBucket" // not a HEAD of a key
	case q.Has("uploads"):
		kind = "create"
	case q.Has("partNumber"):
		kind = "part " + q.Get("partNumber")
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		kind = "abort"
	}
	f.mu.Lock()
	f.counts[kind]++
	f.mu.Unlock()
	switch kind {
	case "create":
		w.Header().Set("Content-Type", "application/xml")
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`))
	case "abort":
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusInternalServerError)
	}
}

func newFailing(t *testing.T) (*failingServer, *s3.Backend) {
	t.Helper()
	f := &failingServer{counts: map[string]int{}}
	return f, newAgainst(t, f)
}

// newAgainst builds the real client of storage/s3 against a fake S3
// endpoint served by h, with static test credentials and no AWS
// configuration of the machine.
func newAgainst(t *testing.T, h http.Handler) *s3.Backend {
	t.Helper()
	return newAgainstWith(t, h, func(*s3.Config) {})
}

// newAgainstWith is newAgainst with the configuration changed by edit.
func newAgainstWith(t *testing.T, h http.Handler, edit func(*s3.Config)) *s3.Backend {
	t.Helper()
	return newAgainstServer(t, httptest.NewServer(h), edit)
}

// newAgainstServer is newAgainstWith against a server already started.
func newAgainstServer(t *testing.T, srv *httptest.Server, edit func(*s3.Config)) *s3.Backend {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Cleanup(srv.Close)
	cfg := s3.Config{Bucket: "bucket", Endpoint: srv.URL, PathStyle: true, Region: "us-east-1", PartSize: s3.MinPartSize, Concurrency: 1}
	edit(&cfg)
	b, err := s3.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOneRetryBudget: under walvault's retry decorator a failing call makes
// as many requests as the decorator's policy allows, not that times the
// SDK's attempts.
func TestOneRetryBudget(t *testing.T) {
	f, b := newFailing(t)
	policy := storage.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
	if _, err := storage.WithRetry(b, policy, nil).Stat(context.Background(), "k"); err == nil {
		t.Fatal("Stat against a server answering 500: got nil, want an error")
	}
	if got := f.count(http.MethodHead); got != policy.MaxAttempts {
		t.Errorf("HEAD requests for one Stat: got %d, want %d (the decorator's attempts only)", got, policy.MaxAttempts)
	}
}

// TestMultipartPartRetries: a part of a streamed upload, which the retry
// decorator cannot redo, is sent again (the SDK's attempts, again and
// again) until RequestRetryTime has passed since its first attempt; the
// failed upload is then aborted.
func TestMultipartPartRetries(t *testing.T) {
	f := &failingServer{counts: map[string]int{}}
	b := newAgainstWith(t, f, func(c *s3.Config) { c.RequestRetryTime = 1500 * time.Millisecond })
	body := onlyReader{strings.NewReader(strings.Repeat("x", s3.MinPartSize+1))}
	start := time.Now()
	err := b.Put(context.Background(), "k", body, storage.PutOptions{Size: -1})
	if err == nil || !strings.Contains(err.Error(), "sent again for") {
		t.Fatalf("Put against a server failing every part: got %v, want an error saying how long the part was sent again", err)
	}
	if took := time.Since(start); took < 500*time.Millisecond || took > 10*time.Second {
		t.Errorf("Put failed after %v, want about its RequestRetryTime of 1.5s", took)
	}
	if got := f.count("part 1"); got <= 3 {
		t.Errorf("attempts at part 1: got %d, want more than the SDK's 3", got)
	}
	if got := f.count("abort"); got != 1 {
		t.Errorf("aborts: got %d, want 1", got)
	}
}

// outageServer is a multipart-capable S3 that refuses every request of an
// upload (503) until its outage ends.
type outageServer struct {
	mu    sync.Mutex
	until time.Time
	parts int
}

func (o *outageServer) outageFor(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.until = time.Now().Add(d)
}

func (o *outageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o.mu.Lock()
	down := time.Now().Before(o.until)
	o.mu.Unlock()
	if down && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	switch {
	case q.Has("uploads"):
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`))
	case q.Has("partNumber"):
		o.mu.Lock()
		o.parts++
		o.mu.Unlock()
		w.Header().Set("ETag", `"e"`)
	case q.Has("uploadId") && r.Method == http.MethodPost:
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><ETag>"e-2"</ETag></CompleteMultipartUploadResult>`))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// TestMultipartRidesOutAnOutage: an outage of a few seconds, longer than
// the SDK's three attempts last, does not fail an upload from a stream (a
// backup of hours), multipart or short: its requests are sent again
// within RequestRetryTime, as the retry decorator cannot redo the Put.
func TestMultipartRidesOutAnOutage(t *testing.T) {
	o := &outageServer{}
	o.outageFor(3 * time.Second)
	b := newAgainstWith(t, o, func(c *s3.Config) { c.RequestRetryTime = time.Minute })
	body := onlyReader{strings.NewReader(strings.Repeat("x", 2*s3.MinPartSize+1))}
	if err := b.Put(context.Background(), "k", body, storage.PutOptions{Size: -1}); err != nil {
		t.Fatalf("Put through a 3s outage: %v", err)
	}
	o.mu.Lock()
	parts := o.parts
	o.mu.Unlock()
	if parts != 3 {
		t.Errorf("parts stored: %d, want 3", parts)
	}
	o.outageFor(3 * time.Second)
	small := onlyReader{strings.NewReader("the last, short part of a backup archive")}
	if err := b.Put(context.Background(), "k2", small, storage.PutOptions{Size: -1}); err != nil {
		t.Fatalf("Put of a short stream through a 3s outage: %v", err)
	}
}
