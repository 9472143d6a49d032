package progress

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walvault/walvault/internal/units"
)

// Spec describes one task.
type Spec struct {
	// Label names the task on its bar ("backup 20261125T103000Z").
	Label string
	// Message is the log line's message away from a terminal; "" means
	// Label + " progress".
	Message string
	// Total is how much there is to do, in bytes (or objects, with
	// Objects); 0 or less when unknown. An estimate is fine: a task that
	// runs past it grows it rather than claim 100% early.
	Total int64
	// Objects counts objects, not bytes.
	Objects bool
	// Attrs go on every log line (e.g. "backup_id", id).
	Attrs []any
	// Transient erases the bar when the task ends (a wait, not work).
	Transient bool
}

// Task is one piece of long work being shown. Its methods may be called
// from any goroutine; on a nil *Task they do nothing.
type Task struct {
	o     *Output
	log   *slog.Logger
	spec  Spec
	start time.Time
	done  atomic.Int64
	total atomic.Int64

	mu       sync.Mutex
	status   string
	finished bool // Done was called: the bar says how long it took

	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// Start starts showing a task: its bar on a terminal, else a log line
// through log every Interval. The caller ends it with Done.
func (o *Output) Start(log *slog.Logger, spec Spec) *Task {
	if o == nil {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if spec.Message == "" {
		spec.Message = spec.Label + " progress"
	}
	t := &Task{o: o, log: log, spec: spec, start: o.opts.Clock.Now(), quit: make(chan struct{})}
	t.total.Store(max(spec.Total, 0))
	every := o.opts.Interval
	tick := t.logLine
	if o.opts.Terminal {
		o.show(t)
		every, tick = o.opts.Redraw, func() { o.redraw(t) }
	}
	c, stop := o.opts.Clock.Tick(every)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer stop()
		for {
			select {
			case <-t.quit:
				return
			case <-c:
				tick()
			}
		}
	}()
	return t
}

// Add counts n more done.
func (t *Task) Add(n int64) {
	if t != nil {
		t.done.Add(n)
	}
}

// SetTotal replaces the total (e.g. once the server's estimate is known).
func (t *Task) SetTotal(n int64) {
	if t != nil {
		t.total.Store(max(n, 0))
	}
}

// SetStatus says what the task is doing now ("" for nothing special): on
// the bar and in the log lines.
func (t *Task) SetStatus(s string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.status = s
	t.mu.Unlock()
}

// Reader counts what is read through r as done.
func (t *Task) Reader(r io.Reader) io.Reader {
	if t == nil {
		return r
	}
	return &countingReader{r: r, t: t}
}

type countingReader struct {
	r io.Reader
	t *Task
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.t.Add(int64(n))
	return n, err
}

// Done ends the task: with ok, a bar shows it complete (a total that was
// an estimate becomes what was done); without, the bar stays where it
// stopped. Either way its line is ended, so what follows starts on a line
// of its own (a Transient task's line is erased). No log line follows
// Done. Safe to call twice.
func (t *Task) Done(ok bool) {
	if t == nil {
		return
	}
	t.stopOnce.Do(func() {
		close(t.quit)
		t.wg.Wait()
		if !t.o.opts.Terminal {
			return
		}
		if done := t.done.Load(); ok && done > 0 {
			t.total.Store(done)
		}
		t.mu.Lock()
		t.finished = true
		t.mu.Unlock()
		t.o.finish(t, !t.spec.Transient)
	})
}

// snapshot is the task's state at one moment.
type snapshot struct {
	done, total int64 // total 0: unknown
	elapsed     time.Duration
	rate        float64       // per second; 0 when not known yet
	eta         time.Duration // -1 when unknown
	status      string
	finished    bool
}

func (t *Task) snapshot() snapshot {
	s := snapshot{done: t.done.Load(), total: t.total.Load(), elapsed: t.o.opts.Clock.Now().Sub(t.start), eta: -1}
	if s.total > 0 && s.done > s.total {
		// Past the estimate: grow it, so the bar never claims 100% early.
		s.total = s.done + s.done/10 + 1
	}
	if s.elapsed >= time.Second/2 && s.done > 0 {
		s.rate = float64(s.done) / s.elapsed.Seconds()
		if s.total > 0 {
			s.eta = time.Duration(float64(s.total-s.done) / s.rate * float64(time.Second)).Round(time.Second)
		}
	}
	t.mu.Lock()
	s.status, s.finished = t.status, t.finished
	t.mu.Unlock()
	return s
}

// logLine logs the task's progress: done, total, rate, elapsed, ETA.
func (t *Task) logLine() {
	s := t.snapshot()
	unit, rateKey := "bytes", "bytes_per_second"
	if t.spec.Objects {
		unit, rateKey = "objects", "objects_per_second"
	}
	attrs := append([]any{}, t.spec.Attrs...)
	attrs = append(attrs, unit, s.done)
	if s.total > 0 {
		attrs = append(attrs, "total", s.total, "percent", percent(s.done, s.total))
	}
	attrs = append(attrs, "elapsed", s.elapsed.Round(time.Second))
	if s.rate > 0 {
		attrs = append(attrs, rateKey, int64(s.rate))
	}
	if s.eta >= 0 {
		attrs = append(attrs, "eta", s.eta)
	}
	if s.status != "" {
		attrs = append(attrs, "status", s.status)
	}
	t.log.Info(t.spec.Message, attrs...)
}

func percent(done, total int64) int {
	return int(min(100, done*100/total))
}

// line renders the bar line, at most width columns:
//
//	backup 20261125T103000Z [=======>      ]  45% 1.2 GiB/2.6 GiB 48.0 MiB/s ETA 30s
func (t *Task) line(width int) string {
	s := t.snapshot()
	amount := units.Bytes
	rateUnit := "/s"
	if t.spec.Objects {
		amount = func(n int64) string { return fmt.Sprint(n) }
		rateUnit = " objects/s"
	}
	var tail []string
	if s.total > 0 {
		tail = append(tail, fmt.Sprintf("%3d%%", percent(s.done, s.total)), amount(s.done)+"/"+amount(s.total))
	} else if s.done > 0 {
		tail = append(tail, amount(s.done))
	}
	if s.rate > 0 {
		r := int64(s.rate)
		if t.spec.Objects {
			tail = append(tail, fmt.Sprintf("%.1f%s", s.rate, rateUnit))
		} else {
			tail = append(tail, units.Bytes(r)+rateUnit)
		}
	}
	switch {
	case s.finished:
		tail = append(tail, "in "+s.elapsed.Round(time.Second/10).String())
	case s.eta >= 0 && s.total > 0:
		tail = append(tail, "ETA "+s.eta.String())
	default:
		tail = append(tail, s.elapsed.Round(time.Second).String())
	}
	if s.status != "" {
		tail = append(tail, s.status)
	}
	right := strings.Join(tail, " ")
	label := t.spec.Label
	// The bar takes what label and figures leave, if that is enough to
	// read; the line never wraps (a wrapped line could not be cleared).
	room := width - 1 - len(label) - 1 - len(right) - 1
	bar := ""
	if s.total > 0 && room >= 12 {
		n := room - 2
		fill := int(int64(n) * min(s.done, s.total) / s.total)
		head := ""
		if fill < n {
			head = ">"
		}
		bar = "[" + strings.Repeat("=", fill) + head + strings.Repeat(" ", n-fill-len(head)) + "]"
	}
	line := label
	if bar != "" {
		line += " " + bar
	}
	line += " " + right
	if len(line) > width-1 {
		line = line[:width-1]
	}
	return line
}
