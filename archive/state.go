package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walvault/walvault/internal/osuser"
)

// The push-ahead state lives beside the WAL it describes:
// pg_wal/walvault/pushed/<file name>, one small JSON record per file that a
// wal-push uploaded ahead of PostgreSQL's call for it.
//
// The invariant: a record exists only for a file whose object was durable in
// the repository when the record was written (it is written after the upload
// returned success). A crash can lose a record (the later call then pushes
// normally and gets "already archived"), never create one for an object that
// is not there. A record is trusted only when the repository is the same
// one and the file on disk still has the recorded size and mtime, and either
// the recorded sha256 or, for a file that had settled before it was read
// (see SettledMargin), the recorded inode and change time; so a torn or
// stale record is at worst ignored.
const (
	stateDirName  = "walvault"
	pushedDirName = "pushed"
	tempPrefix    = ".tmp-"
)

// pushRecord is what a push-ahead recorded about one file.
type pushRecord struct {
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	MTime      int64  `json:"mtime_ns"` // the file's mtime when it was read, Unix nanoseconds
	Repository string `json:"repository"`
	Key        string `json:"key"`
	// The file's identity when it was read (Linux only; zero elsewhere and
	// in records of older walvaults) and when the read began, Unix
	// nanoseconds: what lets the later call trust a settled file without
	// reading it.
	Dev    uint64 `json:"dev,omitempty"`
	Inode  uint64 `json:"inode,omitempty"`
	CTime  int64  `json:"ctime_ns,omitempty"`
	ReadAt int64  `json:"read_at_ns,omitempty"`
}

// SettledMargin: a file whose change time is at least this much older than
// the moment a push-ahead began reading it is trusted later on its inode and
// change time alone; a younger one is hashed again. Any write after the read
// began stamps the file with a later change time: the kernel's clock may lag
// time.Now by a tick and file systems round it (to 1 ns on ext4, xfs and
// btrfs, to 2 s on the coarsest), so only a file last changed well before
// the read can keep its recorded change time and still have been written
// since. The margin also covers a write(2) that had stamped the file just
// before the read but was still copying its data.
const SettledMargin = 3 * time.Second

// How a record was proven to describe the file on disk (AheadResult.Proof).
const (
	ProofSHA256 = "sha256"
	ProofStat   = "inode and change time"
)

// pushedDir is where records of files in walDir (pg_wal) are kept.
func pushedDir(walDir string) string {
	return filepath.Join(walDir, stateDirName, pushedDirName)
}

// ensurePushedDir creates the record directory, private to the server user.
func ensurePushedDir(walDir string) (string, error) {
	dir, err := ensureStateDir(walDir, pushedDirName)
	if err != nil {
		return "", fmt.Errorf("create push-ahead state directory: %w", err)
	}
	return dir, nil
}

// ensureStateDir creates pg_wal/walvault/sub, private to the server user:
// as root (a push by hand), it gives both levels to pg_wal's owner, or the
// server's own calls could write nothing there (explore24d F6).
func ensureStateDir(walDir, sub string) (string, error) {
	dir := filepath.Join(walDir, stateDirName, sub)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w (if a walvault run as root created %s, give it to the server's user: chown -R postgres: %s)", err, filepath.Dir(dir), filepath.Dir(dir))
		}
		return "", err
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := osuser.MatchOwner(d, walDir); err != nil {
			return "", err
		}
	}
	// MkdirAll leaves existing directories alone; make sure neither level
	// is readable by others even if someone created it with a wider mode.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm() != 0o700 {
			if err := os.Chmod(d, 0o700); err != nil {
				return "", fmt.Errorf("chmod %s: %w", d, err)
			}
		}
	}
	return dir, nil
}

// writeRecord stores rec for name: temp file, then rename, so a reader sees
// the old record, the new one, or none; never half of one. There is no
// fsync: a record lost or emptied by a crash only means the later call
// pushes normally.
func writeRecord(dir, name string, rec pushRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := replaceFile(dir, name, data); err != nil {
		return fmt.Errorf("record push-ahead of %s: %w", name, err)
	}
	return nil
}

// replaceFile writes dir/name through a temp file and a rename, without
// fsync: state files are hints whose loss costs only a slower push.
func replaceFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, tempPrefix+name+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = osuser.MatchOwner(tmp, dir)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// readRecord returns name's record; ok is false when there is none or it is
// unreadable (treated as none).
func readRecord(dir, name string) (rec pushRecord, ok bool) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return pushRecord{}, false
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.SHA256 == "" {
		return pushRecord{}, false
	}
	return rec, true
}

// hasRecord says whether name has a record, without checking it.
func hasRecord(dir, name string) bool {
	_, err := os.Lstat(filepath.Join(dir, name))
	return err == nil
}

func removeRecord(dir, name string) error {
	err := os.Remove(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// check says whether rec describes the file at path as it is now, pushed to
// repository, and how it knows: proof is ProofStat or ProofSHA256 when it
// does, "" with the reason why not when it does not. The size and mtime must
// match; then a file that had settled before it was pushed ahead (the
// recorded change time is SettledMargin older than the read) is proven by
// the same inode and change time, which only a write or a replacement
// changes; any other file is hashed again, which also catches a rewrite
// within the clock's resolution.
func (rec pushRecord) check(path, repository string) (proof, why string, err error) {
	if rec.Repository != repository {
		return "", fmt.Sprintf("recorded for repository %s", rec.Repository), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", err
	}
	if fi.Size() != rec.Size || fi.ModTime().UnixNano() != rec.MTime {
		return "", fmt.Sprintf("file changed since it was pushed ahead (size %d, then %d; mtime %s, then %s)",
			rec.Size, fi.Size(), time.Unix(0, rec.MTime).UTC().Format(time.RFC3339Nano), fi.ModTime().UTC().Format(time.RFC3339Nano)), nil
	}
	if rec.settled() {
		if id, ok := identityOf(fi); ok && id == rec.identity() {
			return ProofStat, "", nil
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rec.SHA256 {
		return "", fmt.Sprintf("file changed since it was pushed ahead (sha256 %s, then %s)", rec.SHA256, got), nil
	}
	return ProofSHA256, "", nil
}

// settled says whether the file had last changed SettledMargin or more
// before the push-ahead began reading it (false for records without an
// identity).
func (rec pushRecord) settled() bool {
	return rec.CTime != 0 && rec.ReadAt != 0 && rec.CTime <= rec.ReadAt-SettledMargin.Nanoseconds()
}

func (rec pushRecord) identity() fileIdentity {
	return fileIdentity{Dev: rec.Dev, Inode: rec.Inode, CTime: rec.CTime}
}

// pruneRecords removes records (and leftover temp files) whose file is no
// longer in walDir: PostgreSQL recycled or removed it, so it will never ask
// for it. One readdir, one lstat per record.
func pruneRecords(dir, walDir string, now time.Time) (removed int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) {
			// A crashed writer's temp file; give a live one time to finish.
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > time.Minute {
				if os.Remove(filepath.Join(dir, name)) == nil {
					removed++
				}
			}
			continue
		}
		if _, err := os.Lstat(filepath.Join(walDir, name)); errors.Is(err, fs.ErrNotExist) {
			if os.Remove(filepath.Join(dir, name)) == nil {
				removed++
			}
		}
	}
	return removed
}
