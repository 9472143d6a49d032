package progress

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// fakeClock is a clock the test moves; its ticks are sent by the test.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	tick chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC), tick: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Tick(time.Duration) (<-chan time.Time, func()) { return c.tick, func() {} }

// advance moves the clock by d and delivers one tick (it returns once the
// task's goroutine took it).
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	c.tick <- now
}

// waitFor waits until s contains want.
func waitFor(t *testing.T, s *testenv.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, s.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestProgressLogs(t *testing.T) {
	t.Parallel()
	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	out := New(&bytes.Buffer{}, Options{Interval: 10 * time.Millisecond})
	p := out.Start(log, Spec{Label: "backup", Total: 1000, Attrs: []any{"backup_id", "20261125T103000Z"}})
	p.Add(400)
	waitFor(t, &logs, "bytes=400")
	p.Done(true)
	p.Done(true) // twice is fine
	got := logs.String()
	for _, want := range []string{"level=INFO", `msg="backup progress"`, "backup_id=20261125T103000Z", "bytes=400", "total=1000", "elapsed="} {
		if !strings.Contains(got, want) {
			t.Errorf("progress log lacks %q:\n%s", want, got)
		}
	}
	n := strings.Count(logs.String(), "backup progress")
	time.Sleep(50 * time.Millisecond)
	if after := strings.Count(logs.String(), "backup progress"); after != n {
		t.Errorf("progress kept logging after Done: %d lines, then %d", n, after)
	}
}

// TestProgressLogsRate: away from a terminal, each interval logs done and
// total, the rate so far and the time left, measured by the clock.
func TestProgressLogsRate(t *testing.T) {
	t.Parallel()
	var logs testenv.SyncBuffer
	clock := newFakeClock()
	out := New(&bytes.Buffer{}, Options{Clock: clock})
	p := out.Start(slog.New(slog.NewTextHandler(&logs, nil)), Spec{Label: "restore", Total: 300 << 20, Attrs: []any{"backup_id", "X"}})
	p.Add(100 << 20)
	clock.advance(10 * time.Second)
	waitFor(t, &logs, "eta=")
	got := logs.String()
	for _, want := range []string{`msg="restore progress"`, "backup_id=X", "bytes=104857600", "total=314572800", "percent=33",
		"elapsed=10s", "bytes_per_second=10485760", "eta=20s"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress log lacks %q:\n%s", want, got)
		}
	}
	p.SetStatus("verifying")
	p.Add(200 << 20)
	clock.advance(10 * time.Second)
	waitFor(t, &logs, "status=verifying")
	if got := logs.String(); !strings.Contains(got, "bytes=314572800") || !strings.Contains(got, "eta=0s") {
		t.Errorf("second line wrong:\n%s", got)
	}
	p.Done(true)
	if n := strings.Count(logs.String(), "\n"); n != 2 {
		t.Errorf("want a line per tick, 2, got %d:\n%s", n, logs.String())
	}
}

func TestProgressObjects(t *testing.T) {
	t.Parallel()
	var logs testenv.SyncBuffer
	clock := newFakeClock()
	out := New(&bytes.Buffer{}, Options{Clock: clock})
	p := out.Start(slog.New(slog.NewTextHandler(&logs, nil)), Spec{Label: "delete", Total: 40, Objects: true})
	p.Add(10)
	clock.advance(5 * time.Second)
	waitFor(t, &logs, "objects=10")
	p.Done(true)
	for _, want := range []string{"total=40", "objects_per_second=2", "eta=15s"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("progress log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestProgressNowhere(t *testing.T) {
	t.Parallel()
	var out *Output // no progress asked for
	p := out.Start(slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), Spec{Label: "x", Total: 1000})
	p.Add(10)
	p.SetStatus("x")
	p.SetTotal(5)
	if r := p.Reader(strings.NewReader("x")); r == nil {
		t.Error("nil task's Reader is nil")
	}
	p.Done(true)
	if p != nil {
		t.Errorf("a nil Output started a task")
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
			var buf testenv.SyncBuffer
			clock := newFakeClock()
			out := New(&buf, Options{Terminal: true, Clock: clock})
			p := out.Start(nil, Spec{Label: "backup 20261125T103000Z", Total: tc.total})
			for _, n := range tc.adds {
				p.Add(n)
				clock.advance(time.Second) // a redraw
			}
			p.Done(tc.ok)
			screen := render(buf.String())
			last := screen[len(screen)-1]
			for _, want := range tc.want {
				if !strings.Contains(strings.Join(screen, "\n"), want) {
					t.Errorf("bar lacks %q: %q", want, screen)
				}
			}
			if last != "" {
				t.Errorf("bar does not end its line, so what follows would run into it: %q", screen)
			}
		})
	}
}

