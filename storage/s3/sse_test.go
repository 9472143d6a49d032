package s3_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// recordingServer accepts single and multipart uploads and records, per
// request kind, the server-side encryption headers it was sent.
type recordingServer struct {
	mu     sync.Mutex
	seen   map[string][2]string // kind -> SSE, KMS key id
	expect map[string]string    // kind -> Expect header
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
	if r.expect != nil {
		r.expect[kind] = req.Header.Get("Expect")
	}
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
			b := newAgainstWith(t, rec, func(c *s3.Config) { c.SSE, c.SSEKMSKeyID = tc.sse, tc.key })
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

// TestUploadsSendNoExpectContinue: uploads over 2 MB (a WAL segment, every
// part of a base backup) are sent without "Expect: 100-continue", which
// would make each wait a round trip for the server's interim answer before
// its body.
func TestUploadsSendNoExpectContinue(t *testing.T) {
	rec := &recordingServer{seen: map[string][2]string{}, expect: map[string]string{}}
	b := newAgainstWith(t, rec, func(*s3.Config) {})
	ctx := context.Background()
	body := bytes.Repeat([]byte("z"), 3<<20)
	if err := b.Put(ctx, "segment", bytes.NewReader(body), storage.PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("y"), 2*int(s3.MinPartSize)+1)
	if err := b.Put(ctx, "big", bytes.NewReader(big), storage.PutOptions{Size: -1}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{http.MethodPut, "part"} {
		got, ok := rec.expect[kind]
		if !ok {
			t.Fatalf("no %s request seen (saw %v)", kind, rec.seen)
		}
		if got != "" {
			t.Errorf("%s: sent Expect: %q, want none", kind, got)
		}
	}
}
