package repository_test

import (
	"context"
	"errors"
	"testing"

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
