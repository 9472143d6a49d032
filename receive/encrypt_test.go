package receive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/pg/pgtest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// TestEncryptedReceive: into an encrypted repository, wal-receive stores
// partials and complete segments as wal-push would (an age file, keyed
// fingerprints, no plaintext sha256); wal-fetch with the identity reads
// both back; a wal-push of the same segment, and a restarted receiver
// re-uploading the same partial, find them already there; a receiver
// without encrypt-to is refused.
func TestEncryptedReceive(t *testing.T) {
	b := newBackend(t)
	key := crypttest.NewKey(t)
	opts := testOptions(t)
	opts.Push.Recipients = crypttest.Recipients(t, key)
	c := primary()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start, mid, end := 3*seg, 3*seg+300_000, 4*seg+5000
	srv := c.server()
	srv.Msgs = concat(stream(1, start, mid), []pgproto3.BackendMessage{until(reported(srv, mid))}, stream(1, mid, end))
	cancelWhen(srv, end, cancel)
	if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{srv}}); err != nil {
		t.Fatal(err)
	}
	id, err := repository.LoadIdentity(t.Context(), b)
	if err != nil || id.Encryption != crypt.Scheme || !slices.Equal(id.Recipients, opts.Push.Recipients.IDs()) {
		t.Fatalf("identity %+v, %v: want encrypted to %v", id, err, opts.Push.Recipients.IDs())
	}
	partial := repository.PartialKey(segmentAt(1, end), end, repository.LZ4)
	for _, k := range []string{segmentKey(1, segmentAt(1, start)), partial} {
		rc, info, err := b.Get(t.Context(), k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		head := make([]byte, 22)
		rc.Read(head)
		rc.Close()
		fps := info.Metadata[repository.MetaFingerprints]
		if string(head) != "age-encryption.org/v1\n" || info.Metadata[repository.MetaSHA256] != "" || info.Metadata[repository.MetaEncryption] != crypt.Scheme ||
			!slices.Equal(crypt.RecipientsOf(fps), opts.Push.Recipients.IDs()) {
			t.Fatalf("%s: body starts %q, metadata %v: want an age file with fingerprints and no sha256", k, head, info.Metadata)
		}
	}

	// wal-fetch with the identity: the segment, and the partial padded.
	dir := t.TempDir()
	fetch := func(s wal.Segment) []byte {
		t.Helper()
		dest := filepath.Join(dir, s.String())
		name := wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: s}.String()
		if _, err := restore.Fetch(t.Context(), b, name, dest, restore.FetchOptions{Compression: repository.LZ4, Identities: key.Identities(t)}); err != nil {
			t.Fatalf("fetch %s: %v", name, err)
		}
		got, err := os.ReadFile(dest)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	full := walBytes(1, start, 4*seg)
	if got := fetch(segmentAt(1, start)); !bytes.Equal(got, full) {
		t.Fatalf("fetched segment: %d bytes that differ from the %d streamed", len(got), len(full))
	}
	want := append(walBytes(1, 4*seg, end), make([]byte, 5*seg-end)...)
	if got := fetch(segmentAt(1, end)); !bytes.Equal(got, want) {
		t.Fatalf("fetched partial: %d bytes, not the %d streamed and zeros", len(got), end-4*seg)
	}

	// archive_command pushing the same segment: already there.
	path := filepath.Join(t.TempDir(), segmentAt(1, start).String())
	if err := os.WriteFile(path, full, 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := archive.Push(t.Context(), b, path, opts.Push); err != nil || !res.AlreadyArchived {
		t.Fatalf("wal-push of a received segment: %+v, %v; want already archived", res, err)
	}

	// A restarted receiver streams the open segment again: the same
	// partial compares equal by its fingerprints.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	again := c.server(stream(1, 4*seg, end)...)
	cancelWhen(again, end, cancel)
	if err := runSessions(ctx, b, opts, &dialer{servers: []*pgtest.Server{again}}); err != nil {
		t.Fatalf("restarted receiver: %v", err)
	}
	if ends := partialEnds(t, b, 1, end); !slices.Equal(ends, []wal.LSN{end}) {
		t.Fatalf("partials after the restart: %v, want one ending at %s", ends, end)
	}

	// Without encrypt-to: refused before anything is written.
	before := listAll(t, b)
	clear := testOptions(t)
	err = runSessions(t.Context(), b, clear, &dialer{servers: []*pgtest.Server{c.server(stream(1, 4*seg, end)...)}})
	if !errors.Is(err, repository.ErrEncryptionSettings) {
		t.Fatalf("clear receiver into an encrypted repository: %v", err)
	}
	if after := listAll(t, b); !slices.Equal(before, after) {
		t.Fatalf("a refused receiver changed the repository: %v, then %v", before, after)
	}
}

func listAll(t *testing.T, b storage.Backend) []string {
	t.Helper()
	var keys []string
	if err := b.List(t.Context(), "", func(o storage.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestSamePartial: a partial already stored is the same only with the
// same sha256 in the clear, or the same fingerprint of a shared key when
// encrypted; a disjoint key cannot be compared.
func TestSamePartial(t *testing.T) {
	a, b := crypttest.NewKey(t), crypttest.NewKey(t)
	meta := func(keys []crypttest.Key, content string) map[string]string {
		m := map[string]string{repository.MetaSHA256: content}
		if keys != nil {
			r := crypttest.Recipients(t, keys...)
			fp := r.NewFingerprinter()
			fp.Write([]byte(content))
			repository.Codec{Compression: repository.LZ4, Recipients: r}.Describe(m, fp.Sum())
		}
		return m
	}
	ab, onlyA, onlyB := []crypttest.Key{a, b}, []crypttest.Key{a}, []crypttest.Key{b}
	for _, tc := range []struct {
		name         string
		ours, theirs map[string]string
		same         bool
		is           error
	}{
		{"clear, same", meta(nil, "x"), meta(nil, "x"), true, nil},
		{"clear, different", meta(nil, "x"), meta(nil, "y"), false, nil},
		{"encrypted, shared key", meta(onlyA, "x"), meta(ab, "x"), true, nil},
		{"encrypted, different", meta(onlyA, "x"), meta(ab, "y"), false, nil},
		{"encrypted, disjoint keys", meta(onlyA, "x"), meta(onlyB, "x"), false, archive.ErrIncomparable},
		{"clear against encrypted", meta(nil, "x"), meta(onlyA, "x"), false, nil},
	} {
		err := samePartial(tc.ours, tc.theirs)
		if (err == nil) != tc.same || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
