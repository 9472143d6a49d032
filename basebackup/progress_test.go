package basebackup

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the logging goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressLogs(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	p := startProgress(&bytes.Buffer{}, false, log, "20261125T103000Z", 1000, 10*time.Millisecond)
	p.add(400)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "bytes=400") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.stop(true)
	p.stop(true) // twice is fine
	out := logs.String()
	for _, want := range []string{"level=INFO", `msg="backup progress"`, "backup_id=20261125T103000Z", "bytes=400", "total=1000", "elapsed="} {
		if !strings.Contains(out, want) {
			t.Errorf("progress log lacks %q:\n%s", want, out)
		}
	}
	n := strings.Count(logs.String(), "backup progress")
	time.Sleep(50 * time.Millisecond)
	if after := strings.Count(logs.String(), "backup progress"); after != n {
		t.Errorf("progress kept logging after stop: %d lines, then %d", n, after)
	}
}

func TestProgressNowhere(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	p := startProgress(nil, false, slog.New(slog.NewTextHandler(&logs, nil)), "x", 1000, time.Millisecond)
	p.add(10)
	time.Sleep(20 * time.Millisecond)
	p.stop(true)
	if logs.String() != "" {
		t.Errorf("progress with no writer logged:\n%s", logs.String())
	}
}

func TestProgressBar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		total int64
		adds  []int64
		ok    bool
		want  []string
	}{
		{"estimate right", 1 << 20, []int64{1 << 19, 1 << 19}, true, []string{"backup 20261125T103000Z", "100%", "1.0 MiB"}},
		{"estimate too low", 1000, []int64{800, 800, 800}, true, []string{"100%"}},
		{"no estimate", -1, []int64{100, 100}, true, []string{"backup 20261125T103000Z"}},
		{"failed", 1000, []int64{300}, false, []string{"30%"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := startProgress(&out, true, nil, "20261125T103000Z", tc.total, time.Second)
			for _, n := range tc.adds {
				p.add(n)
				time.Sleep(110 * time.Millisecond) // past the bar's throttle
			}
			p.stop(tc.ok)
			for _, want := range tc.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("bar output lacks %q: %q", want, lastLine(out.String()))
				}
			}
			if !strings.HasSuffix(out.String(), "\n") {
				t.Errorf("bar output does not end its line, so what follows would run into it: %q", lastLine(out.String()))
			}
		})
	}
}
