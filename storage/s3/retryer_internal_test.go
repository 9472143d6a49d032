package s3

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/logging"
	"github.com/walvault/walvault/storage"
)

// TestRetryerHasNoQuota: however many requests an outage fails, each keeps
// its SDK attempts; the SDK's default quota (500 tokens, 5 a retry) would
// refuse the 101st retry.
func TestRetryerHasNoQuota(t *testing.T) {
	r := newRetryer()
	outage := errors.New("connection reset by peer")
	for i := range 1000 {
		if _, err := r.GetRetryToken(t.Context(), outage); err != nil {
			t.Fatalf("retry %d refused: %v", i+1, err)
		}
	}
}

// TestSDKLoggerQuietsBodyDrains: the SDK's warning that a broken body
// could not be drained is no warning in walvault's log (walvault retries
// the read itself); its other warnings stay warnings.
func TestSDKLoggerQuietsBodyDrains(t *testing.T) {
	var out bytes.Buffer
	l := sdkLogger{slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Logf(logging.Warn, "failed to discard remaining HTTP response body, this may affect connection reuse: %v", io.ErrUnexpectedEOF)
	l.Logf(logging.Warn, "Response has no supported checksum. Not validating response payload.")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[1], "level=WARN") {
		t.Fatalf("logged:\n%s\nwant the body drain at debug, the other warning as a warning", out.String())
	}
}

// lostAnswerServer stores the first PUT of a key and cuts the connection
// before answering (a reset after the server committed); a PUT over a
// stored key is refused 412, as If-None-Match wants; HEAD answers with
// the stored metadata.
type lostAnswerServer struct {
	mu   sync.Mutex
	meta map[string]http.Header
}

func (s *lostAnswerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPut:
		io.Copy(io.Discard, r.Body)
		if _, ok := s.meta[r.URL.Path]; ok {
			w.WriteHeader(http.StatusPreconditionFailed)
			w.Write([]byte(`<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>`))
			return
		}
		h := http.Header{}
		for k, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") {
				h[k] = v
			}
		}
		s.meta[r.URL.Path] = h
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	case http.MethodHead:
		h, ok := s.meta[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		maps.Copy(w.Header(), h)
		w.Header().Set("Content-Length", "0")
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

// TestPutAnswerLost: a conditional create whose first attempt the server
// stored, the answer lost, meets its own object on the next attempt: a
// success, by the token it stored; another put's object stays a conflict.
func TestPutAnswerLost(t *testing.T) {
	srv := httptest.NewServer(&lostAnswerServer{meta: map[string]http.Header{}})
	defer srv.Close()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	b, err := New(t.Context(), Config{Bucket: "bucket", Endpoint: srv.URL, PathStyle: true, Region: "us-east-1", PartSize: MinPartSize, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	// As the commands stack it: the retry decorator sends the put again.
	rb := storage.WithRetry(b, storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}, nil)
	body := []byte("walvault-backup.json")
	put := func() error {
		return rb.Put(t.Context(), "k", bytes.NewReader(body), storage.PutOptions{IfNotExists: true, Size: int64(len(body)), Metadata: map[string]string{"sha256": "x"}})
	}
	if err := put(); err != nil {
		t.Fatalf("a create whose answer was lost, stored: %v; want success", err)
	}
	if err := put(); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("another put over it: %v; want ErrExists", err)
	}
}
