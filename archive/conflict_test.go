package archive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// writeHistory writes a timeline history file with the given body.
func writeHistory(t testing.TB, dir, name, body string) (string, string) {
	t.Helper()
	return waltest.WriteFile(t, dir, name, []byte(body))
}

// TestPushConflict: same name, different content is a loud error that names
// the file and both checksums, and overwrites nothing.
func TestPushConflict(t *testing.T) {
	t.Parallel()
	s := seg(1, 0, 3)
	segment := func(seed uint64) func(t *testing.T, dir string) (string, string) {
		return func(t *testing.T, dir string) (string, string) {
			return writeSegment(t, dir, s.String(), header(t, s), seed)
		}
	}
	partial := func(seed uint64) func(t *testing.T, dir string) (string, string) {
		return func(t *testing.T, dir string) (string, string) {
			return writeSegment(t, dir, s.String()+".partial", header(t, s), seed)
		}
	}
	history := func(body string) func(t *testing.T, dir string) (string, string) {
		return func(t *testing.T, dir string) (string, string) {
			return writeHistory(t, dir, "00000002.history", body)
		}
	}
	tests := []struct {
		name          string
		c             repository.Compression
		first, second func(t *testing.T, dir string) (path, sha string)
		wantName      string
	}{
		{"segment lz4", repository.LZ4, segment(1), segment(2), s.String()},
		{"segment none", repository.None, segment(1), segment(2), s.String()},
		{"partial lz4", repository.LZ4, partial(1), partial(2), s.String() + ".partial"},
		{"timeline history", repository.LZ4,
			history("1\t0/4002D98\tno recovery target specified\n"),
			history("1\t0/5000000\tno recovery target specified\n"),
			"00000002.history"},
		{"timeline history, longer", repository.None,
			history("1\t0/4002D98\tno recovery target specified\n"),
			history("1\t0/4002D98\tno recovery target specified\n\n"),
			"00000002.history"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, root := filetest.New(t)
			firstPath, firstSum := tc.first(t, t.TempDir())
			res := mustPush(t, b, firstPath, opts(tc.c))
			stored, info := object(t, b, res.Key)

			secondPath, secondSum := tc.second(t, t.TempDir())
			if firstSum == secondSum {
				t.Fatalf("test setup: both files have sha256 %s", firstSum)
			}
			o := opts(tc.c)
			o.Host = "db-2"
			got, err := archive.Push(context.Background(), b, secondPath, o)
			if err == nil {
				t.Fatalf("Push of different content under an archived name: got %+v, nil; want an error", got)
			}
			if !errors.Is(err, archive.ErrConflict) {
				t.Errorf("Push of different content: got %v, want an error wrapping archive.ErrConflict", err)
			}
			if errors.Is(err, storage.ErrNotFound) || errors.Is(err, archive.ErrWrongCluster) {
				t.Errorf("Push of different content: got %v, want neither ErrNotFound nor ErrWrongCluster", err)
			}
			for _, want := range []string{tc.wantName, firstSum, secondSum, "db-1", "db-2", "nothing was overwritten", b.Location()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("conflict message: got %q, want it to contain %q", err, want)
				}
			}
			if got != (archive.Result{}) {
				t.Errorf("Push result on conflict: got %+v, want the zero Result", got)
			}

			after, afterInfo := object(t, b, res.Key)
			if !bytes.Equal(after, stored) {
				t.Errorf("stored %s changed after a conflicting push", res.Key)
			}
			if fmt.Sprint(afterInfo.Metadata) != fmt.Sprint(info.Metadata) {
				t.Errorf("metadata of %s: got %v, want unchanged %v", res.Key, afterInfo.Metadata, info.Metadata)
			}
			dest := filepath.Join(t.TempDir(), "dest")
			if _, err := restore.Fetch(context.Background(), b, tc.wantName, dest, restore.FetchOptions{Compression: tc.c}); err != nil {
				t.Fatalf("Fetch after the conflict: got %v, want nil", err)
			}
			assertSameFile(t, dest, firstPath)
			assertNoTempFiles(t, root)
		})
	}
}

