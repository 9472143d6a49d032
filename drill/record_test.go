package drill

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
)

func TestWriteRecordNeverOverwrites(t *testing.T) {
	b, _ := filetest.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	first := &Record{OK: true, FinishedAt: at, RTOSeconds: 1}
	second := &Record{OK: false, Error: "boom", FinishedAt: at}
	if err := WriteRecord(ctx, b, first, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteRecord(ctx, b, second, nil); err != nil {
		t.Fatal(err)
	}
	if first.Key == second.Key || first.Key != "drills/20261125T103000.000Z.json" || second.Key != "drills/20261125T103000.001Z.json" {
		t.Fatalf("keys %q and %q: want two, a millisecond apart", first.Key, second.Key)
	}
	got, err := ReadRecord(ctx, b, first.Key)
	if err != nil || !got.OK || got.RTOSeconds != 1 || got.FormatVersion != RecordFormatVersion || got.ID != first.ID {
		t.Fatalf("first record read back: %+v, %v", got, err)
	}
	if err := WriteRecord(ctx, b, &Record{FinishedAt: at}, &storage.Retention{Mode: storage.Governance, Until: at.Add(time.Hour)}); !errors.Is(err, storage.ErrUnsupported) {
		t.Errorf("a locked record on a file repository: got %v, want ErrUnsupported", err)
	}
}

func TestLatest(t *testing.T) {
	b := mem.New()
	ctx := context.Background()
	last, lastOK, err := Latest(ctx, b)
	if err != nil || last != nil || lastOK != nil {
		t.Fatalf("empty repository: %v, %v, %v", last, lastOK, err)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i, ok := range []bool{true, true, false, false} {
		if err := WriteRecord(ctx, b, &Record{OK: ok, FinishedAt: at.Add(time.Duration(i) * time.Hour), RTOSeconds: float64(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Not records: ignored.
	for _, key := range []string{"drills/README", "drills/x.json"} {
		if err := b.Put(ctx, key, strings.NewReader("{}"), storage.PutOptions{Size: 2}); err != nil {
			t.Fatal(err)
		}
	}
	last, lastOK, err = Latest(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if last == nil || last.OK || last.FinishedAt != at.Add(3*time.Hour) {
		t.Errorf("last = %+v, want the failed one at 13:00", last)
	}
	if lastOK == nil || !lastOK.OK || lastOK.RTOSeconds != 1 {
		t.Errorf("last OK = %+v, want the one at 11:00", lastOK)
	}
	reads := 0
	_, _, err = LatestOf(ctx, []string{"a", "b"}, func(string) (Record, error) {
		reads++
		return Record{}, errors.New("storage down")
	})
	if err == nil || reads != 1 {
		t.Errorf("a read error: got %v after %d reads, want it at once", err, reads)
	}
}

// TestLatestWithDamagedRecord: a newest record that does not parse counts
// as a failed drill at the time in its key, and the older successful one
// is still found: one damaged object no longer fails the exporter's whole
// scan and info (explore23a F9).
func TestLatestWithDamagedRecord(t *testing.T) {
	b := mem.New()
	ctx := t.Context()
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if err := WriteRecord(ctx, b, &Record{OK: true, FinishedAt: at, RTOSeconds: 7}, nil); err != nil {
		t.Fatal(err)
	}
	const damaged = "drills/20261207T201900.000Z.json"
	if err := b.Put(ctx, damaged, strings.NewReader("not json"), storage.PutOptions{Size: 8}); err != nil {
		t.Fatal(err)
	}
	last, lastOK, err := Latest(ctx, b)
	if err != nil {
		t.Fatalf("Latest: %v, want the damaged record counted, not an error", err)
	}
	if last == nil || last.OK || last.Key != damaged || !strings.Contains(last.Error, "not valid JSON") || last.FinishedAt != time.Date(2026, 12, 7, 20, 19, 0, 0, time.UTC) {
		t.Errorf("last = %+v, want the damaged record as a failed drill at 2026-12-07 20:19", last)
	}
	if lastOK == nil || lastOK.RTOSeconds != 7 {
		t.Errorf("last OK = %+v, want the successful one", lastOK)
	}
}

// TestLatestWithUnreadableRecord: a record the storage refuses for good
// (a file:// object without its header) counts as a failed drill too, not
// a failed scan (explore23f F3); a transient error still fails.
func TestLatestWithUnreadableRecord(t *testing.T) {
	refused := storage.Permanent(errors.New("not a walvault object file (bad header)"))
	last, _, err := LatestOf(t.Context(), []string{"drills/20261207T201900.000Z.json"}, func(string) (Record, error) { return Record{}, refused })
	if err != nil || last == nil || last.OK || !strings.Contains(last.Error, "bad header") {
		t.Errorf("a refused record: %+v, %v; want a failed drill naming the refusal", last, err)
	}
}
