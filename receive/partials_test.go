package receive

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// testClock is a clock a test moves by hand: the receiver's (Push.Now)
// and the memory backend's, which ends retentions by it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// partialBucket is a memory bucket that counts the deletes of partials.
// With retain set, it locks every object written without a retention for
// that long, as a bucket's default retention does (walvault then does not
// know the lock before a delete is refused). With refuse set, every delete
// of a partial fails with it.
type partialBucket struct {
	storage.Backend
	clock   *testClock
	retain  time.Duration
	refuse  error
	puts    atomic.Int64 // of partials
	deletes atomic.Int64
	mu      sync.Mutex
	asks    map[string]int // deletes of each partial
}

// mostAsked is the most deletes of one partial.
func (b *partialBucket) mostAsked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	most := 0
	for _, n := range b.asks {
		most = max(most, n)
	}
	return most
}

func (b *partialBucket) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	if strings.HasPrefix(key, repository.PartialPrefix) {
		b.puts.Add(1)
	}
	if b.retain > 0 && opts.Retention == nil {
		opts.Retention = &storage.Retention{Mode: storage.Governance, Until: b.clock.now().Add(b.retain)}
	}
	return b.Backend.Put(ctx, key, r, opts)
}

func (b *partialBucket) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, repository.PartialPrefix) {
		b.deletes.Add(1)
		b.mu.Lock()
		if b.asks == nil {
			b.asks = map[string]int{}
		}
		b.asks[key]++
		b.mu.Unlock()
		if b.refuse != nil {
			return storage.OpError("delete", key, b.refuse)
		}
	}
	return b.Backend.Delete(ctx, key)
}

// logRecorder keeps the records logged at Info and above.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelInfo }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler             { return l }
func (l *logRecorder) WithGroup(string) slog.Handler                  { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// count is how many records at lvl have a message containing s.
func (l *logRecorder) count(lvl slog.Level, s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level == lvl && strings.Contains(r.Message, s) {
			n++
		}
	}
	return n
}

// lockedPartialsRun streams segment 3 of primary() as n partials (one
// flush each), calls afterN, then stores more partials, calls afterMore,
// and completes the segment; it returns once the receiver stopped.
func lockedPartialsRun(t *testing.T, b storage.Backend, opts Options, n, more int, afterN, afterMore func(pos wal.LSN)) {
	t.Helper()
	const step = 20_000
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := primary().server()
	pos := 3 * seg
	chunk := func() []pgproto3.BackendMessage {
		next := pos + step
		msgs := append(stream(1, pos, next), until(reported(srv, next)))
		pos = next
		return msgs
	}
	// Each call is a script step, run once its turn comes.
	call := func(f func(wal.LSN)) []pgproto3.BackendMessage {
		at := pos
		return []pgproto3.BackendMessage{until(func() bool { f(at); return true })}
	}
	for range n {
		srv.Msgs = append(srv.Msgs, chunk()...)
	}
	srv.Msgs = append(srv.Msgs, call(afterN)...)
	for range more {
		srv.Msgs = append(srv.Msgs, chunk()...)
	}
	srv.Msgs = append(srv.Msgs, call(afterMore)...)
	end := 4*seg + 1000
	srv.Msgs = append(srv.Msgs, concat(stream(1, pos, end), []pgproto3.BackendMessage{until(reported(srv, end))})...)
	cancelWhen(srv, end, cancel)
	if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}}); err != nil {
		t.Fatalf("run: got %v, want nil after cancel", err)
	}
}

