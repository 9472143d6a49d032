package repository_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage/mem"
)

// TestBackupFormatVersions: a manifest whose parts carry stored sums has
// a format older walvaults refuse (those before incremental backups read
// up to FormatVersion, those before stored sums up to
// IncrementalFormatVersion), full or incremental; one without keeps the
// format it had. This walvault reads up to StoredSumFormatVersion and
// refuses anything newer as too new, not as damaged.
func TestBackupFormatVersions(t *testing.T) {
	ctx := t.Context()
	sum := strings.Repeat("ab", 32)
	full := manifest("20261125T100000Z", "000000010000000000000002", "000000010000000000000002")
	full.Type = repository.BackupFull
	incr := manifest("20261125T110000Z", "000000010000000000000004", "000000010000000000000004")
	incr.Type, incr.Parent = repository.BackupIncremental, full.ID
	withParts := func(m repository.BackupManifest, p repository.BackupPart) repository.BackupManifest {
		p.Key = repository.BackupPartKey(m.ID, "base.tar", 0, repository.LZ4)
		m.Archives = []repository.BackupArchive{{Name: "base.tar", Parts: []repository.BackupPart{p}}}
		m.PGManifest = repository.BackupPart{Key: repository.PGManifestKey(m.ID), SHA256: sum}
		return m
	}
	stored := repository.BackupPart{Compression: repository.LZ4, StoredSHA256: sum}
	raw := repository.BackupPart{Compression: repository.LZ4, SHA256: sum}
	for _, tc := range []struct {
		name string
		m    repository.BackupManifest
		want int
	}{
		{"full, raw sums", withParts(full, raw), repository.FormatVersion},
		{"incremental, raw sums", withParts(incr, raw), repository.IncrementalFormatVersion},
		{"full, stored sums", withParts(full, stored), repository.StoredSumFormatVersion},
		{"incremental, stored sums", withParts(incr, stored), repository.StoredSumFormatVersion},
	} {
		got := tc.m.NeededFormatVersion()
		if got != tc.want {
			t.Errorf("%s: format %d, want %d", tc.name, got, tc.want)
		}
		if tc.want == repository.StoredSumFormatVersion && (got <= repository.IncrementalFormatVersion || got <= repository.FormatVersion) {
			t.Errorf("%s: format %d is one an older walvault reads", tc.name, got)
		}
	}

	b := mem.New()
	for i, v := range []int{repository.StoredSumFormatVersion, repository.StoredSumFormatVersion + 1} {
		m := withParts(full, stored)
		m.ID = []string{"20261125T120000Z", "20261125T130000Z"}[i]
		m.FormatVersion = v
		if err := repository.WriteBackupManifest(ctx, b, m, nil); err != nil {
			t.Fatal(err)
		}
		got, err := repository.LoadBackupManifest(ctx, b, m.ID)
		if v == repository.StoredSumFormatVersion {
			if err != nil || got.Archives[0].Parts[0].StoredSHA256 != sum {
				t.Errorf("format %d: %+v, %v; want it read with its stored sum", v, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "newer than this walvault understands") || strings.Contains(err.Error(), "damaged") {
			t.Errorf("format %d: got %v, want a refusal saying it is too new", v, err)
		}
	}
}

// TestBackupPartHasChecksum: a part is checkable with a stored sum, a raw
// sum, or an encrypted part's fingerprints; not with none or a bad one.
func TestBackupPartHasChecksum(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	for _, tc := range []struct {
		p    repository.BackupPart
		want bool
	}{
		{repository.BackupPart{StoredSHA256: sum}, true},
		{repository.BackupPart{SHA256: sum}, true},
		{repository.BackupPart{Encryption: "age", Fingerprints: "v2=x"}, true},
		{repository.BackupPart{}, false},
		{repository.BackupPart{StoredSHA256: sum[:10]}, false},
		{repository.BackupPart{StoredSHA256: sum[:10], SHA256: sum}, false}, // a bad stored sum is not overlooked
		{repository.BackupPart{Encryption: "age"}, false},
	} {
		if got := tc.p.HasChecksum(); got != tc.want {
			t.Errorf("%+v: HasChecksum %v, want %v", tc.p, got, tc.want)
		}
	}
}

// TestStoredHashFinish: the sum covers what the decoder read and what it
// left, up to one byte past the limit.
func TestStoredHashFinish(t *testing.T) {
	body := bytes.Repeat([]byte("stored "), 1000)
	want := sha256.Sum256(body)
	h := repository.NewStoredHash(bytes.NewReader(body))
	if _, err := io.ReadFull(h, make([]byte, 100)); err != nil { // the decoder's share
		t.Fatal(err)
	}
	got, n, err := h.Finish(int64(len(body)))
	if err != nil || got != hex.EncodeToString(want[:]) || n != int64(len(body)) {
		t.Errorf("Finish: %s, %d, %v; want %x, %d", got, n, err, want, len(body))
	}
	h = repository.NewStoredHash(bytes.NewReader(body))
	if _, n, _ := h.Finish(10); n != 11 {
		t.Errorf("Finish(10) of a longer body read %d bytes, want 11", n)
	}
	broken := errors.New("reset")
	h = repository.NewStoredHash(io.MultiReader(bytes.NewReader(body[:50]), errReader{broken}))
	if _, _, err := h.Finish(int64(len(body))); !errors.Is(err, broken) {
		t.Errorf("Finish of a broken body: %v, want its error", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
