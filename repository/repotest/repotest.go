package repotest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"maps"
	"strconv"
	"testing"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/mem"
)

// New returns a repository in memory holding identity id.
func New(t testing.TB, id repository.Identity) *mem.Backend {
	t.Helper()
	b := mem.New()
	Init(t, b, id)
	return b
}

// Init writes id as b's identity, as the first push does.
func Init(t testing.TB, b storage.Backend, id repository.Identity) {
	t.Helper()
	if _, err := repository.EnsureIdentity(context.Background(), b, id, nil); err != nil {
		t.Fatalf("writing the repository identity: %v", err)
	}
}

// Put stores body under key as a conditional create.
func Put(t testing.TB, b storage.Backend, key string, body []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{IfNotExists: true, Size: int64(len(body))}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// PutWAL stores raw under key compressed with c, with the metadata
// wal-push and wal-receive give a WAL object (raw's sha256 and size, the
// compression) and extra, and returns the stored body.
func PutWAL(t testing.TB, b storage.Backend, key string, c repository.Compression, raw []byte, extra map[string]string) []byte {
	t.Helper()
	body := Compress(t, c, raw)
	sum := sha256.Sum256(raw)
	meta := map[string]string{
		repository.MetaSHA256:      hex.EncodeToString(sum[:]),
		repository.MetaRawSize:     strconv.Itoa(len(raw)),
		repository.MetaCompression: string(c),
	}
	maps.Copy(meta, extra)
	if err := b.Put(context.Background(), key, bytes.NewReader(body), storage.PutOptions{IfNotExists: true, Size: int64(len(body)), Metadata: meta}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return body
}

// PutEncrypted stores raw under key as wal-push stores a small file
// (history, .backup) in an encrypted repository: uncompressed, encrypted
// to r, with its raw size, compression and fingerprints, and extra.
func PutEncrypted(t testing.TB, b storage.Backend, key string, raw []byte, r *crypt.Recipients, extra map[string]string) {
	t.Helper()
	codec := repository.Codec{Compression: repository.None, Recipients: r}
	var body bytes.Buffer
	w, err := codec.NewWriter(&body)
	if err != nil {
		t.Fatal(err)
	}
	fp := r.NewFingerprinter()
	if _, err := io.MultiWriter(w, fp).Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{repository.MetaRawSize: strconv.Itoa(len(raw)), repository.MetaCompression: string(repository.None)}
	codec.Describe(meta, fp.Sum())
	maps.Copy(meta, extra)
	if err := b.Put(context.Background(), key, bytes.NewReader(body.Bytes()), storage.PutOptions{IfNotExists: true, Size: int64(body.Len()), Metadata: meta}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// Compress returns raw compressed with c.
func Compress(t testing.TB, c repository.Compression, raw []byte) []byte {
	t.Helper()
	var enc bytes.Buffer
	w, err := c.NewWriter(&enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return enc.Bytes()
}

// PutPart stores raw under key compressed with c, and returns the entry a
// manifest lists for it, as backup-push writes it: the sha256 of the
// stored bytes. When stored is not nil it is what gets compressed and
// stored, while the entry still describes raw: a part damaged after its
// checksum was taken.
func PutPart(t testing.TB, b storage.Backend, key string, c repository.Compression, raw, stored []byte) repository.BackupPart {
	t.Helper()
	p := PutPartRawSum(t, b, key, c, raw, stored)
	sum := sha256.Sum256(Compress(t, c, raw))
	p.SHA256, p.StoredSHA256 = "", hex.EncodeToString(sum[:])
	return p
}

// PutPartRawSum is PutPart with the entry walvault wrote before stored
// sums: the sha256 of the raw bytes.
func PutPartRawSum(t testing.TB, b storage.Backend, key string, c repository.Compression, raw, stored []byte) repository.BackupPart {
	t.Helper()
	if stored == nil {
		stored = raw
	}
	enc := Compress(t, c, stored)
	Put(t, b, key, enc)
	sum := sha256.Sum256(raw)
	return repository.BackupPart{Key: key, Compression: c, RawSize: int64(len(raw)), StoredSize: int64(len(enc)), SHA256: hex.EncodeToString(sum[:])}
}

// Backup is a backup for WriteBackup to store.
type Backup struct {
	// Manifest is walvault's manifest: its id, WAL span, times and so on.
	// WriteBackup adds the archives and PGManifest, and adds the archives'
	// sizes to RawBytes and Stored.
	Manifest repository.BackupManifest
	Archives []Archive
	// PartSize is the raw bytes per part; 0 stores each archive as one part.
	PartSize int
	// PGManifest is PostgreSQL's backup_manifest; nil stores "{}".
	PGManifest []byte
	// Tamper, when set, changes the raw bytes stored for a part after its
	// checksum was taken (archive name, part index from 0). It gets a copy
	// of the part's bytes; a nil result stores them unchanged.
	Tamper func(archive string, seq int, raw []byte) []byte
	// Compression, when set, picks each part's codec (archive name, part
	// index from 0); nil stores every part in lz4.
	Compression func(archive string, seq int) repository.Compression
	// RawSums writes the manifest as walvault did before stored sums:
	// each part with the sha256 of its raw bytes.
	RawSums bool
}

// Archive is one tar stream of a Backup.
type Archive struct {
	Name               string // "base.tar" or "<oid>.tar"
	TablespaceOID      uint32
	TablespaceLocation string
	Data               []byte // the tar stream, cut into parts of Backup.PartSize
}

// WriteBackup stores bk in b as backup-push does, its parts lz4-compressed
// (or as bk.Compression says), walvault's manifest last, and returns that
// manifest.
func WriteBackup(t testing.TB, b storage.Backend, bk Backup) repository.BackupManifest {
	t.Helper()
	m := bk.Manifest
	putPart := PutPart
	if bk.RawSums {
		putPart = PutPartRawSum
	}
	for _, fa := range bk.Archives {
		a := repository.BackupArchive{Name: fa.Name, TablespaceOID: fa.TablespaceOID, TablespaceLocation: fa.TablespaceLocation}
		data := fa.Data
		for seq := 0; len(data) > 0; seq++ {
			n := len(data)
			if bk.PartSize > 0 {
				n = min(bk.PartSize, n)
			}
			raw := data[:n]
			var stored []byte
			if bk.Tamper != nil {
				stored = bk.Tamper(fa.Name, seq, bytes.Clone(raw))
			}
			c := repository.LZ4
			if bk.Compression != nil {
				c = bk.Compression(fa.Name, seq)
			}
			p := putPart(t, b, repository.BackupPartKey(m.ID, fa.Name, seq, c), c, raw, stored)
			a.Parts = append(a.Parts, p)
			m.RawBytes += p.RawSize
			m.Stored += p.StoredSize
			data = data[n:]
		}
		m.Archives = append(m.Archives, a)
	}
	pgm := bk.PGManifest
	if pgm == nil {
		pgm = []byte("{}")
	}
	m.PGManifest = putPart(t, b, repository.BackupPrefix(m.ID)+repository.PGManifestName, repository.None, pgm, nil)
	// The format that says what the parts record, as backup-push sets it.
	m.FormatVersion = max(m.FormatVersion, m.NeededFormatVersion())
	if err := repository.WriteBackupManifest(context.Background(), b, m, nil); err != nil {
		t.Fatal(err)
	}
	return m
}
