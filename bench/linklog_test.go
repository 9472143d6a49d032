package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// linkLogEnv names the environment variable with a file to which the base
// backup benchmarks log every request that crosses a link (see
// latencyEnv), and each command they time with its output, so the round
// trips of a backup-push or a restore can be read in order. Unset: no log,
// and no logging hop in front of the links.
const linkLogEnv = "WALVAULT_BENCH_LINK_LOG"

// requestLog is the file linkLogEnv names, shared by the logging proxies
// and the timed commands.
type requestLog struct {
	mu sync.Mutex
	w  io.Writer
}

// openRequestLog opens the file linkLogEnv names (appending), or returns
// nil when it is unset.
func openRequestLog(tb testing.TB) *requestLog {
	tb.Helper()
	path := os.Getenv(linkLogEnv)
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatalf("%s: %v", linkLogEnv, err)
	}
	tb.Cleanup(func() { f.Close() })
	return &requestLog{w: f}
}

func (l *requestLog) printf(format string, args ...any) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, time.Now().UTC().Format("15:04:05.000")+" "+format+"\n", args...)
}

// proxy starts a plain HTTP reverse proxy to upstream (a link's endpoint)
// that logs each request when its answer ends: method, path and query,
// status, time from the request to the end of the answer, and bytes each
// way. Requests keep their Host header, so SigV4 signatures made for the
// proxy's address still verify upstream. It returns the proxy's endpoint.
// The hop costs a loopback connection and a copy: the timed figures of a
// logged run are not the benchmark's.
func (l *requestLog) proxy(tb testing.TB, upstream, name string) string {
	tb.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		tb.Fatalf("link log: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("link log: %v", err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 256}
	rp.FlushInterval = -1
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &countingWriter{ResponseWriter: w}
		body := &countingReader{r: r.Body}
		r.Body = body
		rp.ServeHTTP(cw, r)
		target := r.URL.Path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		if len(target) > 160 {
			target = target[:160] + "..."
		}
		l.printf("%s %s %s -> %d in %v (up %d B, down %d B)", name, r.Method, target, cw.status, time.Since(start).Round(time.Millisecond/10), body.n, cw.n)
	})}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// command logs a timed command's start.
func (l *requestLog) command(args []string) {
	l.printf("--- run: %s", strings.Join(args, " "))
}

// output logs a timed command's end and output.
func (l *requestLog) output(elapsed time.Duration, out string, err error) {
	l.printf("--- end in %v (error: %v); output:\n%s", elapsed.Round(time.Millisecond), err, out)
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Flush keeps the reverse proxy's immediate flushes working through the
// wrapper.
func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
