package archive_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
)

// newLockRecorder is a lock-enabled bucket (storage/mem) whose Fault
// wrapper records the options, retention included, of every Put.
func newLockRecorder(t *testing.T) *storagetest.Fault {
	t.Helper()
	return storagetest.NewFault(mem.New())
}

var governance7 = repository.LockPolicy{Mode: storage.Governance, Days: 7}

func lockedOpts(p repository.LockPolicy) archive.Options {
	o := opts(repository.LZ4)
	o.Lock = p
	return o
}

// TestPushLocksEveryObject: with a lock policy, walvault.json, segments and
// history files are each written with retention until now + lock days, and
// walvault.json records the policy.
func TestPushLocksEveryObject(t *testing.T) {
	t.Parallel()
	b := newLockRecorder(t)
	s := seg(1, 0, 3)
	src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	res := mustPush(t, b, src, lockedOpts(governance7))
	hist, _ := writeHistory(t, t.TempDir(), "00000002.history", "1\t0/3000000\tno recovery target specified\n")
	histRes := mustPush(t, b, hist, lockedOpts(governance7))

	want := storage.Retention{Mode: storage.Governance, Until: testNow.Add(7 * 24 * time.Hour)}
	for _, key := range []string{repository.IdentityKey, res.Key, histRes.Key} {
		o, ok := b.PutOptions(key)
		got := o.Retention
		if !ok {
			t.Errorf("%s: never written", key)
			continue
		}
		if got == nil || *got != want {
			t.Errorf("retention of %s: got %+v, want %+v", key, got, want)
		}
	}
	id, err := repository.LoadIdentity(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if id.Lock() != governance7 {
		t.Errorf("walvault.json lock policy: got %v, want %v", id.Lock(), governance7)
	}
	body, _ := object(t, b, repository.IdentityKey)
	for _, field := range []string{`"lock_mode": "GOVERNANCE"`, `"lock_days": 7`} {
		if !bytes.Contains(body, []byte(field)) {
			t.Errorf("walvault.json lacks %s:\n%s", field, body)
		}
	}
}

// TestPushUnlockedByDefault: without a policy nothing carries retention and
// walvault.json says nothing about locks (absent means off).
func TestPushUnlockedByDefault(t *testing.T) {
	t.Parallel()
	b := newLockRecorder(t)
	s := seg(1, 0, 3)
	src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	res := mustPush(t, b, src, opts(repository.LZ4))
	for _, key := range []string{repository.IdentityKey, res.Key} {
		if o, _ := b.PutOptions(key); o.Retention != nil {
			t.Errorf("retention of %s without a policy: got %+v, want none", key, o.Retention)
		}
	}
	body, _ := object(t, b, repository.IdentityKey)
	if bytes.Contains(body, []byte("lock_")) {
		t.Errorf("walvault.json of an unlocked repository mentions locks:\n%s", body)
	}
}

// TestPushRefusesOtherLockPolicy: a push configured with another policy
// than walvault.json's is refused, names both, says what to do and stores
// nothing.
func TestPushRefusesOtherLockPolicy(t *testing.T) {
	t.Parallel()
	off := repository.LockPolicy{}
	tests := []struct {
		name       string
		repo, push repository.LockPolicy
		wantRepo   string
		wantPush   string
		wantFix    string
	}{
		{"lock on an unlocked repository", off, governance7, "records Object Lock off", "configured with GOVERNANCE for 7 days", "lock-mode off"},
		{"no lock on a locked repository", governance7, off, "records Object Lock GOVERNANCE for 7 days", "configured with off", "lock-mode governance and lock-days 7"},
		{"other days", governance7, repository.LockPolicy{Mode: storage.Governance, Days: 1}, "GOVERNANCE for 7 days", "GOVERNANCE for 1 day;", "lock-days 7"},
		{"other mode", governance7, repository.LockPolicy{Mode: storage.Compliance, Days: 7}, "GOVERNANCE for 7 days", "COMPLIANCE for 7 days", "lock-mode governance"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newLockRecorder(t)
			dir := t.TempDir()
			first := seg(1, 0, 3)
			src, _ := writeSegment(t, dir, first.String(), header(t, first), 1)
			mustPush(t, b, src, lockedOpts(tc.repo))

			next := seg(1, 0, 4)
			src, _ = writeSegment(t, dir, next.String(), header(t, next), 2)
			hist, _ := writeHistory(t, dir, "00000002.history", "1\t0/3000000\tno recovery target specified\n")
			for _, p := range []string{src, hist} {
				_, err := archive.Push(context.Background(), b, p, lockedOpts(tc.push))
				if !errors.Is(err, repository.ErrLockPolicy) {
					t.Fatalf("Push(%s) with policy %v into a repository of %v: got %v, want repository.ErrLockPolicy", p, tc.push, tc.repo, err)
				}
				for _, want := range []string{tc.wantRepo, tc.wantPush, tc.wantFix, "nothing was written", "new repository"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("refusal: got %q, want it to contain %q", err, want)
					}
				}
			}
			assertAbsent(t, b, walKey(t, next.String(), repository.LZ4))
			assertAbsent(t, b, "wal/00000002.history")
		})
	}
}

