package archive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/crypt/crypttest"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
	"github.com/walvault/walvault/wal"
)

// TestEncryptedPushFetch: an encrypted segment is stored as an age file
// with fingerprints and no plaintext sha256, comes back byte-identical
// with the identity, and re-pushes are settled by the fingerprints.
func TestEncryptedPushFetch(t *testing.T) {
	t.Parallel()
	for _, c := range repository.Compressions {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			keyA, keyB := crypttest.NewKey(t), crypttest.NewKey(t)
			b := mem.New()
			s := seg(1, 0, 3)
			dir := t.TempDir()
			src, sum := writeSegment(t, dir, s.String(), header(t, s), 1)
			o := opts(c)
			o.Recipients = crypttest.Recipients(t, keyA)
			res := mustPush(t, b, src, o)
			body, info := object(t, b, res.Key)
			if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) {
				t.Fatalf("stored body is not an age file: %q", body[:20])
			}
			if _, ok := info.Metadata[repository.MetaSHA256]; ok {
				t.Errorf("metadata %v records the plaintext sha256", info.Metadata)
			}
			if got := crypt.RecipientsOf(info.Metadata[repository.MetaFingerprints]); !slices.Equal(got, o.Recipients.IDs()) {
				t.Errorf("metadata names recipients %v, want %v", got, o.Recipients.IDs())
			}
			id, err := repository.LoadIdentity(ctx, b)
			if err != nil || id.Encryption != "age" || !slices.Equal(id.Recipients, o.Recipients.IDs()) {
				t.Fatalf("identity %+v, %v: want encryption age to %v", id, err, o.Recipients.IDs())
			}

			dest := filepath.Join(t.TempDir(), "seg")
			fr, err := restore.Fetch(ctx, b, s.String(), dest, restore.FetchOptions{Compression: c, Identities: keyA.Identities(t)})
			if err != nil {
				t.Fatal(err)
			}
			if got := fileSHA256(t, dest); got != sum || fr.SHA256 != sum {
				t.Fatalf("fetched sha256 %s (result %s), want %s", got, fr.SHA256, sum)
			}

			// Without the identity, or with another key: refused, naming keys.
			_, err = restore.Fetch(ctx, b, s.String(), filepath.Join(t.TempDir(), "x"), restore.FetchOptions{Compression: c})
			if !errors.Is(err, crypt.ErrNoIdentity) || errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("fetch without identity: %v", err)
			}
			_, err = restore.Fetch(ctx, b, s.String(), filepath.Join(t.TempDir(), "x"), restore.FetchOptions{Compression: c, Identities: keyB.Identities(t)})
			if !errors.Is(err, crypt.ErrNoIdentity) || !strings.Contains(err.Error(), o.Recipients.IDs()[0]) {
				t.Fatalf("fetch with another key: %v", err)
			}

			// Same content again, during a rotation (A and B): already archived.
			o2 := o
			o2.Recipients = crypttest.Recipients(t, keyA, keyB)
			if again := mustPush(t, b, src, o2); !again.AlreadyArchived {
				t.Fatalf("identical re-push: %+v", again)
			}
			// Only B: the push host cannot compare, and says so.
			o3 := o
			o3.Recipients = crypttest.Recipients(t, keyB)
			if _, err := archive.Push(ctx, b, src, o3); !errors.Is(err, archive.ErrIncomparable) {
				t.Fatalf("re-push to a disjoint key: %v", err)
			}
			// Different content under the same name: a conflict.
			other, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 2)
			if _, err := archive.Push(ctx, b, other, o); !errors.Is(err, archive.ErrConflict) {
				t.Fatalf("different content: %v", err)
			}

			// One byte flipped: corrupt, nothing written.
			flipped := bytes.Clone(body)
			flipped[len(flipped)-40] ^= 1
			damageStored(t, b, res.Key, flipped, info.Metadata)
			dest2 := filepath.Join(t.TempDir(), "seg")
			if _, err := restore.Fetch(ctx, b, s.String(), dest2, restore.FetchOptions{Compression: c, Identities: keyA.Identities(t)}); !errors.Is(err, restore.ErrCorrupt) {
				t.Fatalf("tampered object: %v, want ErrCorrupt", err)
			}
			if _, err := os.Stat(dest2); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("tampered object: %s exists", dest2)
			}
			assertNoTempFiles(t, filepath.Dir(dest2))
		})
	}
}

