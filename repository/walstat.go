package repository

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// StatWAL finds an archived WAL file under the key of any codec (keys
// carry the codec, and each push may use another), trying preferred
// first: one request when the repository's usual codec is preferred. It
// returns the first key found and its info; an error wrapping
// storage.ErrNotFound only when every key is absent, and any other error
// as soon as a key cannot be asked about.
func StatWAL(ctx context.Context, b storage.Backend, f wal.FileName, preferred Compression) (storage.ObjectInfo, error) {
	if !Compressed(f.Kind) {
		preferred = None // one key whatever the codec
	}
	info, err := statKey(ctx, b, WALKey(f, preferred))
	if !errors.Is(err, storage.ErrNotFound) || !Compressed(f.Kind) {
		return info, err
	}
	if other, oerr := StatWALOtherCodecs(ctx, b, f, preferred); oerr == nil || !errors.Is(oerr, storage.ErrNotFound) {
		return other, oerr
	}
	return storage.ObjectInfo{}, err
}

// PushedAt is when a WAL object was pushed: its pushed-at metadata (the
// pushing host's clock), else the storage's modification time.
func PushedAt(info storage.ObjectInfo) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, info.Metadata[MetaPushedAt]); err == nil {
		return t
	}
	return info.ModTime
}

// StatWALOtherCodecs looks for f under the key of every codec but except,
// all at once (one request each), and returns the first found in the order
// of Compressions. Its error wraps storage.ErrNotFound only when every key
// is absent (or f has one key whatever the codec).
func StatWALOtherCodecs(ctx context.Context, b storage.Backend, f wal.FileName, except Compression) (storage.ObjectInfo, error) {
	var others []Compression
	for _, c := range Compressions {
		if c != except && Compressed(f.Kind) {
			others = append(others, c)
		}
	}
	infos := make([]storage.ObjectInfo, len(others))
	errs := make([]error, len(others))
	var wg sync.WaitGroup
	for i, c := range others {
		wg.Go(func() { infos[i], errs[i] = statKey(ctx, b, WALKey(f, c)) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return storage.ObjectInfo{}, err
		}
	}
	for i, err := range errs {
		if err == nil {
			return infos[i], nil
		}
	}
	return storage.ObjectInfo{}, fmt.Errorf("%s under no codec's key but %s in %s: %w", f, except, b.Location(), storage.ErrNotFound)
}

// statKey is b.Stat with the key filled in when the backend leaves it out.
func statKey(ctx context.Context, b storage.Backend, key string) (storage.ObjectInfo, error) {
	info, err := b.Stat(ctx, key)
	if err == nil && info.Key == "" {
		info.Key = key
	}
	return info, err
}

// StatWALAtOnce is StatWAL asking for every codec's key at once: one round
// trip whether or not f is there, for a loop that waits for f to arrive
// (StatWAL costs two while it is absent). preferred's key wins when
// several are found, and once it is found the others are not waited for
// (they are cancelled).
func StatWALAtOnce(ctx context.Context, b storage.Backend, f wal.FileName, preferred Compression) (storage.ObjectInfo, error) {
	if !Compressed(f.Kind) {
		return StatWAL(ctx, b, f, preferred)
	}
	octx, cancel := context.WithCancel(ctx)
	var other storage.ObjectInfo
	var otherErr error
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { other, otherErr = StatWALOtherCodecs(octx, b, f, preferred) })
	info, err := statKey(ctx, b, WALKey(f, preferred))
	switch {
	case err == nil:
		return info, nil
	case !errors.Is(err, storage.ErrNotFound):
		return storage.ObjectInfo{}, err
	}
	wg.Wait()
	if otherErr == nil || !errors.Is(otherErr, storage.ErrNotFound) {
		return other, otherErr
	}
	return storage.ObjectInfo{}, err
}