// TestPushConflictWithForeignObject: an object walvault did not write (no
// metadata) under a segment's key is a conflict, never "already archived".
func TestPushConflictWithForeignObject(t *testing.T) {
	t.Parallel()
	b := mem.New()
	dir := t.TempDir()
	s1, s2 := seg(1, 0, 1), seg(1, 0, 2)
	p1, _ := writeSegment(t, dir, s1.String(), header(t, s1), 1)
	mustPush(t, b, p1, opts(repository.LZ4))
	p2, sum := writeSegment(t, dir, s2.String(), header(t, s2), 2)
	key := walKey(t, s2.String(), repository.LZ4)
	if err := b.Put(context.Background(), key, strings.NewReader("not a segment"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := archive.Push(context.Background(), b, p2, opts(repository.LZ4))
	if !errors.Is(err, archive.ErrConflict) {
		t.Fatalf("Push over an object without metadata: got %v, want an error wrapping archive.ErrConflict", err)
	}
	for _, want := range []string{sum, "sha256=-"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict message: got %q, want it to contain %q", err, want)
		}
	}
	if body, _ := object(t, b, key); string(body) != "not a segment" {
		t.Errorf("object under %s: got %q, want unchanged %q", key, body, "not a segment")
	}
}

// TestPushConflictRace: of concurrent pushes of different content under one
// name exactly one wins; the others get ErrConflict.
func TestPushConflictRace(t *testing.T) {
	t.Parallel()
	b := mem.New()
	s := seg(1, 0, 3)
	// The identity first, so the race is about the segment only.
	other := seg(1, 0, 2)
	p0, _ := writeSegment(t, t.TempDir(), other.String(), header(t, other), 9)
	mustPush(t, b, p0, opts(repository.LZ4))

	const n = 4
	paths := make([]string, n)
	sums := make([]string, n)
	for i := range n {
		paths[i], sums[i] = writeSegment(t, t.TempDir(), s.String(), header(t, s), uint64(i+1))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = archive.Push(context.Background(), b, paths[i], opts(repository.LZ4))
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("Push #%d and #%d of different content both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, archive.ErrConflict):
			t.Errorf("losing Push #%d: got %v, want an error wrapping archive.ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no Push succeeded: %v", errs)
	}
	_, info := object(t, b, walKey(t, s.String(), repository.LZ4))
	if got := info.Metadata[repository.MetaSHA256]; got != sums[winner] {
		t.Errorf("stored sha256: got %s, want the winner's %s", got, sums[winner])
	}
}

// lostAckBackend stores the first WAL object it is given and then reports a
// transient error, as when a PUT succeeds but its response is lost. statErr,
// if set, fails Stat of WAL objects.
type lostAckBackend struct {
	storage.Backend
	mu      sync.Mutex
	lost    bool
	statErr error
}

var errLostAck = errors.New("read tcp 127.0.0.1:9000: connection reset by peer")

func (l *lostAckBackend) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	err := l.Backend.Put(ctx, key, r, opts)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && strings.HasPrefix(key, repository.WALPrefix) && !l.lost {
		l.lost = true
		return errLostAck
	}
	return err
}

func (l *lostAckBackend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if l.statErr != nil && strings.HasPrefix(key, repository.WALPrefix) {
		return storage.ObjectInfo{}, l.statErr
	}
	return l.Backend.Stat(ctx, key)
}

// TestPushAfterLostAnswer: an upload whose answer was lost fails; the retry
// PostgreSQL makes meets its own first attempt and succeeds.
func TestPushAfterLostAnswer(t *testing.T) {
	t.Parallel()
	for _, c := range []repository.Compression{repository.LZ4, repository.None} {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			inner := mem.New()
			b := &lostAckBackend{Backend: inner}
			s := seg(1, 0, 3)
			src, sum := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			if _, err := archive.Push(context.Background(), b, src, opts(c)); !errors.Is(err, errLostAck) {
				t.Fatalf("Push whose answer was lost: got %v, want an error wrapping %v", err, errLostAck)
			}
			res, err := archive.Push(context.Background(), b, src, opts(c))
			if err != nil {
				t.Fatalf("retried Push: got %v, want nil", err)
			}
			if !res.AlreadyArchived || res.SHA256 != sum {
				t.Errorf("retried Push: got %+v, want AlreadyArchived with sha256 %s", res, sum)
			}
		})
	}
}

// TestPushConflictCannotReadArchivedCopy: when the archived copy cannot be
// read, the push fails, and it is neither success nor a conflict.
func TestPushConflictCannotReadArchivedCopy(t *testing.T) {
	t.Parallel()
	inner := mem.New()
	s := seg(1, 0, 3)
	src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	mustPush(t, inner, src, opts(repository.LZ4))
	transient := errors.New("503 Slow Down")
	b := &lostAckBackend{Backend: inner, lost: true, statErr: transient}
	res, err := archive.Push(context.Background(), b, src, opts(repository.LZ4))
	if !errors.Is(err, transient) {
		t.Fatalf("Push when the archived copy cannot be read: got %+v, %v; want an error wrapping %v", res, err, transient)
	}
	if errors.Is(err, archive.ErrConflict) {
		t.Errorf("Push when the archived copy cannot be read: got %v, want no ErrConflict (nothing is known to differ)", err)
	}
	if !strings.Contains(err.Error(), s.String()) {
		t.Errorf("Push error: got %q, want it to name %s", err, s)
	}
}

