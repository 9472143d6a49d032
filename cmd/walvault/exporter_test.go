package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/walvault/walvault/internal/testenv"
)

func TestExporterHelpNamesItsPort(t *testing.T) {
	code, stdout, _ := walvaultRun(context.Background(), "exporter", "--help")
	if code != 0 || !strings.Contains(stdout, defaultExporterListen) || !strings.Contains(stdout, "9187") {
		t.Fatalf("exporter --help: exit %d\n%s", code, stdout)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9731": true,
		"[::1]:9731":     true,
		"0.0.0.0:9731":   false,
		"[::]:9731":      false,
		"10.1.2.3:9731":  false,
		":9731":          false,
		"localhost:9732": true,
	} {
		if got := loopbackOnly(addr); got != want {
			t.Errorf("loopbackOnly(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestExporterServesUntilCancelled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _, _ := walvaultRun(ctx, "exporter", "--repo", "file://"+t.TempDir(), "--listen", addr, "--refresh", "1s")
		done <- code
	}()
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); strings.Contains(body, "walvault_repository_scan_success 1") {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "walvault_repository_scan_success 1") {
		t.Fatalf("no successful scan served within 10s:\n%s", body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exporter exited %d after cancellation", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exporter did not stop within 10s of cancellation")
	}
}

func TestExporterBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	repo := "file://" + t.TempDir()
	code, _, stderr := walvaultRun(context.Background(), "exporter", "--repo", repo, "--listen", busy.Addr().String())
	if code != exitFailed || !strings.Contains(stderr, "listen on "+busy.Addr().String()) {
		t.Errorf("address in use: exit %d, %s", code, stderr)
	}
	code, _, stderr = walvaultRun(context.Background(), "exporter", "--repo", repo, "--refresh", "10ms", "--listen", "127.0.0.1:"+strconv.Itoa(0))
	if code != exitUsage || !strings.Contains(stderr, "--refresh") {
		t.Errorf("tiny refresh: exit %d, %s", code, stderr)
	}
	badWeb := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(badWeb, []byte("tls_server_config:\n  cert_file: /nonexistent/cert.pem\n  key_file: /nonexistent/key.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = walvaultRun(context.Background(), "exporter", "--repo", repo, "--web-config-file", badWeb, "--listen", "127.0.0.1:"+strconv.Itoa(0))
	if code != exitUsage || !strings.Contains(stderr, "--web-config-file "+badWeb) {
		t.Errorf("web config naming missing certificates: exit %d, %s", code, stderr)
	}
}

// TestExporterTLSAndBasicAuth scrapes an exporter whose web configuration
// file turns on TLS and basic authentication: the right password over
// HTTPS gets the metrics; a wrong or missing one gets 401; plain HTTP to
// the TLS port gets no metrics.
func TestExporterTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	cert, key, ca := testenv.WriteTestCerts(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("right horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	yml := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n", cert, key, hash)
	if err := os.WriteFile(webConfig, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr string
	go func() {
		code, _, errOut := walvaultRun(ctx, "exporter", "--repo", "file://"+t.TempDir(), "--listen", addr, "--refresh", "1s", "--web-config-file", webConfig)
		stderr = errOut
		done <- code
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exporter exited %d:\n%s", code, stderr)
		}
	}()
	get := func(url, user, password string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}

	metrics := "https://" + addr + "/metrics"
	var code int
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(body, "walvault_repository_scan_success 1") {
		time.Sleep(20 * time.Millisecond)
		code, body, err = get(metrics, "prometheus", "right horse")
	}
	if code != http.StatusOK || !strings.Contains(body, "walvault_repository_scan_success 1") {
		t.Fatalf("HTTPS with the right password: %d, %v\n%s", code, err, body)
	}
	for _, c := range []struct{ name, user, password string }{
		{"wrong password", "prometheus", "wrong horse"},
		{"unknown user", "someone", "right horse"},
		{"no credentials", "", ""},
	} {
		code, body, err := get(metrics, c.user, c.password)
		if err != nil || code != http.StatusUnauthorized || strings.Contains(body, "walvault_") {
			t.Errorf("%s: %d, %v, want 401 and no metrics\n%s", c.name, code, err, body)
		}
	}
	code, body, err = get("http://"+addr+"/metrics", "prometheus", "right horse")
	if err == nil && (code == http.StatusOK || strings.Contains(body, "walvault_")) {
		t.Errorf("plain HTTP to the TLS port served metrics: %d\n%s", code, body)
	}
}

// TestExporterRefusesUnparsablePGConn: connection settings that can never
// parse are a usage error at start, not a walvault_pg_up 0 and a log line
// on every scrape (explore24d F1).
func TestExporterRefusesUnparsablePGConn(t *testing.T) {
	code, _, stderr := runCmd(t, "exporter", "--repo", "file://"+t.TempDir(), "--listen", "127.0.0.1:0", "--pg-conn", "host=db port=notaport password= SECRET_P")
	if code != exitUsage || !strings.Contains(stderr, "pg-conn") || strings.Contains(stderr, "SECRET_P") {
		t.Errorf("exporter with an unparsable pg-conn: exit %d, stderr %q; want 2 naming pg-conn, without the password", code, stderr)
	}
}

func TestPasswordsInClear(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		yaml string
		want bool
	}{
		"users, no TLS":         {"basic_auth_users:\n  prom: $2y$10$abc\n", true},
		"users, TLS":            {"tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\nbasic_auth_users:\n  prom: $2y$10$abc\n", false},
		"users, TLS inline":     {"tls_server_config:\n  cert: abc\n  key: def\nbasic_auth_users:\n  prom: x\n", false},
		"users, only a version": {"tls_server_config:\n  min_version: TLS13\nbasic_auth_users:\n  prom: x\n", true},
		"TLS, no users":         {"tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n", false},
		"empty":                 {"", false},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yml")
		if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := passwordsInClear(p); got != tc.want {
			t.Errorf("%s: passwordsInClear = %v, want %v", name, got, tc.want)
		}
	}
	if passwordsInClear(filepath.Join(dir, "missing.yml")) {
		t.Error("a missing file: passwordsInClear = true")
	}
}
