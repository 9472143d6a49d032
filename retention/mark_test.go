package retention

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/wal"
)

// markPuts records the retention of every Put and passes the rest on (a
// directory cannot lock objects).
type markPuts struct {
	storage.Backend
	retention map[string]*storage.Retention
}

func (m *markPuts) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	m.retention[key] = opts.Retention
	opts.Retention = nil
	return m.Backend.Put(ctx, key, r, opts)
}

// markRepo is a file repository with one DONE-looking backup (manifest and
// all) and one INCOMPLETE folder (a part, no manifest), under lock.
func markRepo(t *testing.T, lock repository.LockPolicy) (b *markPuts, done, incomplete string) {
	t.Helper()
	ctx := context.Background()
	fb, _ := filetest.New(t)
	b = &markPuts{Backend: fb, retention: map[string]*storage.Retention{}}
	const segSize = 16 << 20
	repotest.Init(t, fb, repository.NewIdentity(7, segSize, 15, repository.LZ4, "h", time.Now()).WithLock(lock))
	t0 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	done, incomplete = repository.NewBackupID(t0), repository.NewBackupID(t0.Add(24*time.Hour))
	seg := wal.Segment{Timeline: 1, Seg: 2}
	m := repository.BackupManifest{
		FormatVersion: 1, ID: done, SystemID: "7", WALSegmentSize: segSize, StartTimeline: 1, StopTimeline: 1,
		StartLSN: "0/2000028", StopLSN: "0/2000100", StartWAL: seg.String(), StopWAL: seg.String(), StartTime: t0, StopTime: t0.Add(time.Minute),
	}
	if err := repository.WriteBackupManifest(ctx, fb, m, nil); err != nil {
		t.Fatal(err)
	}
	repotest.Put(t, fb, repository.BackupPartKey(incomplete, "base.tar", 0, repository.LZ4), []byte("x"))
	return b, done, incomplete
}

func kept(t *testing.T, b storage.Backend, id string) bool {
	t.Helper()
	marks, err := repository.LoadMarks(context.Background(), b, id)
	if err != nil {
		t.Fatal(err)
	}
	return repository.Kept(marks)
}

func TestSetKeep(t *testing.T) {
	ctx := context.Background()
	b, id, _ := markRepo(t, repository.LockPolicy{})
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		keep        bool
		wantChanged bool
	}{
		{false, false}, // never marked: already under retention
		{true, true},
		{true, false},
		{false, true},
		{false, false},
		{true, true},
	}
	for i, st := range steps {
		res, err := SetKeep(ctx, b, id, st.keep, now.Add(time.Duration(i)*time.Minute), repository.MarkOptions{Host: "h", Walvault: "test"})
		if err != nil {
			t.Fatalf("step %d (keep %v): %v", i, st.keep, err)
		}
		if res.Changed != st.wantChanged {
			t.Fatalf("step %d (keep %v): changed %v, want %v", i, st.keep, res.Changed, st.wantChanged)
		}
		if res.Changed && (res.Mark.Keep != st.keep || res.Mark.BackupID != id || res.Mark.Key == "") {
			t.Fatalf("step %d: mark %+v, want keep %v of %s", i, res.Mark, st.keep, id)
		}
		if got := kept(t, b, id); got != st.keep {
			t.Fatalf("step %d: kept %v after SetKeep(%v)", i, got, st.keep)
		}
	}
	marks, _ := repository.LoadMarks(ctx, b, id)
	if len(marks) != 3 {
		t.Errorf("got %d mark objects, want 3 (one per change, none for a no-op)", len(marks))
	}
}

func TestSetKeepRefusesWhatIsNoBackup(t *testing.T) {
	b, _, incomplete := markRepo(t, repository.LockPolicy{})
	for _, id := range []string{incomplete, "20200101T000000Z"} {
		_, err := SetKeep(context.Background(), b, id, true, time.Now(), repository.MarkOptions{})
		if !errors.Is(err, repository.ErrNoBackup) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("SetKeep(%s): got %v, want repository.ErrNoBackup saying it does not exist", id, err)
		}
		if len(b.retention) != 0 {
			t.Errorf("SetKeep(%s) wrote %v", id, b.retention)
		}
	}
}

func TestSetKeepLocksByTheRepositoryPolicy(t *testing.T) {
	b, id, _ := markRepo(t, repository.LockPolicy{Mode: storage.Governance, Days: 30})
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	res, err := SetKeep(context.Background(), b, id, true, now, repository.MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ret := b.retention[res.Mark.Key]
	if ret == nil || ret.Mode != storage.Governance || !ret.Until.Equal(now.Add(30*24*time.Hour)) {
		t.Fatalf("mark %s written with retention %+v, want GOVERNANCE until %s", res.Mark.Key, ret, now.Add(30*24*time.Hour))
	}
}
