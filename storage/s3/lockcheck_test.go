package s3_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// lockServer answers what a wal-push asks: HeadBucket 200, a HEAD of a key
// 404 (but only once it has seen the Object Lock question, or waited
// two seconds: long for a loaded machine, and only the case without the
// early question waits them), the Object Lock question with lockAnswer,
// and a PUT 200.
type lockServer struct {
	lockAnswer      func(w http.ResponseWriter)
	mu              sync.Mutex
	lockQuestions   int
	headBeforeLock  int // HEADs answered before any Object Lock question came
	puts            int
	putsBeforeLock  int
	sawLockQuestion chan struct{}
}

func (s *lockServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucketOnly := strings.Trim(r.URL.Path, "/") == "bucket"
	switch {
	case r.Method == http.MethodGet && bucketOnly && r.URL.Query().Has("object-lock"):
		s.mu.Lock()
		if s.lockQuestions == 0 {
			close(s.sawLockQuestion)
		}
		s.lockQuestions++
		s.mu.Unlock()
		s.lockAnswer(w)
	case r.Method == http.MethodHead && bucketOnly:
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodHead:
		select {
		case <-s.sawLockQuestion:
		case <-time.After(2 * time.Second):
			s.mu.Lock()
			s.headBeforeLock++
			s.mu.Unlock()
		}
		w.WriteHeader(http.StatusNotFound)
	case r.Method == http.MethodPut:
		s.mu.Lock()
		s.puts++
		if s.lockQuestions == 0 {
			s.putsBeforeLock++
		}
		s.mu.Unlock()
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

func lockEnabled(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>`))
}

func lockNotConfigured(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>ObjectLockConfigurationNotFoundError</Code><Message>Object Lock configuration does not exist for this bucket</Message></Error>`))
}

// pushLocked does what a wal-push does against the server: a Stat of the
// key (absent), then a locked create of it.
func pushLocked(t *testing.T, b storage.Backend) error {
	t.Helper()
	if _, err := b.Stat(context.Background(), "seg"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat of an absent key: got %v, want ErrNotFound", err)
	}
	body := []byte("segment")
	return b.Put(context.Background(), "seg", bytes.NewReader(body), storage.PutOptions{
		IfNotExists: true, Size: int64(len(body)),
		Retention: &storage.Retention{Mode: storage.Governance, Until: time.Now().Add(24 * time.Hour)},
	})
}

// TestObjectLockAskedBesideFirstHead: with Config.ObjectLock, the bucket's
// Object Lock is asked while the first HEAD is in flight, once, and
// before the locked PUT; without it, only the locked Put asks, after.
func TestObjectLockAskedBesideFirstHead(t *testing.T) {
	for _, early := range []bool{true, false} {
		s := &lockServer{lockAnswer: lockEnabled, sawLockQuestion: make(chan struct{})}
		b := newAgainstWith(t, s, func(c *s3.Config) { c.ObjectLock = early })
		if err := pushLocked(t, b); err != nil {
			t.Fatalf("ObjectLock %v: locked Put: %v", early, err)
		}
		s.mu.Lock()
		if s.lockQuestions != 1 || s.puts != 1 || s.putsBeforeLock != 0 {
			t.Errorf("ObjectLock %v: %d Object Lock questions, %d PUTs (%d before the question), want 1 and 1 (0)", early, s.lockQuestions, s.puts, s.putsBeforeLock)
		}
		wantLate := 0 // HEADs answered before the question came
		if !early {
			wantLate = 1
		}
		if s.headBeforeLock != wantLate {
			t.Errorf("ObjectLock %v: %d HEADs answered before the Object Lock question came, want %d", early, s.headBeforeLock, wantLate)
		}
		s.mu.Unlock()
	}
}

// TestObjectLockEarlyRefusal: asked early, a bucket without Object Lock
// still refuses the locked Put before anything is stored.
func TestObjectLockEarlyRefusal(t *testing.T) {
	s := &lockServer{lockAnswer: lockNotConfigured, sawLockQuestion: make(chan struct{})}
	b := newAgainstWith(t, s, func(c *s3.Config) { c.ObjectLock = true })
	err := pushLocked(t, b)
	if !errors.Is(err, storage.ErrUnsupported) || !strings.Contains(err.Error(), "has no Object Lock") {
		t.Errorf("locked Put on a bucket without Object Lock: got %v, want ErrUnsupported naming it", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.puts != 0 {
		t.Errorf("%d PUTs reached a bucket without Object Lock, want none", s.puts)
	}
}
