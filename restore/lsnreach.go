package restore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// lastRecord is where the last record read whole in an archived segment
// starts, as wal.ScanSegment reads it.
type lastRecord struct {
	At wal.LSN
	// Switch: that record is an XLOG_SWITCH, and the rest of the segment
	// is padding.
	Switch bool
}

// lastRecordIn downloads archived segment seg and finds its last whole
// record. Recovery to an LSN target stops at the first record that starts
// at or after the target, so a target in seg past that record is reached
// only with the next segment: after a WAL switch (pg_switch_wal() returns
// the end of its switch record, which lies in the padding), or where a
// record runs on into the next segment. ok is false when it cannot tell:
// the segment could not be read or decrypted, or its WAL ends early (a
// record the scan refuses); the caller then says what it said before.
func lastRecordIn(ctx context.Context, b storage.Backend, seg wal.Segment, ids *crypt.Identities, log *slog.Logger) (last lastRecord, ok bool) {
	f, done, err := fetchSegmentAside(ctx, b, seg, ids, log)
	if err != nil {
		log.Debug("the target's segment could not be fetched", "segment", seg, "error", err)
		return lastRecord{}, false
	}
	defer done()
	scan, err := wal.ScanSegment(bufio.NewReaderSize(f, 1<<20), seg, nil)
	// Next is nil when the WAL ends inside the segment at a record the
	// scan refuses; Prev is 0 when no record was read whole.
	if err != nil || scan.Next == nil || scan.Next.Prev == 0 {
		log.Debug("the target's segment gives no last record", "segment", seg, "error", err)
		return lastRecord{}, false
	}
	return lastRecord{At: scan.Next.Prev, Switch: scan.Switch}, true
}

// fetchSegmentAside fetches archived segment seg, with wal-fetch's
// checks, into a private temporary directory and opens it; done closes
// and removes it.
func fetchSegmentAside(ctx context.Context, b storage.Backend, seg wal.Segment, ids *crypt.Identities, log *slog.Logger) (f *os.File, done func(), err error) {
	dir, err := os.MkdirTemp("", "walvault-segment-")
	if err != nil {
		return nil, nil, err
	}
	dest := filepath.Join(dir, seg.String())
	if _, err := Fetch(ctx, b, seg.String(), dest, FetchOptions{Identities: ids, Log: log}); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	if f, err = os.Open(dest); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return f, func() { f.Close(); os.RemoveAll(dir) }, nil
}

// copiedBranch refuses to follow timeline o.Child past its branch point
// when its first segment's pages after the switch point carry an older
// timeline (wal.CheckPagesAfterBranch): no server wrote it on o.Child; it
// is the parent's segment put under the child's name, which with a history
// file is all it takes, for someone with write access to the repository,
// to turn a restore to latest off the parent's WAL past the branch
// (explore25a F1). A segment that cannot be read or tells nothing passes:
// recovery reads it with its own checks.
func copiedBranch(ctx context.Context, b storage.Backend, o repository.Overrun, segSize uint32, ids *crypt.Identities, log *slog.Logger) error {
	seg, err := wal.SegmentFromLSN(o.Child, o.SwitchPoint, segSize)
	if err != nil {
		return nil
	}
	f, done, err := fetchSegmentAside(ctx, b, seg, ids, log)
	if err != nil {
		log.Debug("the first segment of a timeline could not be fetched to check its pages", "segment", seg, "error", err)
		return nil
	}
	defer done()
	var evidence string
	whose, err := wal.CheckPagesAfterBranch(bufio.NewReaderSize(f, 1<<20), seg, o.SwitchPoint)
	if err == nil && whose == wal.BranchPagesParent {
		evidence = fmt.Sprintf("its pages after %s were begun on timeline %d", o.SwitchPoint, o.Parent)
	} else if whose == wal.BranchPagesChild {
		return nil // written on the child's timeline
	} else if _, err := f.Seek(0, io.SeekStart); err == nil {
		// A server beginning a timeline writes its first record there:
		// an end-of-recovery record or checkpoint. A switch point inside
		// a record, on another kind, or in the zeros after a WAL switch
		// was made up (explore25e B).
		scan, err := wal.ScanSegment(bufio.NewReaderSize(f, 1<<20), seg, nil)
		if err == nil && scan.End > o.SwitchPoint && !scan.TimelineStartsAt(o.SwitchPoint) {
			evidence = fmt.Sprintf("no record a server writes first on a new timeline (an end-of-recovery record or checkpoint) starts at %s", o.SwitchPoint)
		}
	}
	if evidence == "" {
		return nil
	}
	return fmt.Errorf("%w: recovery would follow timeline %d, which branched off timeline %d at %s, but %s, its first segment, holds timeline %d's WAL past that point (%s): no server wrote it on timeline %d, it is a copy of timeline %d's segment under another name, put in the repository by someone with write access, and following it would leave out everything timeline %d archived after %s (from %s on). Restore with --target-timeline %d, and find out who wrote %s and %s",
		ErrTimelineUnclear, o.Child, o.Parent, o.SwitchPoint, seg, o.Parent, evidence, o.Child, o.Parent, o.Parent, o.SwitchPoint, o.Newest, o.Parent,
		repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: o.Child}, repository.None), seg)
}

// unreachableInSegment is the refusal of a target past seg's last record
// when the segment after seg is not archived (missing: later ones are).
func unreachableInSegment(target wal.LSN, seg, next wal.Segment, last lastRecord, missing bool) error {
	what := fmt.Sprintf("its last whole record starts at %s and the next one runs on into segment %s", last.At, next)
	if last.Switch {
		what = fmt.Sprintf("it ends with a WAL switch whose record starts at %s (pg_switch_wal() returns the end of that record, which lies past it), and the next record is the first of segment %s", last.At, next)
	}
	advice := fmt.Sprintf("wait until %s is archived (on an idle server, SELECT pg_switch_wal() ends it), or choose a target at or before %s", next, last.At)
	if missing {
		advice = fmt.Sprintf("%s is missing from the archive, though later segments are archived: wal-push it from the server's pg_wal if it is still there, or choose a target at or before %s", next, last.At)
	}
	return fmt.Errorf("the target LSN %s cannot be reached with the archived WAL: recovery stops at the first record that starts at or after the target, and none in segment %s does: %s. PostgreSQL would fail with \"recovery ended before configured recovery target was reached\"; %s", target, seg, what, advice)
}