// TestConflictNamesKinds: every kind of WAL file reaches settleConflict with
// its own name in the message.
func TestConflictNamesKinds(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"00000003.history", "000000010000000000000003.00000028.backup"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			dir1, dir2 := t.TempDir(), t.TempDir()
			one, two := "one\n", "two\n"
			if strings.HasSuffix(name, ".history") {
				one, two = "1\t0/3000000\tone\n", "2\t0/3000000\ttwo\n"
			}
			p1, _ := writeHistory(t, dir1, name, one)
			p2, _ := writeHistory(t, dir2, name, two)
			mustPush(t, b, p1, opts(repository.LZ4))
			_, err := archive.Push(context.Background(), b, p2, opts(repository.LZ4))
			if !errors.Is(err, archive.ErrConflict) || !strings.Contains(err.Error(), name) {
				t.Errorf("Push of another %s: got %v, want an ErrConflict naming it", name, err)
			}
			f, _ := wal.Classify(name)
			if body, _ := object(t, b, repository.WALKey(f, repository.LZ4)); string(body) != one {
				t.Errorf("stored %s: got %q, want unchanged %q", name, body, one)
			}
		})
	}
}

// overwritingBackend is a server that no longer honours the conditional
// create (If-None-Match: *): a gateway or proxy put in front of the
// repository after its first push proved the server.
type overwritingBackend struct{ storage.Backend }

func (o overwritingBackend) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	opts.IfNotExists = false
	return o.Backend.Put(ctx, key, r, opts)
}

// TestPushConflictWhenTheServerOverwrites: a different segment pushed
// under an archived name through a server that ignores the conditional
// create is still a conflict, and the archived segment stays as it was.
func TestPushConflictWhenTheServerOverwrites(t *testing.T) {
	t.Parallel()
	for _, c := range []repository.Compression{repository.LZ4, repository.None} {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			s := seg(1, 0, 3)
			first, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			res := mustPush(t, b, first, opts(c))
			stored, _ := object(t, b, res.Key)
			second, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 2)
			if _, err := archive.Push(context.Background(), overwritingBackend{b}, second, opts(c)); !errors.Is(err, archive.ErrConflict) {
				t.Fatalf("Push of different content through a server that overwrites: %v; want ErrConflict", err)
			}
			if after, _ := object(t, b, res.Key); !bytes.Equal(after, stored) {
				t.Fatal("the archived segment was overwritten")
			}
		})
	}
}

// TestConflictAfterFailover: a different segment of timeline 1 pushed
// after timeline 2 branched off timeline 1 before that segment's end is
// most likely the old primary's, still writing timeline 1: the conflict
// says so, instead of blaming a restore or another cluster.
func TestConflictAfterFailover(t *testing.T) {
	t.Parallel()
	b := mem.New()
	s := seg(1, 0, 3)
	first, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	newPrimary := opts(repository.LZ4)
	newPrimary.Host = "db-2"
	mustPush(t, b, first, newPrimary)
	start, err := s.StartLSN(testSegSize)
	if err != nil {
		t.Fatal(err)
	}
	history, _ := writeHistory(t, t.TempDir(), "00000002.history", fmt.Sprintf("1\t%s\tno recovery target specified\n", start+0x100))
	mustPush(t, b, history, opts(repository.LZ4))
	second, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 2)
	_, err = archive.Push(context.Background(), b, second, opts(repository.LZ4))
	if !errors.Is(err, archive.ErrConflict) || !strings.Contains(err.Error(), "old primary of a failover") || !strings.Contains(err.Error(), "Timeline 2 branched off timeline 1") || strings.Contains(err.Error(), "pushed by hand") {
		t.Fatalf("the old primary's segment after a failover: %v; want a conflict naming the failover", err)
	}
	// Before the branch: no such note.
	early := seg(1, 0, 2)
	p, _ := writeSegment(t, t.TempDir(), early.String(), header(t, early), 1)
	mustPush(t, b, p, opts(repository.LZ4))
	p2, _ := writeSegment(t, t.TempDir(), early.String(), header(t, early), 2)
	if _, err := archive.Push(context.Background(), b, p2, opts(repository.LZ4)); !errors.Is(err, archive.ErrConflict) || strings.Contains(err.Error(), "failover") {
		t.Fatalf("a conflict on a segment before the branch: %v; want the plain conflict", err)
	}
}

