package progress

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Options tune an Output.
type Options struct {
	// Terminal draws bars on the writer; without it progress is logged.
	Terminal bool
	// Width is the bar line's width; 0 means the terminal's, else 80.
	Width int
	// Interval is how often a task logs its progress away from a
	// terminal; 0 means DefaultInterval.
	Interval time.Duration
	// Redraw is how often a bar is drawn again (its rate and elapsed time
	// move even when no byte does); 0 means 200ms.
	Redraw time.Duration
	// Clock is the time source; nil means the real one.
	Clock Clock
}

// DefaultInterval is how often progress is logged away from a terminal.
const DefaultInterval = 10 * time.Second

// Clock is the time a task measures its rate and logs by: the real one, or
// a test's.
type Clock interface {
	Now() time.Time
	// Tick returns a channel that receives every d, and a function that
	// stops it.
	Tick(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Tick(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\x1b[K"

// Output is a command's stderr with progress on it. Log records are
// written through Write; tasks are started with Start. A nil *Output
// shows no progress (Start returns a nil *Task, which does nothing).
type Output struct {
	w    io.Writer
	opts Options

	mu    sync.Mutex
	bar   *Task // the task whose bar is on screen, nil when none
	drawn bool  // a bar line is on the screen, with no newline after it
}

// New returns the Output for w (a command's stderr).
func New(w io.Writer, opts Options) *Output {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Redraw <= 0 {
		opts.Redraw = 200 * time.Millisecond
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Width <= 0 {
		opts.Width = 80
		if f, ok := w.(*os.File); ok && opts.Terminal {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
				opts.Width = cols
			}
		}
	}
	return &Output{w: w, opts: opts}
}

// IsTerminal reports whether w is a terminal, where bars are drawn.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Write writes one log record (or any text that ends its lines): the bar
// line is cleared first and drawn again after it, so the record starts on
// a line of its own and the bar stays below the log.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearLocked()
	n, err := o.w.Write(p)
	if o.bar != nil {
		o.drawLocked(o.bar.line(o.opts.Width))
	}
	return n, err
}

func (o *Output) clearLocked() {
	if o.drawn {
		io.WriteString(o.w, clearLine)
		o.drawn = false
	}
}

func (o *Output) drawLocked(line string) {
	io.WriteString(o.w, clearLine+line)
	o.drawn = true
}

// redraw draws t's bar again, if it is the one on screen.
func (o *Output) redraw(t *Task) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bar == t {
		o.drawLocked(t.line(o.opts.Width))
	}
}

// show puts t's bar on screen, ending any other bar's line.
func (o *Output) show(t *Task) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.drawn {
		io.WriteString(o.w, "\n")
		o.drawn = false
	}
	o.bar = t
	o.drawLocked(t.line(o.opts.Width))
}

// finish draws t's bar a last time and ends its line (keep), or erases it.
func (o *Output) finish(t *Task, keep bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bar != t {
		return
	}
	o.bar = nil
	if keep {
		o.drawLocked(t.line(o.opts.Width))
		io.WriteString(o.w, "\n")
		o.drawn = false
		return
	}
	o.clearLocked()
}