// TestPushLockOnStorageWithoutLock: a backend that cannot lock (a
// directory; an S3 bucket without Object Lock) refuses, and nothing is
// stored.
func TestPushLockOnStorageWithoutLock(t *testing.T) {
	t.Parallel()
	b, _ := filetest.New(t)
	s := seg(1, 0, 3)
	src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	_, err := archive.Push(context.Background(), b, src, lockedOpts(governance7))
	if !errors.Is(err, storage.ErrUnsupported) {
		t.Fatalf("Push with a lock policy to a directory: got %v, want storage.ErrUnsupported", err)
	}
	if got := keys(t, b); len(got) != 0 {
		t.Errorf("objects after the refused push: got %q, want none", got)
	}
}

// TestPushOverHiddenObjects: a push that meets a hidden walvault.json uses
// it (never creating a second identity), and one that meets its own segment
// hidden counts it as already archived; both warn.
func TestPushOverHiddenObjects(t *testing.T) {
	t.Parallel()
	inner := mem.New()
	// A versioned bucket in which keys can be hidden behind a delete
	// marker: Get and Stat say not found, a conditional create is refused
	// (as Versity does), GetHidden still reads them.
	f := storagetest.NewFault(inner)
	b := f.Versioned()
	var logs bytes.Buffer
	o := lockedOpts(repository.LockPolicy{})
	o.Log = slog.New(slog.NewTextHandler(&logs, nil))
	s := seg(1, 0, 3)
	src, sum := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	res := mustPush(t, b, src, o)
	identity, _ := object(t, b, repository.IdentityKey)

	f.Hide(repository.IdentityKey, res.Key)
	again, err := archive.Push(context.Background(), b, src, o)
	if err != nil {
		t.Fatalf("Push of a segment whose copy and walvault.json are hidden: got %v, want nil", err)
	}
	if !again.AlreadyArchived || again.SHA256 != sum {
		t.Errorf("Push over its hidden copy: got %+v, want AlreadyArchived, sha256 %s", again, sum)
	}
	if after, _ := object(t, inner, repository.IdentityKey); !bytes.Equal(after, identity) {
		t.Errorf("walvault.json was rewritten while hidden:\n%s\nwant\n%s", after, identity)
	}
	for _, want := range []string{"level=WARN", repository.IdentityKey + " is hidden", "already archived, but hidden", res.Key, "walvault repair"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}

	// A different file under the hidden name is still a conflict.
	other, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 2)
	if _, err := archive.Push(context.Background(), b, other, o); !errors.Is(err, archive.ErrConflict) {
		t.Errorf("Push of other content over a hidden copy: got %v, want archive.ErrConflict", err)
	}
}
