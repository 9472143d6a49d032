package throttle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// zeros is an endless source.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// measure reads through l from readers streams at once for d and returns
// the bytes a second they got together.
func measure(l *Limiter, readers int, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var total int64
	var wg sync.WaitGroup
	start := time.Now()
	for range readers {
		wg.Go(func() {
			n, _ := io.CopyBuffer(io.Discard, l.Reader(ctx, zeros{}), make([]byte, 1<<20))
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds()
}

func TestRateHeld(t *testing.T) {
	t.Parallel()
	const rate = 8 << 20
	got := measure(New(rate), 3, time.Second)
	if ratio := got / rate; ratio < 0.9 || ratio > 1.1 {
		t.Errorf("read %.0f bytes/s through a limit of %d: ratio %.3f, want within 10%%", got, rate, ratio)
	}
}

func TestNoLimit(t *testing.T) {
	t.Parallel()
	for _, r := range []int64{0, -1} {
		if l := New(r); l != nil {
			t.Errorf("New(%d) limits; want nil (no limit)", r)
		}
	}
	var l *Limiter
	src := bytes.NewReader([]byte("abc"))
	if got := l.Reader(t.Context(), src); got != io.Reader(src) {
		t.Errorf("a nil Limiter wraps its reader")
	}
}

// TestSmallRate: a rate below one read buffer still passes every byte,
// at that rate.
func TestSmallRate(t *testing.T) {
	t.Parallel()
	l := New(100 << 10) // burst and read size MinBurst
	data := make([]byte, 200<<10)
	start := time.Now()
	got, err := io.ReadAll(l.Reader(t.Context(), bytes.NewReader(data)))
	if err != nil || len(got) != len(data) {
		t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(data))
	}
	if e := time.Since(start); e < 1500*time.Millisecond || e > 3*time.Second {
		t.Errorf("200 KiB at 100 KiB/s took %v, want about 2s", e)
	}
}

func TestCancelEndsWait(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	l := New(MinBurst) // one read a second
	r := l.Reader(ctx, zeros{})
	buf := make([]byte, MinBurst)
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	var err error
	for err == nil {
		_, err = r.Read(buf)
	}
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Errorf("read ended after %v with %v; want context.Canceled soon after the cancel", time.Since(start), err)
	}
}

// BenchmarkMaxRate measures the rate held over 2.5 s at 64 MiB/s, by one
// reader and by four sharing the limit (restore's parallel downloads):
// rate-ratio is what was read a second over the rate set (1 is exact).
//
//	go test -run XXX -bench MaxRate -benchtime 1x ./internal/throttle/
func BenchmarkMaxRate(b *testing.B) {
	const rate = 64 << 20
	for _, readers := range []int{1, 4} {
		b.Run(map[int]string{1: "one-reader", 4: "four-readers"}[readers], func(b *testing.B) {
			var ratio float64
			for range b.N {
				ratio = measure(New(rate), readers, 2500*time.Millisecond) / rate
			}
			b.ReportMetric(ratio, "rate-ratio")
			b.ReportMetric(ratio*rate/(1<<20), "MiB/s")
			if ratio < 0.95 || ratio > 1.05 {
				b.Errorf("rate held at %.3f of the rate set, want within 5%%", ratio)
			}
		})
	}
}
