package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/walvault/walvault/storage"
)

// List calls fn once per object whose key starts with prefix, in lexical key
// order. It reads one directory at a time and descends only into directories
// whose keys can match prefix, so memory is bounded by the largest directory.
// Listed entries carry Key, Size and ModTime; Metadata is nil.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return storage.OpError("list", prefix, err)
	}
	// A root that vanished would otherwise look like an empty repository.
	if err := b.checkRoot(); err != nil {
		return storage.OpError("list", prefix, err)
	}
	return b.walk(ctx, b.root, "", prefix, fn)
}

// entry is one directory entry with the key order it sorts by: a directory
// "a" holds keys "a/...", so it sorts as "a/", after "a-b" and "a.b" and
// before "a0". Sorting by plain name would put "a/x" before "a-b".
type entry struct {
	name     string
	sort     string
	isDir    bool
	dangling bool // a symbolic link to nothing: a file or a directory?
}

// walk lists the directory dir, whose keys start with dirKey ("" or ending
// in "/").
func (b *Backend) walk(ctx context.Context, dir, dirKey, prefix string, fn func(storage.ObjectInfo) error) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		if dirKey != "" && errors.Is(err, os.ErrNotExist) {
			return nil // never removed by this backend; gone is empty
		}
		return storage.OpError("list", prefix, fmt.Errorf("read directory %s: %w", dir, classify(err)))
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tempPrefix) {
			continue
		}
		if dirKey == "" && name == "lost+found" && de.IsDir() {
			// A repository at a filesystem's root (ext4, xfs) has the
			// file system's own, root's alone: no key of walvault's.
			continue
		}
		typ := de.Type()
		if typ&os.ModeSymlink != 0 {
			// Follow symbolic links, as Get does: a directory moved to
			// another disk and linked back must not vanish from List.
			fi, err := os.Stat(filepath.Join(dir, name))
			if errors.Is(err, os.ErrNotExist) {
				entries = append(entries, entry{name: name, sort: name, dangling: true})
				continue
			}
			if err != nil {
				return storage.OpError("list", prefix, classify(err))
			}
			typ = fi.Mode().Type()
		}
		switch {
		case typ.IsDir():
			entries = append(entries, entry{name: name, sort: name + "/", isDir: true})
		case typ.IsRegular():
			entries = append(entries, entry{name: name, sort: name})
		}
		// Special files (sockets, devices, pipes) are not objects.
	}
	des = nil
	sort.Slice(entries, func(i, j int) bool { return entries[i].sort < entries[j].sort })

	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return storage.OpError("list", prefix, err)
		}
		key := dirKey + e.sort
		// A directory matches when keys under it can start with prefix.
		match := strings.HasPrefix(key, prefix) || (e.isDir || e.dangling) && strings.HasPrefix(prefix, key)
		if !match {
			if key > prefix {
				// Keys starting with prefix form one contiguous range
				// and entries come in key order: nothing later matches.
				break
			}
			continue
		}
		if e.dangling {
			// Its target may be a disk that is not mounted: listing
			// around it would report its objects as absent.
			return storage.OpError("list", prefix, fmt.Errorf("symbolic link %s leads to a missing target (is a disk unmounted?)", filepath.Join(dir, e.name)))
		}
		if e.isDir {
			if err := b.walk(ctx, filepath.Join(dir, e.name), key, prefix, fn); err != nil {
				return err
			}
			continue
		}
		info, ok, err := stat(filepath.Join(dir, e.name), key)
		if err != nil {
			return storage.OpError("list", key, err)
		}
		if !ok {
			continue // deleted since ReadDir
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// stat reads a listed object's size from its header. ok is false when the
// file has been deleted since the directory was read.
func stat(path, key string) (storage.ObjectInfo, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return storage.ObjectInfo{}, false, nil
		}
		return storage.ObjectInfo{}, false, classify(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return storage.ObjectInfo{}, false, classify(err)
	}
	hlen, _, err := readHeaderLen(f)
	if errors.Is(err, errBadHeader) || err == nil && fi.Size() < hlen {
		// Not an object this backend wrote (a note, an editor's or
		// rsync's leftover, NFS's .nfs files): listed whole, as S3 lists
		// a foreign object, for its reader to call a stray (reading it
		// fails). A listing that failed on it would stop every reader,
		// recovery's end-of-archive question included.
		return storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, true, nil
	}
	if err != nil {
		return storage.ObjectInfo{}, false, fmt.Errorf("%s: %w", path, classify(err))
	}
	return storage.ObjectInfo{Key: key, Size: fi.Size() - hlen, ModTime: fi.ModTime()}, true, nil
}
