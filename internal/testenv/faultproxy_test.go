package testenv

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upstreamBody is what the test upstream answers every request with.
var upstreamBody = strings.Repeat("0123456789", 10_000)

// startUpstream serves upstreamBody and echoes the Host header it got.
func startUpstream(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("Content-Length", strconv.Itoa(len(upstreamBody)))
		io.WriteString(w, upstreamBody)
	}))
	t.Cleanup(s.Close)
	return s
}

// get fetches url with a fresh connection and a short deadline.
func get(url string) (body string, status int, err error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

func TestFaultProxy(t *testing.T) {
	p := StartFaultProxy(t, startUpstream(t).URL)

	if body, _, err := get(p.Endpoint()); err != nil || body != upstreamBody {
		t.Fatalf("through a healthy proxy: err %v, %d bytes", err, len(body))
	}

	p.Stall(t)
	start := time.Now()
	if _, _, err := get(p.Endpoint()); err == nil || time.Since(start) < time.Second {
		t.Fatalf("stalled proxy: want a timeout after 2s, got err %v after %v", err, time.Since(start))
	}
	p.Heal(t)

	p.CutAfter(t, 1000)
	if body, _, err := get(p.Endpoint()); err == nil && body == upstreamBody {
		t.Fatal("cut proxy delivered the whole body")
	}
	p.Heal(t)

	p.Refuse(t)
	if _, _, err := get(p.Endpoint()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("refusing proxy: want connection refused, got %v", err)
	}
	p.Heal(t)
	if body, _, err := get(p.Endpoint()); err != nil || body != upstreamBody {
		t.Fatalf("after Heal: err %v, %d bytes", err, len(body))
	}
}

func TestHTTPFaultProxy(t *testing.T) {
	p := StartHTTPFaultProxy(t, startUpstream(t).URL)
	host := strings.TrimPrefix(p.Endpoint, "http://")

	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(p.Endpoint + "/bucket/key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Seen-Host"); got != host {
		t.Fatalf("upstream saw Host %q, want the proxy's %q (signatures would not verify)", got, host)
	}

	p.Add(HTTPFault{Method: "GET", Path: "/bucket/", Times: 2, Status: 503, Code: "SlowDown"})
	for i := range 2 {
		if body, status, _ := get(p.Endpoint + "/bucket/key"); status != 503 || !strings.Contains(body, "<Code>SlowDown</Code>") {
			t.Fatalf("burst request %d: status %d body %q", i, status, body)
		}
	}
	if _, status, err := get(p.Endpoint + "/bucket/key"); err != nil || status != 200 {
		t.Fatalf("after the burst: status %d err %v", status, err)
	}
	if p.Broken() != 2 {
		t.Fatalf("Broken() = %d, want 2", p.Broken())
	}
	p.Clear()

	p.Add(CutBody("GET", "", 500))
	if body, _, err := get(p.Endpoint + "/k"); !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 500 {
		t.Fatalf("cut body: want 500 bytes and unexpected EOF, got %d bytes, %v", len(body), err)
	}
	p.Clear()

	p.Add(HTTPFault{LengthDelta: -10})
	if body, _, err := get(p.Endpoint + "/k"); err != nil || len(body) != len(upstreamBody)-10 {
		t.Fatalf("short Content-Length: want %d bytes, got %d, %v", len(upstreamBody)-10, len(body), err)
	}
	p.Clear()

	p.Add(HTTPFault{StallAfterHeaders: true})
	start := time.Now()
	if _, _, err := get(p.Endpoint + "/k"); err == nil || time.Since(start) < time.Second {
		t.Fatalf("stall after headers: want a timeout, got %v after %v", err, time.Since(start))
	}
}
