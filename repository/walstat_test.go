package repository_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// failStat fails every Stat of one key with an error other than "absent".
type failStat struct {
	storage.Backend
	key string
}

var errStatBroken = errors.New("stat broken")

func (f failStat) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if key == f.key {
		return storage.ObjectInfo{}, errStatBroken
	}
	return f.Backend.Stat(ctx, key)
}

// TestStatWAL: a segment is found under whichever codec's key holds it,
// absence is ErrNotFound only when no key holds it, and a key that cannot
// be asked about is an error, never "absent".
func TestStatWAL(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	seg := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 5}}
	missing := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 6}}
	putRaw(t, b, repository.WALKey(seg, repository.Zstd), "z")

	for _, preferred := range repository.Compressions {
		info, err := repository.StatWAL(ctx, b, seg, preferred)
		if err != nil || info.Key != repository.WALKey(seg, repository.Zstd) {
			t.Errorf("preferring %s: %q, %v; want the zstd key", preferred, info.Key, err)
		}
		if _, err := repository.StatWAL(ctx, b, missing, preferred); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("preferring %s, a missing segment: %v, want ErrNotFound", preferred, err)
		}
	}
	if info, err := repository.StatWALOtherCodecs(ctx, b, seg, repository.LZ4); err != nil || info.Key != repository.WALKey(seg, repository.Zstd) {
		t.Errorf("other codecs than lz4: %q, %v; want the zstd key", info.Key, err)
	}
	if _, err := repository.StatWALOtherCodecs(ctx, b, seg, repository.Zstd); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("other codecs than zstd: %v, want ErrNotFound", err)
	}
	broken := failStat{b, repository.WALKey(missing, repository.None)}
	if _, err := repository.StatWAL(ctx, broken, missing, repository.LZ4); !errors.Is(err, errStatBroken) {
		t.Errorf("with one key failing: %v, want its error", err)
	}
	if _, err := repository.StatWALOtherCodecs(ctx, broken, missing, repository.LZ4); !errors.Is(err, errStatBroken) {
		t.Errorf("other codecs, with one key failing: %v, want its error", err)
	}
}

// allAtOnce answers a Stat only once want of them have begun, or after a
// second (noting then that they came one after another).
type allAtOnce struct {
	storage.Backend
	want int

	mu     sync.Mutex
	begun  int
	all    chan struct{}
	serial bool
}

func (a *allAtOnce) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	a.mu.Lock()
	if a.begun++; a.begun == a.want {
		close(a.all)
	}
	a.mu.Unlock()
	select {
	case <-a.all:
	case <-time.After(time.Second):
		a.mu.Lock()
		a.serial = true
		a.mu.Unlock()
	}
	return a.Backend.Stat(ctx, key)
}

// TestStatWALAtOnce: the same answers as StatWAL, every codec's key asked
// for at once (a wait's look costs one round trip), and the preferred
// codec's key wins when several hold the segment.
func TestStatWALAtOnce(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	seg := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 5}}
	missing := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 6}}
	putRaw(t, b, repository.WALKey(seg, repository.Zstd), "z")
	putRaw(t, b, repository.WALKey(seg, repository.None), "n")

	for _, preferred := range repository.Compressions {
		want := repository.WALKey(seg, repository.Zstd)
		if preferred == repository.None {
			want = repository.WALKey(seg, repository.None)
		}
		if info, err := repository.StatWALAtOnce(ctx, b, seg, preferred); err != nil || info.Key != want {
			t.Errorf("preferring %s: %q, %v; want %s", preferred, info.Key, err, want)
		}
		a := &allAtOnce{Backend: b, want: len(repository.Compressions), all: make(chan struct{})}
		if _, err := repository.StatWALAtOnce(ctx, a, missing, preferred); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("preferring %s, a missing segment: %v, want ErrNotFound", preferred, err)
		}
		if a.serial {
			t.Errorf("preferring %s, a missing segment: its keys were asked for one after another", preferred)
		}
	}
	broken := failStat{b, repository.WALKey(missing, repository.None)}
	if _, err := repository.StatWALAtOnce(ctx, broken, missing, repository.LZ4); !errors.Is(err, errStatBroken) {
		t.Errorf("with one key failing: %v, want its error", err)
	}
	broken = failStat{b, repository.WALKey(missing, repository.LZ4)}
	if _, err := repository.StatWALAtOnce(ctx, broken, missing, repository.LZ4); !errors.Is(err, errStatBroken) {
		t.Errorf("with the preferred key failing: %v, want its error", err)
	}
}

// slowOthers answers a Stat of any key but fast's only when its context
// ends, or after a second (noting then that it was waited for).
type slowOthers struct {
	storage.Backend
	fast string

	mu     sync.Mutex
	waited bool
}

func (s *slowOthers) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if key != s.fast {
		select {
		case <-ctx.Done():
			return storage.ObjectInfo{}, ctx.Err()
		case <-time.After(time.Second):
			s.mu.Lock()
			s.waited = true
			s.mu.Unlock()
		}
	}
	return s.Backend.Stat(ctx, key)
}

// TestStatWALAtOnceFoundFirst: once the preferred codec's key is found,
// the other keys' answers are not waited for.
func TestStatWALAtOnceFoundFirst(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	seg := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Seg: 5}}
	putRaw(t, b, repository.WALKey(seg, repository.LZ4), "l")
	s := &slowOthers{Backend: b, fast: repository.WALKey(seg, repository.LZ4)}
	if info, err := repository.StatWALAtOnce(ctx, s, seg, repository.LZ4); err != nil || info.Key != s.fast {
		t.Fatalf("StatWALAtOnce: %q, %v; want %s", info.Key, err, s.fast)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waited {
		t.Error("the other codecs' keys were waited for although the preferred one was found")
	}
}
