package bench

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
)

// codecs are the compression settings the WAL codec benchmark compares,
// lz4 (the default) first: every ratio is against it in the same run.
// backupCodecs are those of the (minutes long) backup benchmark.
var (
	codecs       = []string{"lz4", "zstd:1", "zstd", "zstd:9"}
	backupCodecs = []string{"lz4", "zstd:1", "zstd"}
)

// codecInput is the restore input kind of a file:// backup in setting.
func codecInput(setting string) string { return "file+" + setting }

// BenchmarkZstd compares zstd with lz4 (the default) in one run: on WAL
// segments ("wal"), and on base backups of the pgbench database and their
// restore ("backup", "restore"). One top-level name that neither the full
// run's patterns nor BENCH='Backup|Restore' match: the backup part takes
// minutes, so it runs only when asked for (BENCH='Zstd/(backup|restore)').
func BenchmarkZstd(b *testing.B) {
	b.Run("wal", benchWALCodecs)
	b.Run("backup", benchBackupCodecs)
	b.Run("restore", benchRestoreCodecs)
}

// benchBackupCodecs takes base backups of the pgbench database into the
// file:// repository in each compression setting: time, CPU and stored
// size per backup.
func benchBackupCodecs(b *testing.B) {
	e := backupSetup(b)
	for _, c := range backupCodecs {
		b.Run("compression="+c, func(b *testing.B) {
			e.loop(b, func(int) op { return e.pushOpAs(b, e.repos["file"], codecInput(c), "--compression", c) })
		})
	}
}

// benchRestoreCodecs restores a file:// backup taken with lz4 and one
// taken with zstd (the default level): decoding by what each part records.
func benchRestoreCodecs(b *testing.B) {
	e := backupSetup(b)
	r := e.repos["file"]
	for _, c := range []string{"lz4", "zstd"} {
		b.Run("compression="+c, func(b *testing.B) {
			kind := "file"
			if c != "lz4" {
				kind = codecInput(c)
			}
			id := e.input(b, kind)
			e.loop(b, func(int) op { return e.restoreOp(b, r, id) })
		})
	}
}

// benchWALCodecs pushes copies of the real segment into the file://
// repository in process, in each compression setting (time, CPU and stored
// size per segment), and fetches one back in each. CPU time (cpu-ms, this
// process's, all threads) says more than wall time on a shared machine.
func benchWALCodecs(b *testing.B) {
	e := setup(b)
	r := e.repos["file"]
	for _, c := range codecs {
		setting, err := repository.ParseSetting(c)
		if err != nil {
			b.Fatal(err)
		}
		opts := archive.Options{Compression: setting.Compression, ZstdLevel: setting.Level, Host: "bench", Version: "bench"}
		b.Run("push/compression="+c, func(b *testing.B) {
			be := openRepo(b, r)
			dir, names := e.segments(b, b.N)
			e.pruneAfter(b, r)
			var stored int64
			b.SetBytes(segBytes)
			settle()
			cpu := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				res, err := archive.Push(context.Background(), be, filepath.Join(dir, "pg_wal", names[i]), opts)
				if err != nil || res.AlreadyArchived {
					b.Fatalf("archive.Push %s: %+v, %v", names[i], res, err)
				}
				stored += res.StoredSize
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e6, "cpu-ms")
			b.ReportMetric(float64(stored)/float64(b.N)/(1<<20), "stored-MiB")
		})
		b.Run("fetch/compression="+c, func(b *testing.B) {
			be := openRepo(b, r)
			dir, names := e.segments(b, 1)
			e.pruneAfter(b, r)
			if _, err := archive.Push(context.Background(), be, filepath.Join(dir, "pg_wal", names[0]), opts); err != nil {
				b.Fatal(err)
			}
			out := e.outDir(b)
			fetch := restore.FetchOptions{Compression: setting.Compression, Log: slog.New(slog.DiscardHandler)}
			b.SetBytes(segBytes)
			settle()
			cpu := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				if _, err := restore.Fetch(context.Background(), be, names[0], filepath.Join(out, fmt.Sprintf("RECOVERYXLOG.%d", i)), fetch); err != nil {
					b.Fatalf("restore.Fetch %s: %v", names[0], err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e6, "cpu-ms")
		})
	}
}

// cpuTime is the CPU time this process used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
