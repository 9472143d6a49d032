package restore

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/walvault/walvault/crypt"
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
	dir, err := os.MkdirTemp("", "walvault-target-")
	if err != nil {
		log.Debug("the target's segment could not be read", "segment", seg, "error", err)
		return lastRecord{}, false
	}
	defer os.RemoveAll(dir)
	dest := filepath.Join(dir, seg.String())
	if _, err := Fetch(ctx, b, seg.String(), dest, FetchOptions{Identities: ids, Log: log}); err != nil {
		log.Debug("the target's segment could not be fetched", "segment", seg, "error", err)
		return lastRecord{}, false
	}
	f, err := os.Open(dest)
	if err != nil {
		return lastRecord{}, false
	}
	defer f.Close()
	scan, err := wal.ScanSegment(bufio.NewReaderSize(f, 1<<20), seg, nil)
	// Next is nil when the WAL ends inside the segment at a record the
	// scan refuses; Prev is 0 when no record was read whole.
	if err != nil || scan.Next == nil || scan.Next.Prev == 0 {
		log.Debug("the target's segment gives no last record", "segment", seg, "error", err)
		return lastRecord{}, false
	}
	return lastRecord{At: scan.Next.Prev, Switch: scan.Switch}, true
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
