// Package file is the local-directory storage.Backend, the embedded default
// for repositories such as file:///var/lib/walvault.
//
// Read backend.go first (paths, key checks), then put.go (how an object
// becomes durable) and format.go (what an object file holds).
//
// # Layout
//
// A key maps to the path root/<key>, with the key's "/" as the directory
// separator: "wal/00000001/000000010000000000000001.lz4" is the file
// root/wal/00000001/000000010000000000000001.lz4. Directories are created as
// needed (mode 0750, less the umask; for the owner see Ownership) and never
// removed: a directory emptied by Delete stays behind, which is harmless and
// avoids racing a concurrent Put.
// Because a path cannot be a file and a directory at once, this backend cannot
// hold both "a" and "a/b"; walvault's layout never needs to. Symbolic links
// inside the root are followed (a directory moved to another disk and linked
// back stays listed). Use a directory below a mount point as the root, not the
// mount point itself: an unmounted disk then shows as a missing root (at
// the mount point, wal-push refuses an empty location it pushed to before),
// and lost+found (unreadable to the postgres user) is passed over anyway.
// A file without this backend's header (a note, an NFS .nfs file) is
// listed whole, as S3 lists an object someone else put: its reader calls
// it a stray, and Get and Stat fail on it.
//
// # Ownership
//
// Every file and directory Put creates takes the owner and group of the root
// directory (as New found it), whoever runs the command: root's check, drill
// or backup-push must not leave behind directories that the repository's
// owner (the postgres user) cannot read. The temp file is given its owner
// before it gets its final name, so no object is ever visible with another
// owner; each new directory is given its owner right after mkdir (a crash in
// between leaves that one directory with the writer's owner). Directories
// that already exist are left as they are: a repository spoiled by an older
// version, or by such a crash, is mended by hand (chown -R owner:group root).
//
// Only root can give a file away. As root a failed chown fails the Put. A
// user other than root writes only where the root's group or mode lets it;
// its chown to the root's owner is refused (EPERM), which is not an error:
// the new entries keep that user as owner, and take the root's group when
// the user belongs to it (or the root directory is setgid, chmod g+s). So
// members of the root's group read what it wrote (directories are 0750,
// objects 0444). What a mismatched owner can break does not break silently:
// a user who cannot read a directory gets "permission denied", an error,
// never storage.ErrNotFound or an empty listing (see below), and check then
// fails its backup and WAL continuity checks with that reason. For a
// repository shared by several users, give the root a group they all belong
// to and the setgid bit.
//
// # On-disk format
//
// Each object is one regular file, mode 0444 (objects are immutable), holding
// its metadata and its body, so an object is never visible without its
// metadata:
//
//	"WALVAULT-OBJECT-1\n"   18 bytes, the magic line
//	length                  4 bytes, big-endian uint32: the JSON's length
//	metadata                a JSON object of string to string ({} when none),
//	                        at most 64 KiB
//	body                    the object's bytes, exactly as given to Put
//
// ObjectInfo.Size is the body's size: the file size less the header. To check
// a body by hand: tail -c +$((22 + LEN + 1)) FILE | sha256sum.
//
// # Writes
//
// Put writes a temp file named ".tmp-*" beside the target, fsyncs it, makes it
// read-only, and moves it into place: rename(2) to replace, or
// renameat2(RENAME_NOREPLACE) for IfNotExists (link(2) on filesystems without
// renameat2), then fsyncs the directory. New directories' entries are fsynced
// too. A crash leaves at most a ".tmp-*" file, which List never reports and
// keys may not name; ListUploads lists them (storage.Uploads), so verify
// reports those older than an hour and delete --confirm removes them. When PutOptions.Size is positive and the reader yields a
// different number of bytes, Put fails and stores nothing (a source that
// shrank or grew mid-read).
//
// # What it must not do
//
//   - Report anything but a missing file as storage.ErrNotFound: permission
//     denied, a damaged object, a directory where an object should be, a
//     dangling symbolic link, or a repository root that vanished or was
//     replaced (an unmounted disk) are errors, never "not found".
//   - Check, then write: never-overwrite is one atomic system call.
//   - Pretend to lock: a local directory cannot be immutable, so Put with
//     Retention fails with storage.ErrUnsupported.
//   - Load a tree into memory: List reads one directory at a time.
package file
