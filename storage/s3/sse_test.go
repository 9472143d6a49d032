package s3_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// recordingServer accepts single and multipart uploads and records, per
// request kind, the server-side encryption headers it was sent.
type recordingServer struct {
	mu   sync.Mutex
	seen map[string][2]string // kind -> SSE, KMS key id
}

func (r *recordingServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	io.Copy(io.Discard, req.Body)
	q := req.URL.Query()
	kind := req.Method
	switch {
	case req.Method == http.MethodPost && q.Has("uploads"):
		kind = "create"
	case q.Has("partNumber"):
		kind = "part"
	case req.Method == http.MethodPost && q.Has("uploadId"):
		kind = "complete"
	}
	r.mu.Lock()
	r.seen[kind] = [2]string{req.Header.Get("X-Amz-Server-Side-Encryption"), req.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")}
	r.mu.Unlock()
	w.Header().Set("ETag", `"e"`)
	switch kind {
	case "create":
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`))
	case "complete":
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>`))
	}
}

// TestServerSideEncryptionOnEveryWrite: with SSE configured, a PutObject
// and a multipart upload's start carry it, through the real SDK client.
func TestServerSideEncryptionOnEveryWrite(t *testing.T) {
	for _, tc := range []struct{ sse, key string }{{"AES256", ""}, {"aws:kms", "arn:aws:kms:us-east-1:1:key/k"}} {
		t.Run(tc.sse, func(t *testing.T) {
			rec := &recordingServer{seen: map[string][2]string{}}
			b := newAgainstWith(t, rec, s3.Config{SSE: tc.sse, SSEKMSKeyID: tc.key})
			ctx := context.Background()
			if err := b.Put(ctx, "small", bytes.NewReader([]byte("x")), storage.PutOptions{Size: 1}); err != nil {
				t.Fatal(err)
			}
			big := bytes.Repeat([]byte("y"), int(s3.MinPartSize)+1)
			if err := b.Put(ctx, "big", bytes.NewReader(big), storage.PutOptions{Size: -1}); err != nil {
				t.Fatal(err)
			}
			for _, kind := range []string{http.MethodPut, "create"} {
				if got := rec.seen[kind]; got != [2]string{tc.sse, tc.key} {
					t.Errorf("%s: sent SSE %q, KMS key %q; want %q, %q", kind, got[0], got[1], tc.sse, tc.key)
				}
			}
		})
	}
	if _, err := s3.New(context.Background(), s3.Config{Bucket: "bucket", SSE: "rot13"}); err == nil {
		t.Error("SSE rot13 accepted")
	}
	if _, err := s3.New(context.Background(), s3.Config{Bucket: "bucket", SSE: "AES256", SSEKMSKeyID: "k"}); err == nil {
		t.Error("a KMS key with AES256 accepted")
	}
}

// newAgainstWith is newAgainst with cfg's SSE settings.
func newAgainstWith(t *testing.T, h http.Handler, sse s3.Config) *s3.Backend {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	srv := newServer(t, h)
	b, err := s3.New(t.Context(), s3.Config{Bucket: "bucket", Endpoint: srv, PathStyle: true, Region: "us-east-1", PartSize: s3.MinPartSize, Concurrency: 1, SSE: sse.SSE, SSEKMSKeyID: sse.SSEKMSKeyID})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
