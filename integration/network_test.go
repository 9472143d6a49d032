package integration

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// stalledServer accepts connections and never answers: the S3 endpoint a
// hung load balancer or a frozen server presents.
func stalledServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestStalledStorageNeverHangs: archive_command and restore_command must
// fail within their deadline when the storage stops answering, so
// PostgreSQL can retry (push) or stop recovery (fetch).
func TestStalledStorageNeverHangs(t *testing.T) {
	seg := realSegment(t)
	env := []string{
		"WALVAULT_REPO=s3://stalled/x",
		"WALVAULT_S3_ENDPOINT=" + stalledServer(t),
		"WALVAULT_S3_PATH_STYLE=true",
		"WALVAULT_S3_ALLOW_HTTP=true",
		"WALVAULT_TIMEOUT=3s",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test-secret", "AWS_REGION=us-east-1",
	}
	push := walvault(t, env, "wal-push", seg)
	if push.code != 1 || push.elapsed > 10*time.Second {
		t.Fatalf("wal-push against a stalled server: want exit 1 within the 3s deadline, got %v", push)
	}
	fetch := walvault(t, env, "wal-fetch", filepath.Base(seg), filepath.Join(t.TempDir(), "x"))
	if fetch.code != 200 || fetch.elapsed > 10*time.Second {
		t.Fatalf("wal-fetch against a stalled server: want exit 200 within the 3s deadline, got %v", fetch)
	}
}

// TestS3OverTLS uses the CA bundle setting, and fails clearly without it.
func TestS3OverTLS(t *testing.T) {
	gw := testenv.StartVersityTLS(t)
	gw.CreateBucket(t, "tls-bucket", false)
	seg := realSegment(t)
	env := append(gw.Env(), "WALVAULT_REPO=s3://tls-bucket/db")
	if valueOf(env, "WALVAULT_S3_CA_BUNDLE") == "" || !strings.HasPrefix(gw.Endpoint, "https://") {
		t.Fatalf("the TLS gateway should give an https endpoint and a CA bundle: %s %v", gw.Endpoint, env)
	}
	if res := walvault(t, env, "wal-push", seg); res.code != 0 {
		t.Fatalf("push over TLS with the CA bundle: %v", res)
	}
	dest := filepath.Join(t.TempDir(), "x")
	if res := walvault(t, env, "wal-fetch", filepath.Base(seg), dest); res.code != 0 {
		t.Fatalf("fetch over TLS with the CA bundle: %v", res)
	}
	var noCA []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "WALVAULT_S3_CA_BUNDLE=") {
			noCA = append(noCA, kv)
		}
	}
	res := walvault(t, noCA, "wal-push", seg)
	if res.code != 1 || !strings.Contains(res.stderr, "certificate") {
		t.Fatalf("without the CA bundle: want exit 1 and a certificate error, got %v", res)
	}
}
