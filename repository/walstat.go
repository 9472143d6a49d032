package repository

import (
	"context"
	"errors"

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
	candidates := []Compression{None}
	if Compressed(f.Kind) {
		candidates = []Compression{preferred}
		for _, c := range Compressions {
			if c != preferred {
				candidates = append(candidates, c)
			}
		}
	}
	var miss error
	for _, c := range candidates {
		key := WALKey(f, c)
		info, err := b.Stat(ctx, key)
		if err == nil {
			if info.Key == "" {
				info.Key = key
			}
			return info, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return storage.ObjectInfo{}, err
		}
		if miss == nil {
			miss = err
		}
	}
	return storage.ObjectInfo{}, miss
}
