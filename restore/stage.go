package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"sync/atomic"
	"time"
)

// stagingDir is the hidden directory inside each target directory where
// extracted files wait until they are verified. A restore killed midway
// leaves it behind (checkTargetDir names it in its hint).
const stagingDir = ".walvault-staging"

type stagedKind uint8

const (
	stagedFile stagedKind = iota
	stagedDir
	stagedSymlink
	// stagedIncremental is an INCREMENTAL.* file of an incremental backup:
	// placing it applies it to the file it reconstructs (layerApply).
	stagedIncremental
)

// staged is an entry extracted but not yet visible.
type staged struct {
	name   string
	kind   stagedKind
	target string // of a symlink; the file an incremental one applies to
	end    int64  // raw stream offset of the entry's last byte, plus one
	// perm and mtime of a file's entry (given to the file an incremental
	// one reconstructs).
	perm  fs.FileMode
	mtime time.Time
	// data, when not nil, is the file's content held in memory instead of
	// a staging file (stager.canHold).
	data []byte
}

// A file of an incremental backup of at most heldIncrementalMax bytes waits
// for its part's verification in memory, while the ones held stay within
// heldIncrementalBudget: an incremental layer is about a thousand small
// files (INCREMENTAL.* files of a few blocks, most of them none; catalog
// files sent whole), and creating, reopening and unlinking a staging file
// for each cost more than applying it (in a profile of a chain restore,
// new inodes were a fifth of the time).
const (
	heldIncrementalMax    = 1 << 20
	heldIncrementalBudget = 16 << 20
)

// stager makes extracted entries visible in the target in archive order,
// each once the stream is verified up to its end. Files are written into
// the staging directory and renamed into place (a rename per file costs
// microseconds, where holding a part back in memory would cost its size);
// directories and symlinks hold no data and are created directly. So a
// part whose sha256 fails never shows a byte in the target, and at most
// the unverified part and the one read ahead sit in the staging directory.
type stager struct {
	root     *os.Root // the target directory
	stage    *os.Root // its staging directory
	verified func() int64
	promoted func()
	pending  []staged
	head     int // pending[:head] are promoted
	// layer, when set, makes entries replace what the chain's earlier
	// backups left (an incremental backup's archive).
	layer *layerApply
	// held is the bytes of the pending entries' data.
	held int64
}

func newStager(root *os.Root, verified func() int64, promoted func()) (*stager, error) {
	if err := root.Mkdir(stagingDir, 0o700); err != nil {
		return nil, fmt.Errorf("create the staging directory %s: %w", stagingDir, err)
	}
	stage, err := root.OpenRoot(stagingDir)
	if err != nil {
		root.RemoveAll(stagingDir)
		return nil, fmt.Errorf("open the staging directory %s: %w", stagingDir, err)
	}
	return &stager{root: root, stage: stage, verified: verified, promoted: promoted}, nil
}

// add queues an entry extracted up to raw offset end.
func (s *stager) add(e staged, end int64) {
	e.end = end
	s.held += int64(len(e.data))
	s.pending = append(s.pending, e)
}

// stageEveryFile, set by tests, holds nothing in memory.
var stageEveryFile atomic.Bool

// canHold says whether a file of an incremental backup of size bytes may
// wait in memory rather than in a staging file.
func (s *stager) canHold(size int64) bool {
	return size <= heldIncrementalMax && s.held+size <= heldIncrementalBudget && !stageEveryFile.Load()
}

// promote makes visible every queued entry that lies within the verified
// part of the stream.
func (s *stager) promote() error {
	v := int64(math.MaxInt64)
	if s.verified != nil {
		v = s.verified()
	}
	return s.promoteUpTo(v)
}

// promoteAll makes every entry visible once the stream was read to its
// end, at raw offset end: the stream must be verified that far.
func (s *stager) promoteAll(end int64) error {
	if s.verified != nil {
		if v := s.verified(); v < end {
			return fmt.Errorf("the tar stream ended at byte %d but is verified only up to byte %d: an internal error; nothing unverified was restored", end, v)
		}
	}
	return s.promoteUpTo(end)
}

func (s *stager) promoteUpTo(v int64) error {
	n := 0
	for s.head < len(s.pending) && s.pending[s.head].end <= v {
		if err := s.place(s.pending[s.head]); err != nil {
			return err
		}
		s.held -= int64(len(s.pending[s.head].data))
		s.pending[s.head] = staged{}
		s.head++
		n++
	}
	if s.head == len(s.pending) {
		s.pending, s.head = s.pending[:0], 0
	} else if s.head >= 1024 && s.head*2 >= len(s.pending) {
		s.pending = append(s.pending[:0], s.pending[s.head:]...)
		s.head = 0
	}
	if n > 0 && s.promoted != nil {
		s.promoted()
	}
	return nil
}

// place makes one entry visible in the target.
func (s *stager) place(e staged) error {
	if s.layer != nil {
		return s.layer.place(s, e)
	}
	switch e.kind {
	case stagedDir:
		return makeDir(s.root, e.name)
	case stagedSymlink:
		return makeSymlink(s.root, e.name, e.target)
	}
	// A rename replaces what is there: never let a second copy of a name
	// overwrite the first.
	if _, err := s.root.Lstat(e.name); err == nil {
		return fmt.Errorf("%w: %s appears twice in the archive", errUnsafeEntry, e.name)
	}
	return s.moveIn(e)
}

// moveIn renames a staged file into place, creating its directory when
// missing.
func (s *stager) moveIn(e staged) error {
	from := stagingDir + "/" + e.name
	err := s.root.Rename(from, e.name)
	if errors.Is(err, fs.ErrNotExist) {
		if dir := path.Dir(e.name); dir != "." {
			if err := makeDir(s.root, dir); err != nil {
				return err
			}
		}
		err = s.root.Rename(from, e.name)
	}
	if err != nil {
		return fmt.Errorf("move %s into place: %w", e.name, err)
	}
	return nil
}

// close removes the staging directory with whatever it still holds: empty
// directories after a success, unverified files after a failure.
func (s *stager) close() error {
	s.stage.Close()
	if err := s.root.RemoveAll(stagingDir); err != nil {
		return fmt.Errorf("remove the staging directory %s: %w", stagingDir, err)
	}
	return nil
}
