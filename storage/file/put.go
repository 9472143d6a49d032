package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/walvault/walvault/storage"
)

// Put stores r under key: temp file beside the target, header and body,
// fsync, read-only, then rename (or an atomic no-replace create with
// IfNotExists) and fsync of the directory. On any failure the temp file is
// removed and no object appears.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	path, err := b.path(key)
	if err != nil {
		return storage.OpError("put", key, err)
	}
	if opts.Retention != nil {
		return storage.OpError("put", key, fmt.Errorf(
			"%w: a local directory cannot make objects immutable (retention %s until %s requested); use an s3:// repository in a bucket with Object Lock enabled",
			storage.ErrUnsupported, opts.Retention.Mode, opts.Retention.Until.UTC().Format("2006-01-02T15:04:05Z")))
	}
	header, err := encodeHeader(opts.Metadata)
	if err != nil {
		return storage.OpError("put", key, storage.Permanent(err))
	}
	if err := ctx.Err(); err != nil {
		return storage.OpError("put", key, err)
	}
	if err := b.put(ctx, path, header, r, opts); err != nil {
		return storage.OpError("put", key, err)
	}
	return nil
}

func (b *Backend) put(ctx context.Context, path string, header []byte, r io.Reader, opts storage.PutOptions) (err error) {
	dir := filepath.Dir(path)
	if err := mkdirAllSync(dir, b.owner); err != nil {
		return classify(err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return classify(err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			if f != nil {
				_ = f.Close()
			}
			if tmp != "" {
				_ = os.Remove(tmp)
			}
		}
	}()

	// The temp file takes the root's owner before it gets its final name,
	// so no object is ever visible with another owner.
	fi, err := f.Stat()
	if err != nil {
		return classify(err)
	}
	if err := b.owner.apply(fi, f.Chown); err != nil {
		return classify(fmt.Errorf("give %s the repository root's owner: %w", tmp, err))
	}
	if _, err := f.Write(header); err != nil {
		return classify(err)
	}
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err != nil {
		return classify(err)
	}
	if opts.Size > 0 && n != opts.Size {
		return fmt.Errorf("body is %d bytes, but PutOptions.Size says %d", n, opts.Size)
	}
	if err := f.Chmod(fileMode); err != nil {
		return classify(err)
	}
	if err := f.Sync(); err != nil {
		return classify(err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return classify(cerr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if opts.IfNotExists {
		if err := linkNoReplace(tmp, path); err != nil {
			if errors.Is(err, os.ErrExist) {
				if isDir(path) {
					return errKeyIsDir(path)
				}
				return storage.ErrExists
			}
			return classify(err)
		}
	} else if err := os.Rename(tmp, path); err != nil {
		if isDir(path) {
			return errKeyIsDir(path)
		}
		return classify(err)
	}
	// The object is in place and the temp name gone: a failure from here
	// on must not remove that name (another Put may have reused it).
	tmp = ""
	if err := syncDir(dir); err != nil {
		return classify(fmt.Errorf("object stored but its directory entry may not be durable: %w", err))
	}
	return nil
}

// ctxReader fails a read once ctx is done, so a cancelled Put stops copying.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// mkdirAllSync creates dir and any missing parents, each given o's owner and
// group right after it is made, fsyncing each new directory's parent so the
// new entries survive a crash. A new directory's own inode (its owner) is
// fsynced when an entry is made in it: the next level, or the object.
func mkdirAllSync(dir string, o owner) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: errors.New("exists and is not a directory")}
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent, o); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		// A concurrent Put may have created it (and gives it its owner);
		// then sync the parent anyway, as the creator may not have done
		// so yet.
		fi, serr := os.Stat(dir)
		if serr != nil || !fi.IsDir() {
			return err
		}
	} else {
		fi, err := os.Lstat(dir)
		if err != nil {
			return err
		}
		if err := o.apply(fi, func(uid, gid int) error { return os.Lchown(dir, uid, gid) }); err != nil {
			return fmt.Errorf("give the new directory %s the repository root's owner: %w", dir, err)
		}
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory, making its entries durable. Filesystems that
// cannot fsync a directory (EINVAL, ENOTSUP: some network and FUSE
// filesystems) are accepted: there is nothing more this process can do.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil && !errors.Is(serr, syscall.EINVAL) && !errors.Is(serr, syscall.ENOTSUP) {
		return serr
	}
	return cerr
}