// TestPushHistoryConflictWhenTheServerOverwrites: the same for a timeline
// history file.
func TestPushHistoryConflictWhenTheServerOverwrites(t *testing.T) {
	t.Parallel()
	b := mem.New()
	s := seg(1, 0, 3)
	first, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	mustPush(t, b, first, opts(repository.LZ4)) // the repository's identity
	h1, _ := writeHistory(t, t.TempDir(), "00000002.history", "1\t0/4002D98\tno recovery target specified\n")
	res := mustPush(t, b, h1, opts(repository.LZ4))
	stored, _ := object(t, b, res.Key)
	h2, _ := writeHistory(t, t.TempDir(), "00000002.history", "1\t0/5000000\tno recovery target specified\n")
	if _, err := archive.Push(context.Background(), overwritingBackend{b}, h2, opts(repository.LZ4)); !errors.Is(err, archive.ErrConflict) {
		t.Fatalf("Push of another history file through a server that overwrites: %v; want ErrConflict", err)
	}
	if after, _ := object(t, b, res.Key); !bytes.Equal(after, stored) {
		t.Fatal("the archived history file was overwritten")
	}
	if r, err := archive.Push(context.Background(), overwritingBackend{b}, h1, opts(repository.LZ4)); err != nil || !r.AlreadyArchived {
		t.Fatalf("Push of the same history file again: %+v, %v; want already archived", r, err)
	}
}

// TestConflictAfterHandPush: when one host wrote both copies of a segment
// (PostgreSQL archives each once: the first was pushed by hand while the
// segment was still being written), the conflict says so and how to check
// before deleting the archived copy, instead of forbidding the only fix
// (explore22d F3).
func TestConflictAfterHandPush(t *testing.T) {
	t.Parallel()
	b := mem.New()
	s := seg(1, 0, 3)
	early, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	mustPush(t, b, early, opts(repository.LZ4))
	complete, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 2)
	_, err := archive.Push(context.Background(), b, complete, opts(repository.LZ4))
	if !errors.Is(err, archive.ErrConflict) || !strings.Contains(err.Error(), "Both copies come from host db-1") || !strings.Contains(err.Error(), "pg_waldump") || strings.Contains(err.Error(), "never delete") {
		t.Fatalf("a conflict of two copies from one host: %v; want the hand-push hint", err)
	}
}

// TestConflictWithForeignObject: an object without walvault's metadata at
// a segment's key (someone with write access put it there before the
// segment was archived) is named as such, with the way out, not taken
// for an archived copy never to delete (explore25a F4).
func TestConflictWithForeignObject(t *testing.T) {
	t.Parallel()
	b := mem.New()
	first, _ := writeSegment(t, t.TempDir(), seg(1, 0, 2).String(), header(t, seg(1, 0, 2)), 1)
	mustPush(t, b, first, opts(repository.LZ4)) // writes walvault.json
	s := seg(1, 0, 3)
	junk := []byte("not WAL")
	if err := b.Put(context.Background(), repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}, repository.LZ4), bytes.NewReader(junk), storage.PutOptions{Size: int64(len(junk))}); err != nil {
		t.Fatal(err)
	}
	p, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	_, err := archive.Push(context.Background(), b, p, opts(repository.LZ4))
	if !errors.Is(err, archive.ErrConflict) || !strings.Contains(err.Error(), "walvault did not write it") || strings.Contains(err.Error(), "never delete") {
		t.Fatalf("a segment's key holding a foreign object: %v; want it named as not walvault's", err)
	}
}

// TestHistoryWithOtherReasonsIsArchived: a history file recording the
// same timeline switches of the same cluster with other reasons (the copy
// wal-fetch rebuilds from the metadata when the archived one's key is
// gone, archived again by a restored server with archive_mode = always) is
// already archived, not a conflict that stops its archiver for good
// (explore25e C); another switch point still conflicts.
func TestHistoryWithOtherReasonsIsArchived(t *testing.T) {
	t.Parallel()
	b := mem.New()
	first, _ := writeSegment(t, t.TempDir(), seg(1, 0, 2).String(), header(t, seg(1, 0, 2)), 1)
	o := opts(repository.LZ4)
	o.SystemID = "7300000000000000001" // the test segments' cluster
	mustPush(t, b, first, o)
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "00000002.history")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustPush(t, b, write("1\t0/4002D98\tno recovery target specified\n"), o)
	if res := mustPush(t, b, write("1\t0/4002D98\treason not kept: rebuilt by walvault from the object's metadata\n"), o); !res.AlreadyArchived {
		t.Fatalf("the same switches, other reasons: %+v, want already archived", res)
	}
	if _, err := archive.Push(context.Background(), b, write("1\t0/4002E00\tno recovery target specified\n"), o); !errors.Is(err, archive.ErrConflict) {
		t.Fatalf("another switch point: %v, want ErrConflict", err)
	}
}