// TestLockedPartialsNotRetried: under Object Lock the older partials of
// the open segment cannot be deleted for a day. Each is asked at most once
// (not again at every flush: that was a DELETE and a warning per older
// partial per flush), one line says so, and once their retention ended the
// next flush deletes them all. The newest partial is never deleted.
func TestLockedPartialsNotRetried(t *testing.T) {
	const n, more = 12, 4
	for _, tc := range []struct {
		name string
		// lock is walvault's lock policy (it knows when the partials it
		// writes may go); retain a bucket's default retention (it learns
		// it from the refused delete).
		lock   repository.LockPolicy
		retain time.Duration
		// behind is how far the storage's clock is behind the receiver's:
		// its locks end that much later than the receiver expects.
		behind time.Duration
		// asked is how many deletes of partials the n flushes make, and
		// askedMore the more flushes after the clock moved a day.
		asked, askedMore int64
		// gone is whether the first n partials go once the clock moved.
		gone bool
		// mostAsked is the most deletes of one partial in the whole run.
		mostAsked int
	}{
		// Known locked as written: never asked before the lock ends.
		{name: "lock policy", lock: repository.LockPolicy{Mode: storage.Governance, Days: 1}, asked: 0, askedMore: n, gone: true, mostAsked: 1},
		// Each asked once, then not before its retention ends.
		{name: "bucket default retention", retain: 24 * time.Hour, asked: n - 1, askedMore: n + more - 1, gone: true, mostAsked: 2},
		// Each asked once when the receiver expects its lock to have
		// ended, and not again at each of the next flushes.
		{name: "storage clock behind", lock: repository.LockPolicy{Mode: storage.Governance, Days: 1}, behind: 2 * time.Hour, asked: 0, askedMore: n, mostAsked: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &testClock{t: time.Now()}
			m := mem.New()
			m.SetClock(func() time.Time { return clock.now().Add(-tc.behind) })
			b := &partialBucket{Backend: m, clock: clock, retain: tc.retain}
			logs := &logRecorder{}
			opts := testOptions(t)
			opts.Push.Lock, opts.Push.Now, opts.Log = tc.lock, clock.now, slog.New(logs)
			opts.Push.Log = opts.Log
			var afterN, afterMore int64
			lockedPartialsRun(t, b, opts, n, more, func(pos wal.LSN) {
				afterN = b.deletes.Load()
				if ends := partialEnds(t, b, 1, pos); len(ends) != n || ends[n-1] != pos {
					t.Errorf("after %d flushes, partials end at %v: want %d, the newest at %s", n, ends, n, pos)
				}
				clock.add(25 * time.Hour) // every lock so far ends
			}, func(pos wal.LSN) {
				afterMore = b.deletes.Load()
				ends := partialEnds(t, b, 1, pos)
				// Those written after the clock moved are locked still.
				want := more
				if !tc.gone {
					want = n + more
				}
				if len(ends) != want || ends[len(ends)-1] != pos {
					t.Errorf("%d flushes after the clock moved a day: partials end at %v, want %d, the newest at %s", more, ends, want, pos)
				}
			})
			if afterN != tc.asked {
				t.Errorf("%d flushes under a lock made %d deletes of partials, want %d", n, afterN, tc.asked)
			}
			if got := afterMore - afterN; got != tc.askedMore {
				t.Errorf("the %d flushes after the clock moved a day made %d deletes of partials, want %d", more, got, tc.askedMore)
			}
			// Completing the segment asks none of those known locked (a
			// flush before it may ask the one it supersedes, once).
			if got := b.mostAsked(); got != tc.mostAsked {
				t.Errorf("the most deletes of one partial: got %d, want %d", got, tc.mostAsked)
			}
			if !exists(t, b, segmentKey(1, segmentAt(1, 3*seg))) {
				t.Error("segment 3 was not stored")
			}
			if got := logs.count(slog.LevelWarn, "partial"); got != 0 {
				t.Errorf("%d warnings about partials, want none", got)
			}
			if got := logs.count(slog.LevelInfo, "Object Lock"); got != 1 {
				t.Errorf("%d lines about locked partials, want 1", got)
			}
		})
	}
}

// TestPartialDeletesRefused: a bucket that refuses every delete of a
// partial (a missing permission) costs at most one refused delete and one
// warning per flush, not one per older partial.
func TestPartialDeletesRefused(t *testing.T) {
	const n = 12
	b := &partialBucket{Backend: mem.New(), refuse: storage.Permanent(errors.New("AccessDenied"))}
	logs := &logRecorder{}
	opts := testOptions(t)
	opts.Log = slog.New(logs)
	opts.Push.Log = opts.Log
	var afterN int64
	lockedPartialsRun(t, b, opts, n, 1, func(pos wal.LSN) {
		afterN = b.deletes.Load()
		if ends := partialEnds(t, b, 1, pos); len(ends) != n || ends[n-1] != pos {
			t.Errorf("after %d flushes, partials end at %v: want %d, the newest at %s", n, ends, n, pos)
		}
	}, func(wal.LSN) {})
	if afterN > n {
		t.Errorf("%d flushes made %d refused deletes, want at most %d", n, afterN, n)
	}
	// Each flush stores a partial; completing the segment stores none.
	if got, flushes := logs.count(slog.LevelWarn, "partial"), b.puts.Load(); got > int(flushes)+1 {
		t.Errorf("%d warnings about partials from %d flushes and a complete segment, want at most one each", got, flushes)
	}
}
