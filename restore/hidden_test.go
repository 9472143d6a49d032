package restore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
	"github.com/walvault/walvault/wal/waltest"
)

// hide hides keys behind delete markers, as a DELETE without a version id
// does in a versioned bucket.
func hide(t *testing.T, b *mem.Backend, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := b.Hide(k); err != nil {
			t.Fatal(err)
		}
	}
}

// segmentRaw is segment name of the fixture cluster: its long header, as
// wal-fetch checks it against the name, then pseudo-random bytes.
func segmentRaw(t *testing.T, name string) []byte {
	t.Helper()
	s, err := wal.ParseSegmentName(name)
	if err != nil {
		t.Fatal(err)
	}
	return waltest.Cluster{SystemID: fixtureSysID, SegmentSize: fixtureSegSize}.Segment(t, s, uint64(s.Seg))
}

// putWAL stores raw as walvault stores a WAL file: lz4 for segments, with
// its sha256 and size.
func putWAL(t *testing.T, b storage.Backend, name string, raw []byte) string {
	t.Helper()
	f, err := wal.Classify(name)
	if err != nil {
		t.Fatal(err)
	}
	c := repository.None
	if repository.Compressed(f.Kind) {
		c = repository.LZ4
	}
	key := repository.WALKey(f, c)
	repotest.PutWAL(t, b, key, c, raw, nil)
	return key
}

func testLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func wantLog(t *testing.T, logs string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %q:\n%s", w, logs)
		}
	}
}

// TestFetchHidden: wal-fetch serves a segment hidden behind a delete marker
// from its newest version, and warns; a segment that is neither visible nor
// hidden is still "not found", even with walvault.json hidden too.
func TestFetchHidden(t *testing.T) {
	t.Parallel()
	b := newFixtureRepo(t)
	raw := segmentRaw(t, "000000010000000000000003")
	key := putWAL(t, b, "000000010000000000000003", raw)
	hide(t, b, key, repository.IdentityKey)

	log, logs := testLogger()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	res, err := Fetch(context.Background(), b, "000000010000000000000003", dest, FetchOptions{Compression: repository.LZ4, Log: log})
	if err != nil {
		t.Fatalf("Fetch of a hidden segment: got %v, want nil", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, raw) || res.Key != key {
		t.Errorf("Fetch of a hidden segment: wrote %d bytes from %s, want the %d archived bytes from %s", len(got), res.Key, len(raw), key)
	}
	wantLog(t, logs.String(), "level=WARN", "key="+key, "walvault repair")

	_, err = Fetch(context.Background(), b, "000000010000000000000004", filepath.Join(t.TempDir(), "x"), FetchOptions{Compression: repository.LZ4, Log: log})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Fetch of a segment neither visible nor hidden: got %v, want storage.ErrNotFound", err)
	}
	wantLog(t, logs.String(), "key="+repository.IdentityKey)
}

// TestFetchHiddenLookupFails: when looking for a hidden version fails, a
// missing segment is not reported missing (recovery must not end early);
// when the storage permanently refuses to show versions, "missing" stands,
// with a warning.
func TestFetchHiddenLookupFails(t *testing.T) {
	t.Parallel()
	// Looking at versions fails with lookupErr.
	var lookupErr error
	f := storagetest.NewFault(newFixtureRepo(t))
	for _, op := range []storagetest.Op{storagetest.OpListHidden, storagetest.OpGetHidden} {
		f.Before(op, storagetest.AnyKey, func(context.Context, string) error { return lookupErr })
	}
	b := f.Versioned()
	putWAL(t, b, "000000010000000000000003", segmentRaw(t, "000000010000000000000003"))
	log, logs := testLogger()
	fetch := func() error {
		_, err := Fetch(context.Background(), b, "000000010000000000000004", filepath.Join(t.TempDir(), "x"), FetchOptions{Compression: repository.LZ4, Log: log})
		return err
	}

	lookupErr = errors.New("read tcp 127.0.0.1:9000: connection reset by peer")
	err := fetch()
	if err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("Fetch when the hidden lookup fails: got %v, want the lookup's error, not storage.ErrNotFound", err)
	}

	lookupErr = storage.Permanent(errors.New("AccessDenied: s3:ListBucketVersions"))
	if err := fetch(); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Fetch when the storage refuses to show versions: got %v, want storage.ErrNotFound", err)
	}
	wantLog(t, logs.String(), "level=WARN", "s3:ListBucketVersions")

	// The segment itself, visible, needs no look at versions.
	if _, err := Fetch(context.Background(), b, "000000010000000000000003", filepath.Join(t.TempDir(), "y"), FetchOptions{Compression: repository.LZ4, Log: log}); err != nil {
		t.Errorf("Fetch of a visible segment while versions cannot be read: got %v, want nil", err)
	}
}

