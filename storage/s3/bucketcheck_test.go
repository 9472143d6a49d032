package s3_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
)

// bucketServer answers HeadBucket with bucketStatus (in turn, the last one
// repeated) and a HEAD of any key with 404, but only once it has seen a
// HeadBucket or waited a second: a HeadBucket sent only after the key's
// 404 shows as headBeforeBucket.
type bucketServer struct {
	mu               sync.Mutex
	bucketStatus     []int
	headBuckets      int
	headBeforeBucket int
	sawBucket        chan struct{}
}

func (s *bucketServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodHead {
		w.WriteHeader(http.StatusNotImplemented)
		return
	}
	if strings.Trim(r.URL.Path, "/") == "bucket" {
		s.mu.Lock()
		status := s.bucketStatus[min(s.headBuckets, len(s.bucketStatus)-1)]
		if s.headBuckets == 0 {
			close(s.sawBucket)
		}
		s.headBuckets++
		s.mu.Unlock()
		w.WriteHeader(status)
		return
	}
	select {
	case <-s.sawBucket:
	case <-time.After(time.Second):
		s.mu.Lock()
		s.headBeforeBucket++
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusNotFound)
}

// TestAbsentKeyOneRoundTrip: a HEAD 404 is told from a missing bucket by a
// HeadBucket sent beside the first HEAD, not after its answer, and once
// the bucket was found later 404s ask nothing more.
func TestAbsentKeyOneRoundTrip(t *testing.T) {
	s := &bucketServer{bucketStatus: []int{http.StatusOK}, sawBucket: make(chan struct{})}
	b := newAgainst(t, s)
	for _, key := range []string{"a", "b", "c"} {
		if _, err := b.Stat(context.Background(), key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat(%s): got %v, want ErrNotFound", key, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headBeforeBucket != 0 {
		t.Errorf("%d HEADs answered 404 before any HeadBucket arrived, want the first HeadBucket sent beside the first HEAD", s.headBeforeBucket)
	}
	if s.headBuckets != 1 {
		t.Errorf("HeadBucket requests for three absent keys: got %d, want 1", s.headBuckets)
	}
}

// TestBucketCheckNotKeptWhenUnanswered: a HeadBucket that failed settles
// nothing: the next 404 asks again, and a missing bucket is never "not
// found".
func TestBucketCheckNotKeptWhenUnanswered(t *testing.T) {
	s := &bucketServer{bucketStatus: []int{http.StatusInternalServerError, http.StatusNotFound}, sawBucket: make(chan struct{})}
	b := newAgainst(t, s)
	for i := range 2 {
		_, err := b.Stat(context.Background(), "k")
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat #%d with HeadBucket failing or 404: got %v, want an error that is not ErrNotFound", i+1, err)
		}
	}
	_, err := b.Stat(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !storage.IsPermanent(err) {
		t.Errorf("Stat in a missing bucket: got %v, want the permanent \"bucket does not exist\"", err)
	}
}
