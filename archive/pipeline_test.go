package archive_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// pushAheadAsync runs PushAhead in a goroutine: a call that must not wait
// for the pushes ahead is checked by when its result arrives.
func pushAheadAsync(b *storagetest.Fault, path string, o archive.AheadOptions) chan error {
	ch := make(chan error, 1)
	go func() {
		res, err := archive.PushAhead(context.Background(), b, path, o)
		if err == nil && !res.AlreadyArchived && filepath.Base(path) != res.File.String() {
			err = errors.New("result for another file")
		}
		ch <- err
	}()
	return ch
}

// TestPushAheadPipeline: with a Pipeline, a call returns once its own file
// is durable while its pushes ahead go on; PostgreSQL's call for a file
// still being pushed ahead waits for that push and is skipped on its
// record (one upload per file); the files in flight count towards the
// next Concurrency.
func TestPushAheadPipeline(t *testing.T) {
	t.Parallel()
	fb, b, walDir, names := faultWAL(t, 8)
	// Each push ahead is held back until its gate opens: names[1]'s
	// first, the others after the call for names[1] has looked ahead.
	gates := map[string]chan struct{}{}
	first, others := make(chan struct{}), make(chan struct{})
	for i, n := range names[1:5] {
		gates[walKey(t, n, repository.LZ4)] = others
		if i == 0 {
			gates[walKey(t, n, repository.LZ4)] = first
		}
	}
	b.Before(storagetest.OpPut, func(k string) bool { return gates[k] != nil }, func(ctx context.Context, k string) error {
		select {
		case <-gates[k]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	pipe := archive.NewPipeline(context.Background(), slog.New(slog.DiscardHandler))
	o := aheadOpts(3)
	o.Pipeline = pipe

	select {
	case err := <-pushAheadAsync(b, filepath.Join(walDir, names[0]), o):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call waited for its pushes ahead, which are held back")
	}
	if got := records(t, walDir); len(got) != 0 {
		t.Fatalf("records while the pushes ahead are held back: %q, want none", got)
	}
	done(t, walDir, names[0])

	second := pushAheadAsync(b, filepath.Join(walDir, names[1]), o)
	select {
	case err := <-second:
		t.Fatalf("the call for %s, being pushed ahead, returned (%v) before that push ended", names[1], err)
	case <-time.After(200 * time.Millisecond):
	}
	close(first)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	close(others)
	pipe.Wait()
	var putsOfSecond int
	for _, k := range b.Returned(storagetest.OpPut) {
		if k == walKey(t, names[1], repository.LZ4) {
			putsOfSecond++
		}
	}
	if putsOfSecond != 1 {
		t.Fatalf("%s uploaded %d times, want once (pushed ahead, then skipped on its record)", names[1], putsOfSecond)
	}
	// names[2] and [3] were in flight when the (skipped) call for
	// names[1] looked ahead: only names[4] joined them.
	if got, want := records(t, walDir), names[2:5]; !slices.Equal(got, want) {
		t.Fatalf("records: got %q, want %q", got, want)
	}
	assertAbsent(t, fb, walKey(t, names[5], repository.LZ4))
	if most := b.MaxInFlight(storagetest.OpPut); most > 4 {
		t.Errorf("uploads in flight: at most %d, want at most 4 (a call's own and 3 ahead)", most)
	}
}

// TestPushAheadPipelineStopped: pushes ahead cut off by the Pipeline's
// context leave no record, and Wait returns.
func TestPushAheadPipelineStopped(t *testing.T) {
	t.Parallel()
	fb := mem.New()
	walDir, names := pgWAL(t, 3)
	b := storagetest.NewFault(fb)
	ahead := walKey(t, names[1], repository.LZ4)
	b.Stall(storagetest.OpPut, func(k string) bool { return k == ahead })
	ctx, cancel := context.WithCancel(context.Background())
	pipe := archive.NewPipeline(ctx, slog.New(slog.DiscardHandler))
	o := aheadOpts(1)
	o.Pipeline = pipe
	if err := <-pushAheadAsync(b, filepath.Join(walDir, names[0]), o); err != nil {
		t.Fatal(err)
	}
	cancel()
	pipe.Wait()
	if got := records(t, walDir); len(got) != 0 {
		t.Fatalf("records after the pipeline stopped: %q, want none", got)
	}
	if _, err := os.Stat(recordPath(walDir, names[1])); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("record of the cut-off push: %v", err)
	}
	assertAbsent(t, fb, ahead)
}

// TestPushAheadPipelineBacklog: PostgreSQL's archiver working through a
// backlog call by call (.ready renamed to .done after each), uploads of
// varying speed: every file is uploaded exactly once and each call after
// the first is answered from a record.
func TestPushAheadPipelineBacklog(t *testing.T) {
	t.Parallel()
	fb := mem.New()
	walDir, names := pgWAL(t, 40)
	mustPush(t, fb, filepath.Join(walDir, names[39]), opts(repository.LZ4))
	done(t, walDir, names[39])
	names = names[:39]
	b := storagetest.NewFault(fb)
	var n atomic.Int64
	b.Before(storagetest.OpPut, func(k string) bool { return k != repository.IdentityKey }, func(ctx context.Context, _ string) error {
		time.Sleep(time.Duration(n.Add(7)%23) * time.Millisecond)
		return nil
	})
	pipe := archive.NewPipeline(context.Background(), slog.New(slog.DiscardHandler))
	o := aheadOpts(4)
	o.Pipeline = pipe
	skipped := 0
	for _, name := range names {
		res := pushAhead(t, b, filepath.Join(walDir, name), o)
		if res.Skipped {
			skipped++
		}
		done(t, walDir, name)
	}
	pipe.Wait()
	puts := map[string]int{}
	for _, k := range b.Returned(storagetest.OpPut) {
		puts[k]++
	}
	for _, name := range names {
		if k := walKey(t, name, repository.LZ4); puts[k] != 1 {
			t.Errorf("%s uploaded %d times, want once", name, puts[k])
		}
	}
	if skipped != len(names)-1 {
		t.Errorf("%d of %d calls answered from a record, want all but the first", skipped, len(names))
	}
}

// TestPushAheadPipelineYieldsTheLinkToTheRequestedFile: a call whose own
// file is being pushed ahead, on a link the other pushes ahead fill, cuts
// those off halfway through its time (they leave no record) and is then
// answered from its file's record; otherwise it would wait past its
// deadline, on every retry.
func TestPushAheadPipelineYieldsTheLinkToTheRequestedFile(t *testing.T) {
	t.Parallel()
	fb, b, walDir, names := faultWAL(t, 5)
	var link slowLink
	// names[4], already archived, is also a hog: a push ahead the call
	// started after the cut-off would hold the link.
	link.install(b, []string{walKey(t, names[2], repository.LZ4), walKey(t, names[3], repository.LZ4), walKey(t, names[4], repository.LZ4)},
		[]string{walKey(t, names[1], repository.LZ4)})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	pipe := archive.NewPipeline(ctx, slog.New(slog.DiscardHandler))
	o := aheadOpts(3)
	o.Pipeline = pipe
	// The first call's own file goes freely; names[1] to [3] are pushed
	// ahead, the last two holding the link.
	if err := <-pushAheadAsync(b, filepath.Join(walDir, names[0]), o); err != nil {
		t.Fatal(err)
	}
	done(t, walDir, names[0])
	// The pause after a cut-off cannot be recorded here (a dangling
	// symlink in its place), so only the call's own cut-off keeps it from
	// starting new pushes ahead.
	if err := os.Symlink(filepath.Join(t.TempDir(), "gone", "ahead-paused"), filepath.Join(walDir, "walvault", "ahead-paused")); err != nil {
		t.Fatal(err)
	}

	call, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	res, err := archive.PushAhead(call, b, filepath.Join(walDir, names[1]), o)
	if err != nil {
		t.Fatalf("the call for %s, being pushed ahead on a full link: %v, want it answered once the others are cut off", names[1], err)
	}
	if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
		t.Errorf("answered after %v, want the others cut off only halfway through the 2s", elapsed)
	}
	if !res.Skipped {
		t.Errorf("the call for %s: %+v, want it answered from its record", names[1], res)
	}
	// Once it has cut them off, the call starts no new pushes ahead.
	time.Sleep(300 * time.Millisecond)
	if _, started := link.hogged.Load(walKey(t, names[4], repository.LZ4)); started {
		t.Errorf("the call that cut the pushes ahead off started %s's", names[4])
	}
	stop()
	pipe.Wait()
	if got := records(t, walDir); len(got) != 0 {
		t.Errorf("records of pushes cut off: %q, want none", got)
	}
	assertAbsent(t, fb, walKey(t, names[2], repository.LZ4))
}