// TestHiddenReaderList: hidden keys join the listing in key order, once
// each, with the List contract's early stop.
func TestHiddenReaderList(t *testing.T) {
	t.Parallel()
	inner := newFixtureRepo(t)
	for _, k := range []string{"wal/a", "wal/b", "wal/c", "wal/d", "wal/e", "other"} {
		if err := inner.Put(context.Background(), k, strings.NewReader(k), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	hide(t, inner, "wal/a", "wal/c", "wal/e")
	log, logs := testLogger()
	b := seeHidden(inner, log)
	var got []string
	if err := b.List(context.Background(), "wal/", func(oi storage.ObjectInfo) error {
		got = append(got, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"wal/a", "wal/b", "wal/c", "wal/d", "wal/e"}; !slices.Equal(got, want) {
		t.Errorf("List with hidden keys: got %v, want %v", got, want)
	}
	wantLog(t, logs.String(), "key=wal/a", "key=wal/e")

	stop := errors.New("stop")
	n := 0
	err := b.List(context.Background(), "wal/", func(storage.ObjectInfo) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("List stopped by fn: got %v after %d calls, want fn's error after 2", err, n)
	}
	if plain := storagetest.NewFault(inner); seeHidden(plain, log) != storage.Backend(plain) {
		t.Errorf("seeHidden of a backend without versions: got %T, want it unchanged", seeHidden(plain, log))
	}
}

// TestRestoreBackupHidden: a backup whose parts, manifests and WAL were
// hidden by deletes without a version id, with walvault.json, restores
// from the hidden versions, with a warning per object.
func TestRestoreBackupHidden(t *testing.T) {
	t.Parallel()
	inner := newFixtureRepo(t)
	m := storeFixture(t, inner, fixture{id: fixtureID, archives: []fixtureArchive{{name: baseArchive, entries: baseEntries()}}})
	parts := m.Archives[0].Parts
	segKey := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: wal.Segment{Timeline: 1, Log: 0, Seg: 2}}, repository.LZ4)
	hidden := []string{parts[0].Key, parts[len(parts)-1].Key, m.PGManifest.Key, repository.BackupManifestKey(m.ID), segKey, repository.IdentityKey}
	b := inner
	hide(t, b, hidden...)

	// Without the fallback the backup is not restorable: it lacks its
	// manifest (and the catalog walvault.json).
	if backups, err := repository.ListBackups(context.Background(), b); err == nil {
		if bi, err := repository.FindBackup(backups, "LATEST"); err == nil {
			t.Fatalf("the test hides too little: the catalog still offers %+v", bi)
		}
	}

	log, logs := testLogger()
	opts := restoreOpts(t, filepath.Join(t.TempDir(), "data"))
	opts.Log = log
	res, err := RestoreBackup(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("RestoreBackup with hidden objects: %v\nlog:\n%s", err, logs.String())
	}
	if res.Backup.ID != m.ID || res.Bytes != m.RawBytes {
		t.Errorf("RestoreBackup: got backup %s, %d bytes; want %s, %d", res.Backup.ID, res.Bytes, m.ID, m.RawBytes)
	}
	wants := []string{"level=WARN", "walvault repair"}
	for _, k := range hidden {
		wants = append(wants, "key="+k)
	}
	wantLog(t, logs.String(), wants...)
}
