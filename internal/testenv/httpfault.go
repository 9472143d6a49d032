package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// HTTPFaultProxy is an HTTP reverse proxy to a plain-HTTP S3 server that
// breaks chosen responses the way S3 servers and the networks in front of
// them do: error bursts (503 SlowDown, 500), a body cut short, a
// Content-Length that does not match the body, headers followed by silence.
// The TCP-level faults (stall, reset, refuse) are FaultProxy's. Requests
// keep their Host header, so SigV4 signatures made for the proxy's address
// still verify upstream. It is stopped in t.Cleanup.
type HTTPFaultProxy struct {
	// Endpoint is the proxy's http:// URL, for WALVAULT_S3_ENDPOINT.
	Endpoint string

	upstream  string
	transport *http.Transport

	mu     sync.Mutex
	faults []*HTTPFault
}

// HTTPFault says which requests to break and how. Exactly one of Status,
// BodyBytes >= 0, LengthDelta != 0 or StallAfterHeaders should be set.
type HTTPFault struct {
	Method string // "" matches every method
	Path   string // the request path must contain it; "" matches every path
	Times  int    // how many matching requests to break; 0 = all of them

	Status int    // answer this status with an S3 error document instead of forwarding
	Code   string // that document's error code, e.g. "SlowDown"

	// BodyBytes >= 0 forwards the response with its full Content-Length but
	// closes the connection after this many body bytes. Set it with
	// CutBody; the zero value means off.
	BodyBytes int64
	cutBody   bool

	// LengthDelta declares a Content-Length this much off the real one and
	// sends no more than it declares: > 0 ends the body early against its
	// header, < 0 gives a short body whose header agrees with it.
	LengthDelta int64

	// StallAfterHeaders forwards the response headers, then sends nothing
	// until the client gives up.
	StallAfterHeaders bool

	hits int
}

// CutBody returns a fault that cuts matching responses after n body bytes.
func CutBody(method, path string, n int64) HTTPFault {
	return HTTPFault{Method: method, Path: path, BodyBytes: n, cutBody: true}
}

// StartHTTPFaultProxy starts a proxy to upstream (an http:// URL) on a free
// loopback port.
func StartHTTPFaultProxy(t testing.TB, upstream string) *HTTPFaultProxy {
	t.Helper()
	if !strings.HasPrefix(upstream, "http://") {
		t.Fatalf("HTTP fault proxy: upstream %q must be a plain http:// URL", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &HTTPFaultProxy{
		Endpoint:  "http://" + ln.Addr().String(),
		upstream:  strings.TrimSuffix(upstream, "/"),
		transport: &http.Transport{DisableCompression: true},
	}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		p.transport.CloseIdleConnections()
	})
	return p
}

// Add breaks the requests f matches, from now on.
func (p *HTTPFaultProxy) Add(f HTTPFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &f)
}

// Clear removes every fault.
func (p *HTTPFaultProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Broken reports how many requests the faults have broken so far, so a
// test can tell its fault was actually hit.
func (p *HTTPFaultProxy) Broken() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.faults {
		n += f.hits
	}
	return n
}

// match returns a copy of the first fault that applies to r, counting the
// hit, or nil.
func (p *HTTPFaultProxy) match(r *http.Request) *HTTPFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.Method != "" && f.Method != r.Method {
			continue
		}
		if f.Path != "" && !strings.Contains(r.URL.Path, f.Path) {
			continue
		}
		if f.Times > 0 && f.hits >= f.Times {
			continue
		}
		f.hits++
		c := *f
		return &c
	}
	return nil
}

func (p *HTTPFaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.match(r)
	if f != nil && f.Status != 0 {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test's fault proxy</Message></Error>`, f.Code)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	out.ContentLength = r.ContentLength
	out.TransferEncoding = r.TransferEncoding
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	limit := int64(-1) // body bytes to send; -1 = all
	if f != nil {
		switch {
		case f.cutBody:
			limit = f.BodyBytes
		case f.LengthDelta != 0 && resp.ContentLength >= 0:
			declared := max(resp.ContentLength+f.LengthDelta, 0)
			w.Header().Set("Content-Length", strconv.FormatInt(declared, 10))
			limit = min(declared, resp.ContentLength)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if f != nil && f.StallAfterHeaders {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		<-r.Context().Done()
		return
	}
	if limit < 0 {
		io.Copy(w, resp.Body)
		return
	}
	io.CopyN(w, resp.Body, limit)
	// Returning with less written than the declared length makes net/http
	// close the connection, so the client sees the body end early.
}
