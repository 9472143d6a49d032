package s3_test

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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
