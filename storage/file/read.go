package file

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/walvault/walvault/storage"
)

// Get opens key's object, positioned at its body. The reader is the file
// itself, so it does not observe ctx once Get has returned.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	f, info, err := b.open(ctx, key)
	if err != nil {
		return nil, storage.ObjectInfo{}, storage.OpError("get", key, err)
	}
	return f, info, nil
}

// Stat reads key's header: body size, modification time and metadata.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	f, info, err := b.open(ctx, key)
	if err != nil {
		return storage.ObjectInfo{}, storage.OpError("stat", key, err)
	}
	if err := f.Close(); err != nil {
		return storage.ObjectInfo{}, storage.OpError("stat", key, classify(err))
	}
	return info, nil
}

// open opens key's file and reads its header, leaving the file at the body.
func (b *Backend) open(ctx context.Context, key string) (*os.File, storage.ObjectInfo, error) {
	path, err := b.path(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, storage.ObjectInfo{}, b.notFoundOr(path, err)
	}
	info, err := readInfo(f, key)
	if err != nil {
		_ = f.Close()
		return nil, storage.ObjectInfo{}, err
	}
	return f, info, nil
}

// readInfo reads the header of the object file f, leaving f at the body.
func readInfo(f *os.File, key string) (storage.ObjectInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return storage.ObjectInfo{}, classify(err)
	}
	if fi.IsDir() {
		// Not "not found": the path exists, and this backend does not
		// guess what it means.
		return storage.ObjectInfo{}, errKeyIsDir(f.Name())
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, fmt.Errorf("%s is a special file, not an object file", f.Name())
	}
	hlen, md, err := readHeader(f)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("%s: %w", f.Name(), classify(err))
	}
	size := fi.Size() - hlen
	if size < 0 {
		return storage.ObjectInfo{}, fmt.Errorf("%s: %w", f.Name(), errBadHeader)
	}
	return storage.ObjectInfo{Key: key, Size: size, ModTime: fi.ModTime(), Metadata: md}, nil
}
