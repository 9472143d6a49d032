package basebackup

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/pg"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// TestStreamStopsAtFirstFailedUpload: a Put that fails while the server is
// quiet (PostgreSQL waiting for archive_command to archive the backup's
// last segment before it sends the manifest; the outage that failed the
// Put may block that too) ends the backup at once. The stream is
// abandoned there, not read to its end, and the Put's error is returned.
func TestStreamStopsAtFirstFailedUpload(t *testing.T) {
	// Not parallel: it counts the package's goroutines process-wide, and
	// a parallel backup test's uploads would show up among them.
	diskFull := errors.New("no space left on device")
	const chunk = 64 << 10
	data := randomBytes(int(MinPartSize + MinPartSize/2)) // part 0 whole, part 1 half
	msgs := []pgproto3.BackendMessage{newArchiveMsg("base.tar", "")}
	for off := 0; off < len(data); off += chunk {
		msgs = append(msgs, pgtest.CopyData('d', string(data[off:min(off+chunk, len(data))])))
	}
	waiting := &pgtest.Pause{} // never ends: archive_command is blocked
	w := script(backupHead(), msgs, []pgproto3.BackendMessage{
		waiting,
		pgtest.CopyData('m', ""), pgtest.CopyData('d', "{}"),
	}, backupTail())

	// Part 0's Put fails only once part 1 is read up to the server's pause:
	// nothing but the failure itself can end the wait for the next message.
	inner := mem.New()
	fb := storagetest.NewFault(inner)
	fb.Delay(storagetest.OpPut, storagetest.Contains(".00000"), 300*time.Millisecond)
	fb.Fail(storagetest.OpPut, storagetest.Contains(".00000"), diskFull)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	opts, err := Options{PartSize: MinPartSize, Compression: repository.LZ4, Log: slog.New(slog.DiscardHandler)}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = stream(ctx, w, "BASE_BACKUP", fb, opts, backupInfo{label: "l", sys: pg.SystemInfo{SystemID: "7000000000000000001", Timeline: 1}})
	elapsed := time.Since(start)
	if !errors.Is(err, diskFull) {
		t.Fatalf("stream: got %v, want the failed upload's error (%v)", err, diskFull)
	}
	if !strings.Contains(err.Error(), "base.tar.00000") {
		t.Errorf("error %q does not name the part that failed", err)
	}
	if ctx.Err() != nil || elapsed > 5*time.Second {
		t.Fatalf("stream returned after %v: want it to stop at the failed upload, not wait for the server", elapsed)
	}
	if len(w.Msgs) == 0 || w.Msgs[0] != pgproto3.BackendMessage(waiting) {
		t.Errorf("stream read on past the server's pause (%d messages left): want the stream abandoned there", len(w.Msgs))
	}
	if g := ourGoroutines(); g != "" {
		t.Errorf("goroutines left running after the failed upload:\n%s", g)
	}
	// Part 1 is never stored after part 0 failed; only the start record,
	// written as the backup began, is there.
	_ = inner.List(t.Context(), "", func(oi storage.ObjectInfo) error {
		if _, name, _ := repository.SplitBackupKey(oi.Key); name != repository.BackupStartedName {
			t.Errorf("%s stored, want nothing but the start record after the first part failed", oi.Key)
		}
		return nil
	})
}
