package s3_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/s3"
)

// stallingServer answers GET with the headers and the first half of a
// body, then nothing until the client goes away; HEAD not at all; PUT
// reads nothing of the body it is sent. Its handlers return when done
// closes (a server that reads no body cannot see its client go away).
func stallingServer(body string, done <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, body[:len(body)/2])
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
}

const testStall = 300 * time.Millisecond

// within fails the test when fn takes much longer than the stall timeout.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("%s took %v: want about the %v stall timeout", what, elapsed, testStall)
	}
	return err
}

// TestStallTimeoutCutsSilentTransfers: without any deadline (a long
// command's transfer), a request that stops moving bytes is abandoned after
// the stall timeout: a body stopped mid-read, a HEAD never answered, an
// upload whose bytes the server does not take.
func TestStallTimeoutCutsSilentTransfers(t *testing.T) {
	body := strings.Repeat("walvault", 1<<10)
	done := make(chan struct{})
	b := newAgainstWith(t, stallingServer(body, done), func(c *s3.Config) { c.StallTimeout = testStall })
	t.Cleanup(func() { close(done) }) // before the server's Close
	ctx := context.Background()

	rc, _, err := b.Get(ctx, "k")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer rc.Close()
	err = within(t, "reading a body stalled mid-way", func() error { _, err := io.ReadAll(rc); return err })
	if err == nil || !strings.Contains(err.Error(), "stalled") || storage.IsPermanent(err) {
		t.Fatalf("reading a body stalled mid-way: got %v, want a transient stall error", err)
	}

	err = within(t, "a HEAD never answered", func() error { _, err := b.Stat(ctx, "k"); return err })
	if err == nil || !strings.Contains(err.Error(), "stalled") || storage.IsPermanent(err) {
		t.Fatalf("stat against a silent server: got %v, want a transient stall error", err)
	}

	big := bytes.Repeat([]byte{1}, 8<<20) // more than the socket buffers hold
	err = within(t, "an upload not taken", func() error {
		return b.Put(ctx, "k", bytes.NewReader(big), storage.PutOptions{Size: int64(len(big))})
	})
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("put to a server that takes nothing: got %v, want a stall error", err)
	}
}

// TestStallTimeoutSparesSlowConsumer: time the caller spends between
// reads of a body is not the server's silence.
func TestStallTimeoutSparesSlowConsumer(t *testing.T) {
	body := strings.Repeat("walvault", 1<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
	b := newAgainstWith(t, h, func(c *s3.Config) { c.StallTimeout = testStall })
	rc, _, err := b.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []byte
	buf := make([]byte, 2<<10)
	for {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("slow reader of a healthy body: %v", err)
		}
		time.Sleep(testStall / 2) // 4 reads: twice the stall timeout in all
	}
	if string(got) != body {
		t.Fatalf("slow reader got %d bytes, want %d", len(got), len(body))
	}
}

// TestStallTimeoutSparesDrainingUpload: a body the transport handed to the
// kernel whole, which the server takes only later (the last megabytes of
// a part draining over a slow link, explore25b F1), is no stall: the
// answer is waited for in proportion to what may still be buffered.
func TestStallTimeoutSparesDrainingUpload(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			time.Sleep(3 * testStall) // the link is slow: nothing arrives yet
			io.Copy(io.Discard, r.Body)
			w.Header().Set("ETag", `"0123"`)
		}
		w.WriteHeader(http.StatusOK)
	})
	b := newAgainstWith(t, h, func(c *s3.Config) { c.StallTimeout = testStall })
	body := bytes.Repeat([]byte{1}, 48<<10) // within the socket buffers: a second's allowance
	if err := b.Put(context.Background(), "k", bytes.NewReader(body), storage.PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatalf("put whose bytes drain for longer than the stall timeout: %v", err)
	}
}
