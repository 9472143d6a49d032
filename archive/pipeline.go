package archive

import (
	"context"
	"log/slog"
	"sync"
)

// Pipeline lets the pushes ahead of a process that stays up (wal-helper)
// outlive the call that started them: PushAhead then returns once the
// requested file is durable, and a later call for a file still being
// pushed ahead waits for that push and checks its record, instead of
// pushing the file again. The files pushed ahead stay the next
// Concurrency .ready ones, counting those in flight, so the uploads form
// a steady pipeline rather than a batch that each call must drain.
// Without a Pipeline (a wal-push process), PushAhead waits for every push
// it started: nothing may outlive the process.
type Pipeline struct {
	ctx context.Context // cancelled, every push ahead stops (and leaves no record)
	log *slog.Logger    // the pushes ahead log here: their call has returned

	mu       sync.Mutex
	inflight map[string]flight // by file path
	wg       sync.WaitGroup
}

// flight is one push ahead in progress.
type flight struct {
	done   chan struct{} // closed when the push ends
	cancel context.CancelFunc
}

// NewPipeline returns a Pipeline whose pushes ahead run under ctx and log
// to log.
func NewPipeline(ctx context.Context, log *slog.Logger) *Pipeline {
	return &Pipeline{ctx: ctx, log: log, inflight: map[string]flight{}}
}

// Wait waits for every push ahead to end; cancel the Pipeline's context
// first to cut them short.
func (p *Pipeline) Wait() { p.wg.Wait() }

// waitFor returns once no push ahead of path is in flight, or with ctx's
// error.
func (p *Pipeline) waitFor(ctx context.Context, path string) error {
	p.mu.Lock()
	f, ok := p.inflight[path]
	p.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// busy says whether a push ahead of path is in flight.
func (p *Pipeline) busy(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.inflight[path]
	return ok
}

// start runs push for path in the background under the Pipeline's context.
func (p *Pipeline) start(path string, push func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(p.ctx)
	f := flight{done: make(chan struct{}), cancel: cancel}
	p.mu.Lock()
	p.inflight[path] = f
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() {
			cancel()
			p.mu.Lock()
			delete(p.inflight, path)
			p.mu.Unlock()
			close(f.done)
		}()
		push(ctx)
	}()
}

// cutOff cancels every push ahead in flight but that of except, and
// returns how many it cancelled.
func (p *Pipeline) cutOff(except string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for path, f := range p.inflight {
		if path != except {
			f.cancel()
			n++
		}
	}
	return n
}