// TestEncryptionSettingsMustMatch: a clear push into an encrypted
// repository and an encrypted one into a clear repository are refused
// before anything is written.
func TestEncryptionSettingsMustMatch(t *testing.T) {
	t.Parallel()
	key := crypttest.NewKey(t)
	for _, tc := range []struct {
		name         string
		first, later *crypt.Recipients
	}{{"clear into encrypted", crypttest.Recipients(t, key), nil}, {"encrypted into clear", nil, crypttest.Recipients(t, key)}} {
		t.Run(tc.name, func(t *testing.T) {
			b := mem.New()
			dir := t.TempDir()
			s3, s4 := seg(1, 0, 3), seg(1, 0, 4)
			first, _ := writeSegment(t, dir, s3.String(), header(t, s3), 1)
			o := opts(repository.LZ4)
			o.Recipients = tc.first
			mustPush(t, b, first, o)
			before := keys(t, b)
			o.Recipients = tc.later
			next, _ := writeSegment(t, dir, s4.String(), header(t, s4), 1)
			_, err := archive.Push(context.Background(), b, next, o)
			if !errors.Is(err, repository.ErrEncryptionSettings) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line wrapping ErrEncryptionSettings", err)
			}
			if after := keys(t, b); !slices.Equal(before, after) {
				t.Fatalf("objects changed: %v, then %v", before, after)
			}
		})
	}
}

// TestEncryptedFetchChecksFingerprint: an authentic ciphertext whose
// recorded fingerprint is not its plaintext's (another object's body
// swapped in, or the record edited), or whose record has no fingerprint
// for the key at hand, is ErrCorrupt, and nothing reaches dest. The check
// is repository.OpenBodyDigest's, on the sha256 wal-fetch computes.
func TestEncryptedFetchChecksFingerprint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key, other := crypttest.NewKey(t), crypttest.NewKey(t)
	for _, tc := range []struct {
		name string
		edit func(map[string]string)
	}{
		{"fingerprint of other content", func(m map[string]string) {
			r := crypttest.Recipients(t, key)
			fp := r.NewFingerprinter()
			fp.Write([]byte("other content"))
			m[repository.MetaFingerprints] = fp.Sum()
		}},
		{"no fingerprint for the key at hand", func(m map[string]string) {
			r := crypttest.Recipients(t, other)
			fp := r.NewFingerprinter()
			fp.Write([]byte("other content"))
			m[repository.MetaFingerprints] = fp.Sum()
		}},
		{"no fingerprints at all", func(m map[string]string) { delete(m, repository.MetaFingerprints) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mem.New()
			s := seg(1, 0, 3)
			src, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			o := opts(repository.LZ4)
			o.Recipients = crypttest.Recipients(t, key)
			res := mustPush(t, b, src, o)
			body, info := object(t, b, res.Key)
			tc.edit(info.Metadata)
			info.Metadata[repository.MetaRecipients] = strings.Join(o.Recipients.IDs(), ",")
			damageStored(t, b, res.Key, body, info.Metadata)
			dest := filepath.Join(t.TempDir(), "seg")
			_, err := restore.Fetch(ctx, b, s.String(), dest, restore.FetchOptions{Compression: repository.LZ4, Identities: key.Identities(t)})
			if !errors.Is(err, restore.ErrCorrupt) {
				t.Fatalf("fetch: %v, want ErrCorrupt", err)
			}
			if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s exists", dest)
			}
			assertNoTempFiles(t, filepath.Dir(dest))
		})
	}
}

// TestRotationRecordsNewKey: a push to a key walvault.json does not name
// records it under recipients/ first, also when the identity cache would
// spare reading walvault.json, so every key an object is encrypted to is
// among the repository's keys in use.
func TestRotationRecordsNewKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keyA, keyB := crypttest.NewKey(t), crypttest.NewKey(t)
	b := mem.New()
	dir := t.TempDir()
	o := opts(repository.LZ4)
	o.IdentityCacheTTL = time.Hour
	o.Recipients = crypttest.Recipients(t, keyA)
	s3, s4 := seg(1, 0, 3), seg(1, 0, 4)
	first, _ := writeSegment(t, dir, s3.String(), header(t, s3), 1)
	mustPush(t, b, first, o) // creates walvault.json and the cache
	o.Recipients = crypttest.Recipients(t, keyA, keyB)
	next, _ := writeSegment(t, dir, s4.String(), header(t, s4), 1)
	res := mustPush(t, b, next, o)
	id, err := repository.LoadIdentity(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	inUse, err := repository.RecipientsInUse(ctx, b, id)
	if err != nil {
		t.Fatal(err)
	}
	_, info := object(t, b, res.Key)
	for _, k := range repository.ObjectRecipients(info.Metadata) {
		if !slices.Contains(inUse, k) {
			t.Fatalf("%s is encrypted to %s, which the repository's keys in use %v lack", res.Key, k, inUse)
		}
	}
	if len(id.Recipients) != 1 || len(inUse) != 2 {
		t.Fatalf("walvault.json names %v, in use %v: want walvault.json unchanged and both keys in use", id.Recipients, inUse)
	}
}

