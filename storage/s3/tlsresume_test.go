package s3_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// TestTLSSessionsResume: against a server that closes the connection after
// every answer, as some S3 servers and load balancers do, each later
// request's new TLS connection resumes the session instead of a full
// handshake (no certificate signature and checks again).
func TestTLSSessionsResume(t *testing.T) {
	var full, resumed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Length", "0")
	}))
	srv.TLS = &tls.Config{VerifyConnection: func(cs tls.ConnectionState) error {
		if cs.DidResume {
			resumed.Add(1)
		} else {
			full.Add(1)
		}
		return nil
	}}
	srv.StartTLS()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newAgainstServer(t, srv, func(c *s3.Config) { c.CABundle = ca })
	for range 3 {
		if _, err := b.Stat(t.Context(), "k"); err != nil {
			t.Fatalf("Stat over TLS: %v", err)
		}
	}
	// The first Stat's connection (and a bucket check the backend may make
	// beside it) need a full handshake; the next two Stats come after a
	// session was set up, so both resume.
	if f, r := full.Load(), resumed.Load(); r < 2 {
		t.Errorf("3 Stats in a row, each on a new connection: %d full handshakes and %d resumed, want at least the last 2 resumed", f, r)
	}
}

// TestSlowUploadSaysSo: an upload the link carries too slowly to finish
// before the deadline is not "no answer": the error says it was still
// sending, how far it got, and to raise --timeout.
func TestSlowUploadSaysSo(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 16<<10)
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); { // a slow link: 16 KiB every 50 ms
			if _, err := r.Body.Read(buf); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	srv.StartTLS()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newAgainstServer(t, srv, func(c *s3.Config) { c.CABundle = ca })
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	body := bytes.Repeat([]byte("x"), 16<<20) // more than the socket buffers hold
	err := b.Put(ctx, "k", bytes.NewReader(body), storage.PutOptions{Size: int64(len(body))})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "was still sending when the deadline came") || !strings.Contains(err.Error(), "raise --timeout") {
		t.Fatalf("Put over a slow link: %v; want the deadline, saying the upload was still sending", err)
	}
}
