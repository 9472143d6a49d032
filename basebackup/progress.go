package basebackup

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressLogEvery is how often progress is logged when it cannot be drawn.
const progressLogEvery = 5 * time.Second

// progress shows how far a backup got against the server's estimate: a bar
// on a terminal, else a log line every few seconds. Its methods are called
// from the goroutine that reads the stream; the log lines come from a
// goroutine of its own, which stop ends.
type progress struct {
	id    string
	total int64 // the server's estimate in bytes; -1 when unknown
	start time.Time
	done  atomic.Int64

	bar *progressbar.ProgressBar // nil unless drawing a bar

	ticker   *time.Ticker
	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// startProgress starts showing progress to w (nil: nowhere). With terminal
// it draws a bar on w; otherwise it logs through log every interval.
func startProgress(w io.Writer, terminal bool, log *slog.Logger, id string, total int64, interval time.Duration) *progress {
	p := &progress{id: id, total: total, start: time.Now()}
	switch {
	case w == nil:
	case terminal:
		limit := total
		if limit <= 0 {
			limit = -1 // unknown: a spinner
		}
		p.bar = progressbar.NewOptions64(limit,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("backup "+id),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(), // done/total
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetPredictTime(true), // ETA
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetSpinnerChangeInterval(0), // no goroutine of its own
			progressbar.OptionFullWidth(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	default:
		p.ticker = time.NewTicker(interval)
		p.quit = make(chan struct{})
		p.wg.Add(1)
		go p.logLoop(log)
	}
	return p
}

func (p *progress) logLoop(log *slog.Logger) {
	defer p.wg.Done()
	for {
		select {
		case <-p.quit:
			return
		case <-p.ticker.C:
			log.Info("backup progress", "backup_id", p.id, "bytes", p.done.Load(), "total", p.total,
				"elapsed", time.Since(p.start).Round(time.Second))
		}
	}
}

// add counts n more raw bytes received.
func (p *progress) add(n int64) {
	done := p.done.Add(n)
	if p.bar == nil {
		return
	}
	// The estimate is only an estimate: grow the bar rather than let it
	// claim 100% (or fail) before the end.
	if limit := p.bar.GetMax64(); limit > 0 && done >= limit {
		p.bar.ChangeMax64(done + done/10 + 1)
	}
	_ = p.bar.Add64(n)
}

// stop ends the display: a full bar when ok, the bar left where it was
// otherwise. It waits for the log goroutine to end. Safe to call twice.
func (p *progress) stop(ok bool) {
	p.stopOnce.Do(func() {
		if p.ticker != nil {
			p.ticker.Stop()
			close(p.quit)
			p.wg.Wait()
		}
		if p.bar == nil {
			return
		}
		if !ok {
			_ = p.bar.Exit()
			return
		}
		if done := p.done.Load(); done > 0 && p.bar.GetMax64() != done {
			p.bar.ChangeMax64(done)
		}
		_ = p.bar.Finish()
	})
}
