package restore

import (
	"context"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/storage/mem"
)

// discardWriter takes every write and is no io.ReaderFrom, as the pipe
// into the tar extractor is not.
type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkPartStream reads 64 MiB of lz4 parts (16 MiB each, bytes as
// compressible as table pages) from an in-memory repository the way
// extractArchive does: download, decompression, the stored sha256 check
// and the copy through the extractor's pipe, without the tar reader and
// the disk. Run:
//
//	go test -run '^$' -bench PartStream -benchtime 20x ./restore/
func BenchmarkPartStream(b *testing.B) {
	raw := make([]byte, 64<<20)
	rand.NewChaCha8([32]byte{9}).Read(raw)
	for i := range raw {
		raw[i] &= 0x0F // about as compressible as table pages under lz4
	}
	repo := mem.New()
	parts := storeParts(b, repo, raw, 16<<20, nil)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for range b.N {
		s := newPartStream(context.Background(), repo, partsTestID, parts)
		pr, pw := io.Pipe()
		go func() {
			_, err := io.Copy(pw, s)
			s.Close()
			pw.CloseWithError(err)
		}()
		n, err := io.CopyBuffer(discardWriter{}, pr, make([]byte, 1<<20))
		if err != nil || n != int64(len(raw)) {
			b.Fatalf("read %d bytes, err %v; want %d", n, err, len(raw))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
