package archive

import (
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/wal"
)

// BenchmarkEncodeSegment is wal-push's encode of one 16 MiB segment, in
// the clear and encrypted to one recipient (compare the two: issue 14
// asks for within 1.1x).
func BenchmarkEncodeSegment(b *testing.B) {
	path := filepath.Join(b.TempDir(), "000000010000000000000003")
	if err := os.WriteFile(path, walLike(16<<20), 0o600); err != nil {
		b.Fatal(err)
	}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	rec, err := crypt.ParseRecipients(key.Recipient().String())
	if err != nil {
		b.Fatal(err)
	}
	file, _ := wal.Classify(filepath.Base(path))
	for _, tc := range []struct {
		name  string
		codec repository.Codec
	}{{"clear", repository.Codec{Compression: repository.LZ4}}, {"encrypted", repository.Codec{Compression: repository.LZ4, Recipients: rec}}} {
		b.Run(tc.name, func(b *testing.B) {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(16 << 20)
			b.ReportAllocs()
			for range b.N {
				res := Result{File: file}
				body, err := encodeFile(f, path, tc.codec, &res, map[string]string{})
				if err != nil {
					b.Fatal(err)
				}
				closeBody(body)
			}
		})
	}
}
