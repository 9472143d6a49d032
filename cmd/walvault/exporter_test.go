package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestExporterHelpNamesItsPort(t *testing.T) {
	code, stdout, _ := walvaultRun(context.Background(), "exporter", "--help")
	if code != 0 || !strings.Contains(stdout, defaultExporterListen) || !strings.Contains(stdout, "9187") {
		t.Fatalf("exporter --help: exit %d\n%s", code, stdout)
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
}
