package restore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestRestoreAllocatesTheSameForManyParts: a backup of many parts
// restores with about the allocations of one of few. Every buffer of the
// part stream (read-ahead chunks, the hasher's chunks, the decoder's
// blocks) is reused from part to part, so a long restore's heap stays
// where a short one's is. Per-part garbage made peak RSS grow with the
// database: at pgbench scale 500 (29 parts of 256 MiB) the live heap was
// twice scale 100's, each part's hasher chunks being held by their pool
// for two collections.
func TestRestoreAllocatesTheSameForManyParts(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a collection empties the pools
	owner, _ := testOwner(t)
	restoreAlloc := func(files int) uint64 {
		var extra []tarEntry
		for i := range files {
			body := make([]byte, 1<<20)
			rand.NewChaCha8([32]byte{byte(i)}).Read(body)
			for j := range body {
				body[j] &= 0x0F // compressible, like table pages
			}
			extra = append(extra, tarEntry{name: fmt.Sprintf("base/1/%d", 16384+i), body: body})
		}
		repo := newFixtureRepo(t)
		storeFixture(t, repo, fixture{id: fixtureID, partSize: 1 << 20, editManifest: crc32cEverywhere,
			archives: []fixtureArchive{{name: baseArchive, entries: baseEntries(extra...)}}})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := RestoreBackup(context.Background(), repo, BackupOptions{DataDir: filepath.Join(t.TempDir(), "data"), Owner: owner,
			Now: func() time.Time { return fixtureMTime.Add(time.Hour) }})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("restore of %d files: %v", files, err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	restoreAlloc(2) // fills the pools
	few, many := restoreAlloc(4), restoreAlloc(32)
	// 28 parts more may cost their small per-part structures (a decoder,
	// a channel, a request), not their buffers.
	if many > few+4<<20 {
		t.Fatalf("a restore of 33 parts allocated %d MiB, one of 5 parts %d MiB: part buffers are not reused from part to part", many>>20, few>>20)
	}
	t.Logf("allocated: 5 parts %.1f MiB, 33 parts %.1f MiB", float64(few)/(1<<20), float64(many)/(1<<20))
}