// TestProgressBarGrows: past its estimate, a running bar never says 100%.
func TestProgressBarGrows(t *testing.T) {
	t.Parallel()
	var buf testenv.SyncBuffer
	clock := newFakeClock()
	out := New(&buf, Options{Terminal: true, Clock: clock, Width: 100})
	p := out.Start(nil, Spec{Label: "backup", Total: 1000})
	p.Add(2000)
	clock.advance(time.Second)
	if screen := render(buf.String()); strings.Contains(screen[len(screen)-1], "100%") {
		t.Errorf("running bar past its estimate says 100%%: %q", screen)
	}
	p.Done(true)
}

// TestLogLineOwnLine: a log record written while a bar is drawn starts on
// a line of its own, and the bar is drawn again below it.
func TestLogLineOwnLine(t *testing.T) {
	t.Parallel()
	var buf testenv.SyncBuffer
	clock := newFakeClock()
	out := New(&buf, Options{Terminal: true, Clock: clock, Width: 100})
	log := slog.New(slog.NewTextHandler(out, nil))
	p := out.Start(log, Spec{Label: "restore 20261125T103000Z", Total: 1000})
	p.Add(500)
	clock.advance(time.Second)
	log.Info("something happened", "key", "value")
	p.Add(100)
	log.Warn("and again")
	p.Done(true)
	log.Info("after")

	screen := render(buf.String())
	want := []string{"msg=\"something happened\" key=value", "msg=\"and again\"", "restore 20261125T103000Z", "msg=after"}
	var got []string
	for _, l := range screen {
		if l != "" {
			got = append(got, l)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("screen has %d lines, want %d: %q", len(got), len(want), screen)
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("line %d: %q lacks %q (screen %q)", i, got[i], w, screen)
		}
		if i < 2 && strings.Contains(got[i], "restore 2026") {
			t.Errorf("log line %d shares its line with the bar: %q", i, got[i])
		}
	}
	if !strings.Contains(got[2], "100%") || !strings.HasSuffix(got[2], " in 1s") {
		t.Errorf("finished bar %q is not at 100%% or does not say how long it took (1s)", got[2])
	}
}

// TestTransient: a transient task's bar is erased at its end.
func TestTransient(t *testing.T) {
	t.Parallel()
	var buf testenv.SyncBuffer
	out := New(&buf, Options{Terminal: true, Clock: newFakeClock()})
	p := out.Start(nil, Spec{Label: "waiting for a spread checkpoint", Transient: true})
	p.Done(true)
	out.Write([]byte("next\n"))
	if screen := render(buf.String()); screen[0] != "next" {
		t.Errorf("transient bar left on screen: %q", screen)
	}
}

// TestBarFitsWidth: the line never wraps, whatever the label.
func TestBarFitsWidth(t *testing.T) {
	t.Parallel()
	var buf testenv.SyncBuffer
	out := New(&buf, Options{Terminal: true, Clock: newFakeClock(), Width: 40})
	p := out.Start(nil, Spec{Label: strings.Repeat("long label ", 10), Total: 100})
	p.Add(50)
	p.Done(false)
	for _, l := range render(buf.String()) {
		if len(l) >= 40 {
			t.Errorf("line of %d columns on a 40-column terminal: %q", len(l), l)
		}
	}
}

// render plays what a terminal shows for s: \r returns to the line's
// start, ESC[K erases to its end, \n starts the next line.
func render(s string) []string {
	lines := []string{""}
	col := 0
	for i := 0; i < len(s); i++ {
		cur := &lines[len(lines)-1]
		switch {
		case s[i] == '\r':
			col = 0
		case s[i] == '\n':
			lines = append(lines, "")
			col = 0
		case strings.HasPrefix(s[i:], "\x1b[K"):
			*cur = (*cur)[:col]
			i += 2
		default:
			if col < len(*cur) {
				*cur = (*cur)[:col] + string(s[i]) + (*cur)[col+1:]
			} else {
				*cur += string(s[i])
			}
			col++
		}
	}
	return lines
}
