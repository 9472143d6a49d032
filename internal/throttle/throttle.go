package throttle

import (
	"context"
	"io"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// MinBurst is the smallest burst a Limiter allows: one read buffer, so a
// read of that size is never split below it even at a tiny rate.
const MinBurst = 64 << 10

// Limiter holds the bytes read through all its Readers together to a rate.
// A nil *Limiter limits nothing.
type Limiter struct {
	lim   *rate.Limiter
	chunk int // the most one Read asks for, at most the burst
}

// New returns a Limiter of bytesPerSecond, or nil (no limit) for 0 or less.
//
// Its burst is one second of the rate (at least MinBurst): after a pause
// (an upload that stalled, a slow disk) the readers may catch up by that
// much, and no more, so the rate over any few seconds stays the one set.
// The bucket starts empty, so the first second is not a burst.
func New(bytesPerSecond int64) *Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	burst := int(min(max(bytesPerSecond, MinBurst), math.MaxInt32))
	lim := rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
	lim.AllowN(time.Now(), burst)
	// Reads of a tenth of a second keep the flow smooth.
	chunk := int(min(max(bytesPerSecond/10, MinBurst), int64(burst)))
	return &Limiter{lim: lim, chunk: chunk}
}

// Reader reads r through l: each read waits until the rate allows its
// bytes. The wait ends early, with ctx's error, when ctx ends.
func (l *Limiter) Reader(ctx context.Context, r io.Reader) io.Reader {
	if l == nil {
		return r
	}
	return &reader{ctx: ctx, r: r, l: l}
}

type reader struct {
	ctx context.Context
	r   io.Reader
	l   *Limiter
}

func (r *reader) Read(p []byte) (int, error) {
	if len(p) > r.l.chunk {
		p = p[:r.l.chunk]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.l.lim.WaitN(r.ctx, n); werr != nil {
			if cerr := r.ctx.Err(); cerr != nil {
				werr = cerr
			}
			return n, werr
		}
	}
	return n, err
}