// damageStored replaces key's object with body and meta as damage would:
// no older version of it is left (an overwrite in a versioned store would
// leave the genuine one, which wal-fetch then serves).
func damageStored(t *testing.T, b storage.Backend, key string, body []byte, meta map[string]string) {
	t.Helper()
	if err := b.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{Metadata: meta, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
}

// TestPushHistoryRecordsSwitches: wal-push records a timeline history
// file's switches in its metadata, encrypted or not, so that readers
// without the identity follow the timeline; a history too long for S3's
// 2 KB of metadata keeps its last switch, and the object's metadata
// stays within the limit.
func TestPushHistoryRecordsSwitches(t *testing.T) {
	t.Parallel()
	key := crypttest.NewKey(t)
	var long strings.Builder
	for tli := 1; tli < 300; tli++ {
		fmt.Fprintf(&long, "%d\t%X/0\tpromoted after a long night\n", tli, tli)
	}
	for _, tc := range []struct {
		name       string
		recipients *crypt.Recipients
		file       string
		content    string
		want       string
	}{
		{"encrypted", crypttest.Recipients(t, key), "00000002.history", "1\t0/4002D98\tno recovery target specified\n", "1:0/4002D98"},
		{"clear", nil, "00000002.history", "1\t0/4002D98\tno recovery target specified\n", "1:0/4002D98"},
		{"encrypted, long", crypttest.Recipients(t, key), "0000012C.history", long.String(), "...,299:12B/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mem.New()
			o := opts(repository.LZ4)
			o.Recipients = tc.recipients
			s := seg(1, 0, 3)
			segPath, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
			mustPush(t, b, segPath, o)
			src := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(src, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			res := mustPush(t, b, src, o)
			_, info := object(t, b, res.Key)
			if got := info.Metadata[repository.MetaHistory]; got != tc.want {
				t.Errorf("%s metadata %q, want %q", repository.MetaHistory, got, tc.want)
			}
			size := 0
			for k, v := range info.Metadata {
				size += len("x-amz-meta-") + len(k) + len(v)
			}
			if size > 2048 {
				t.Errorf("the object's metadata takes %d bytes, more than S3's 2048", size)
			}
		})
	}
}

// TestFetchHistoryWithoutItsKey: a history file encrypted to a key the
// identity file no longer holds (pushed before a rotation) is served
// from its metadata, timelines and switch points whole, so destroying the
// old key does not stop every later recovery at the history file
// (explore25d F1); a segment encrypted to that key is still refused, and
// so is a history whose metadata kept only its last switch.
func TestFetchHistoryWithoutItsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	oldKey, newKey := crypttest.NewKey(t), crypttest.NewKey(t)
	b := mem.New()
	o := opts(repository.LZ4)
	o.Recipients = crypttest.Recipients(t, oldKey)
	s := seg(1, 0, 3)
	segPath, _ := writeSegment(t, t.TempDir(), s.String(), header(t, s), 1)
	mustPush(t, b, segPath, o)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustPush(t, b, write("00000003.history", "1\t0/4002D98\tno recovery target specified\n2\t0/6000000\tbefore 2026-12-08 01:00:00+00\n"), o)
	var long strings.Builder
	for tli := 1; tli < 300; tli++ {
		fmt.Fprintf(&long, "%d\t%X/0\tpromoted after a long night\n", tli, tli)
	}
	mustPush(t, b, write("0000012C.history", long.String()), o)

	fetchOpts := restore.FetchOptions{Compression: repository.LZ4, Identities: newKey.Identities(t)}
	dest := filepath.Join(t.TempDir(), "RECOVERYHISTORY")
	if _, err := restore.Fetch(ctx, b, "00000003.history", dest, fetchOpts); err != nil {
		t.Fatalf("fetch 00000003.history with only the new key: %v", err)
	}
	f, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := wal.ParseHistory(f)
	if err != nil {
		t.Fatalf("the served history file: %v", err)
	}
	want := []wal.HistoryEntry{{Timeline: 1, SwitchPoint: 0x4002D98}, {Timeline: 2, SwitchPoint: 0x6000000}}
	if len(got) != len(want) {
		t.Fatalf("served entries %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Timeline != want[i].Timeline || got[i].SwitchPoint != want[i].SwitchPoint {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	for _, name := range []string{s.String(), "0000012C.history"} {
		if _, err := restore.Fetch(ctx, b, name, filepath.Join(t.TempDir(), "x"), fetchOpts); !errors.Is(err, crypt.ErrNoIdentity) {
			t.Errorf("fetch %s with only the new key: %v, want ErrNoIdentity", name, err)
		}
	}
}
