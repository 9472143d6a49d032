package exporter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walvault/walvault/drill"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/repository/repotest"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/file/filetest"
	"github.com/walvault/walvault/storage/storagetest"
	"github.com/walvault/walvault/wal"
)

const segSize = 16 << 20

type fixture struct {
	// b counts the calls a scan or a scrape makes; while down is set its
	// List and Get fail, as an unreachable repository's do.
	b    *storagetest.Fault
	root string // the file backend's directory
	down atomic.Bool
	now  time.Time
	ctx  context.Context
	keys map[uint32]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fb, root := filetest.New(t)
	f := &fixture{b: storagetest.NewFault(fb), root: root, now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), ctx: context.Background(), keys: map[uint32]string{}}
	unreachable := func(context.Context, string) error {
		if f.down.Load() {
			return errors.New("storage unreachable")
		}
		return nil
	}
	f.b.Before(storagetest.OpList, storagetest.AnyKey, unreachable)
	f.b.Before(storagetest.OpGet, storagetest.AnyKey, unreachable)
	return f
}

// calls is the number of calls of op the repository has seen.
func (f *fixture) calls(op storagetest.Op) int { return f.b.Calls(op) }

func (f *fixture) identity(t *testing.T) {
	t.Helper()
	repotest.Init(t, f.b, repository.NewIdentity(7712061122709846133, segSize, 15, repository.LZ4, "db1", f.now))
}

// segment stores segment n of timeline 1, pushed at.
func (f *fixture) segment(t *testing.T, n uint32, at time.Time) {
	t.Helper()
	f.segmentOn(t, 1, n, at)
}

// segmentOn stores segment n of timeline tli, pushed, and stored, at.
func (f *fixture) segmentOn(t *testing.T, tli wal.TimelineID, n uint32, at time.Time) {
	t.Helper()
	seg := wal.Segment{Timeline: tli, Seg: n}
	key := repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: tli, Segment: seg}, repository.LZ4)
	body := strings.Repeat("x", 100)
	md := map[string]string{repository.MetaPushedAt: at.UTC().Format(time.RFC3339)}
	if err := f.b.Put(f.ctx, key, strings.NewReader(body), storage.PutOptions{IfNotExists: true, Size: int64(len(body)), Metadata: md}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(f.root, key), at, at); err != nil {
		t.Fatal(err)
	}
	if tli == 1 {
		f.keys[n] = key
	}
}

func (f *fixture) backup(t *testing.T, start time.Time, startSeg, stopSeg uint32, manifest bool) string {
	t.Helper()
	id := repository.NewBackupID(start)
	part := repository.BackupPartKey(id, "base.tar", 0, repository.LZ4)
	if err := f.b.Put(f.ctx, part, strings.NewReader("part"), storage.PutOptions{IfNotExists: true, Size: 4}); err != nil {
		t.Fatal(err)
	}
	if !manifest {
		return id
	}
	m := repository.BackupManifest{
		FormatVersion: repository.FormatVersion, ID: id, SystemID: "7712061122709846133", PGVersion: 150010, WALSegmentSize: segSize,
		StartTimeline: 1, StopTimeline: 1, StartLSN: fmt.Sprintf("0/%X", startSeg<<24+0x28), StopLSN: fmt.Sprintf("0/%X", stopSeg<<24+0x100),
		StartWAL: wal.Segment{Timeline: 1, Seg: startSeg}.String(), StopWAL: wal.Segment{Timeline: 1, Seg: stopSeg}.String(),
		StartTime: start, StopTime: start.Add(90 * time.Second), RawBytes: 1 << 30, Stored: 300 << 20,
	}
	if err := repository.WriteBackupManifest(f.ctx, f.b, m, nil); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) drill(t *testing.T, ok bool, at time.Time, rto float64) {
	t.Helper()
	rpo := 3.0
	rec := &drill.Record{OK: ok, FinishedAt: at, RTOSeconds: rto, RPOSeconds: &rpo}
	if err := drill.WriteRecord(f.ctx, f.b, rec, nil); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) exporter(t *testing.T) *Exporter {
	return New(f.b, Options{Refresh: time.Minute, Version: "v9", Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return f.now }})
}

// scrape serves the exporter's handler and reads /metrics.
func scrape(t *testing.T, e *Exporter) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

func want(t *testing.T, m map[string]float64, series string, v float64) {
	t.Helper()
	got, ok := m[series]
	if !ok {
		t.Errorf("%s missing", series)
		return
	}
	if got != v {
		t.Errorf("%s = %v, want %v", series, got, v)
	}
}

func absent(t *testing.T, m map[string]float64, series string) {
	t.Helper()
	if v, ok := m[series]; ok {
		t.Errorf("%s = %v, want it absent", series, v)
	}
}

func TestEmptyRepository(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(t)
	m := scrape(t, e)
	absent(t, m, "walvault_repository_scan_success") // no scan yet
	want(t, m, `walvault_exporter_build_info{version="v9"}`, 1)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, e)
	want(t, m, "walvault_repository_scan_success", 1)
	want(t, m, "walvault_wal_segments", 0)
	want(t, m, `walvault_backups{status="DONE"}`, 0)
	absent(t, m, "walvault_wal_continuity_ok") // nothing archived: no identity
	absent(t, m, "walvault_last_archived_segment_timestamp_seconds")
	absent(t, m, "walvault_drill_last_success_timestamp_seconds")
	absent(t, m, "walvault_pg_up") // no pg-conn
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("the Go collector is not registered")
	}
}

func TestRepositoryMetrics(t *testing.T) {
	f := newFixture(t)
	f.identity(t)
	t0 := f.now.Add(-2 * time.Hour)
	for n := uint32(1); n <= 6; n++ {
		f.segment(t, n, t0.Add(time.Duration(n)*time.Minute))
	}
	f.backup(t, t0, 2, 3, true)                      // DONE
	f.backup(t, t0.Add(30*time.Minute), 5, 8, true)  // WAITING_FOR_WALS: 7 and 8 are not archived
	f.backup(t, t0.Add(50*time.Minute), 0, 0, false) // INCOMPLETE
	f.drill(t, true, f.now.Add(-3*time.Hour), 42)    // the newest successful one
	f.drill(t, false, f.now.Add(-1*time.Hour), 0)    // the newest
	e := f.exporter(t)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, e)
	want(t, m, "walvault_wal_segments", 6)
	newest := t0.Add(6 * time.Minute)
	want(t, m, "walvault_last_archived_segment_timestamp_seconds", float64(newest.Unix()))
	want(t, m, "walvault_last_archived_segment_age_seconds", f.now.Sub(newest).Seconds())
	want(t, m, "walvault_wal_continuity_ok", 1)
	want(t, m, "walvault_wal_latest_backup_continuity_ok", 1)
	want(t, m, "walvault_wal_missing_segments", 0)
	want(t, m, `walvault_backups{status="DONE"}`, 1)
	want(t, m, `walvault_backups{status="WAITING_FOR_WALS"}`, 1)
	want(t, m, `walvault_backups{status="INCOMPLETE"}`, 1)
	want(t, m, "walvault_backup_last_done_timestamp_seconds", float64(t0.Add(90*time.Second).Unix()))
	want(t, m, "walvault_backup_last_done_age_seconds", f.now.Sub(t0.Add(90*time.Second)).Seconds())
	want(t, m, "walvault_backup_last_done_duration_seconds", 90)
	want(t, m, "walvault_backup_last_done_size_bytes", 1<<30)
	want(t, m, "walvault_backup_last_done_stored_bytes", 300<<20)
	want(t, m, "walvault_drill_last_ok", 0)
	want(t, m, "walvault_drill_last_success_timestamp_seconds", float64(f.now.Add(-3*time.Hour).Unix()))
	want(t, m, "walvault_drill_last_success_age_seconds", 3*3600)
	want(t, m, "walvault_drill_last_rto_seconds", 42)
	want(t, m, "walvault_drill_last_rpo_seconds", 3)
	want(t, m, `walvault_repository_objects{area="wal"}`, 6)
	want(t, m, `walvault_repository_objects{area="drills"}`, 2)
	want(t, m, `walvault_repository_objects{area="other"}`, 1)
	want(t, m, `walvault_repository_bytes{area="wal"}`, 600)
	want(t, m, `walvault_repository_info{compression="lz4",lock_mode="off",pg_major="15",system_identifier="7712061122709846133"}`, 1)

	// A scrape never touches the repository.
	lists, gets, stats := f.calls(storagetest.OpList), f.calls(storagetest.OpGet), f.calls(storagetest.OpStat)
	scrape(t, e)
	scrape(t, e)
	if f.calls(storagetest.OpList) != lists || f.calls(storagetest.OpGet) != gets || f.calls(storagetest.OpStat) != stats {
		t.Errorf("scrapes used the repository: lists %d->%d, gets %d->%d, stats %d->%d",
			lists, f.calls(storagetest.OpList), gets, f.calls(storagetest.OpGet), stats, f.calls(storagetest.OpStat))
	}
	// A second scan reads nothing it already read: one listing and the
	// identity.
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	if d := f.calls(storagetest.OpGet) - gets; d != 1 {
		t.Errorf("a second scan made %d Gets, want 1 (walvault.json): manifests, histories and drill records are cached", d)
	}
	if d := f.calls(storagetest.OpStat) - stats; d != 0 {
		t.Errorf("a second scan made %d Stats, want 0", d)
	}

	// A minute on, a scan and a scrape.
	rescan := func() map[string]float64 {
		t.Helper()
		f.now = f.now.Add(time.Minute)
		if err := e.Refresh(f.ctx); err != nil {
			t.Fatal(err)
		}
		return scrape(t, e)
	}

	// A segment the DONE backup's recovery needs goes missing.
	if err := f.b.Delete(f.ctx, f.keys[4]); err != nil {
		t.Fatal(err)
	}
	m = rescan()
	want(t, m, "walvault_wal_continuity_ok", 0)
	want(t, m, "walvault_wal_latest_backup_continuity_ok", 0)
	want(t, m, "walvault_wal_missing_segments", 1)
	want(t, m, "walvault_wal_segments", 5)

	// A new backup after the gap: the newest restores to latest again,
	// while the older one still cannot get past the gap (explore23a F3:
	// two signals, for the two alerts).
	f.backup(t, t0.Add(60*time.Minute), 5, 6, true)
	m = rescan()
	want(t, m, "walvault_wal_continuity_ok", 0)
	want(t, m, "walvault_wal_latest_backup_continuity_ok", 1)
}

// scannedOneSegment is an exporter on a repository of one segment, after
// a first scan.
func scannedOneSegment(t *testing.T) (*fixture, *Exporter) {
	t.Helper()
	f := newFixture(t)
	f.identity(t)
	f.segment(t, 1, f.now)
	e := f.exporter(t)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	return f, e
}

func TestScanFailureKeepsValues(t *testing.T) {
	f, e := scannedOneSegment(t)
	f.down.Store(true)
	if err := e.Refresh(f.ctx); err == nil {
		t.Fatal("a scan of an unreachable repository succeeded")
	}
	m := scrape(t, e)
	want(t, m, "walvault_repository_scan_success", 0)
	want(t, m, "walvault_repository_scan_errors_total", 1)
	want(t, m, "walvault_wal_segments", 1) // the last good scan
	f.down.Store(false)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, e), "walvault_repository_scan_success", 1)
}

// TestScanIdentityDeleted: walvault.json deleted from a repository that
// holds WAL is a failed scan naming it, not a healthy scan of no WAL with
// every backup waiting for it (explore23a F4).
func TestScanIdentityDeleted(t *testing.T) {
	f, e := scannedOneSegment(t)
	if err := f.b.Delete(f.ctx, repository.IdentityKey); err != nil {
		t.Fatal(err)
	}
	err := e.Refresh(f.ctx)
	if err == nil || !strings.Contains(err.Error(), "was deleted") {
		t.Fatalf("a scan without walvault.json: %v, want a failure saying it was deleted", err)
	}
	m := scrape(t, e)
	want(t, m, "walvault_repository_scan_success", 0)
	want(t, m, "walvault_wal_segments", 1) // the last good scan
}

func TestRunRefreshes(t *testing.T) {
	f := newFixture(t)
	f.identity(t)
	e := New(f.b, Options{Refresh: 20 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() {
		e.Run(ctx)
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for f.calls(storagetest.OpList) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if n := f.calls(storagetest.OpList); n < 3 {
		t.Fatalf("%d scans in 5s with a 20ms refresh", n)
	}
}

func TestPostgresDown(t *testing.T) {
	f := newFixture(t)
	e := New(f.b, Options{PGConn: "host=127.0.0.1 port=1 user=nobody connect_timeout=2 sslmode=disable", PGTimeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)})
	m := scrape(t, e)
	want(t, m, "walvault_pg_up", 0)
	want(t, m, "walvault_pg_scrape_errors_total", 1)
	absent(t, m, "walvault_pg_archiver_failed_total")
}

// TestRepositoryMetricsDamagedManifest: a backup whose manifest was
// overwritten counts as DAMAGED, and the scan still serves the rest.
func TestRepositoryMetricsDamagedManifest(t *testing.T) {
	f := newFixture(t)
	f.identity(t)
	t0 := f.now.Add(-2 * time.Hour)
	for n := uint32(1); n <= 3; n++ {
		f.segment(t, n, t0.Add(time.Duration(n)*time.Minute))
	}
	f.backup(t, t0, 2, 3, true)
	damaged := f.backup(t, t0.Add(30*time.Minute), 2, 3, true)
	if err := f.b.Put(f.ctx, repository.BackupManifestKey(damaged), strings.NewReader("hello"), storage.PutOptions{Size: 5}); err != nil {
		t.Fatal(err)
	}
	e := f.exporter(t)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatalf("Refresh with a damaged manifest: %v", err)
	}
	m := scrape(t, e)
	want(t, m, "walvault_repository_scan_success", 1)
	want(t, m, `walvault_backups{status="DONE"}`, 1)
	want(t, m, `walvault_backups{status="DAMAGED"}`, 1)
	want(t, m, "walvault_backup_last_done_timestamp_seconds", float64(t0.Add(90*time.Second).Unix()))
}

// TestLastArchivedSegmentIsTheLastStored: the last archived segment is
// the one stored last, not the newest by name: a higher timeline that
// stopped (a restored copy promoted and archiving into the repository)
// must not hide timeline 1 going on, nor make it look stalled.
func TestLastArchivedSegmentIsTheLastStored(t *testing.T) {
	f := newFixture(t)
	f.identity(t)
	t0 := f.now.Add(-2 * time.Hour)
	f.segment(t, 1, t0)
	f.segmentOn(t, 2, 2, t0.Add(time.Minute)) // the copy's, long stopped
	last := f.now.Add(-30 * time.Second)
	f.segment(t, 2, t0.Add(2*time.Minute))
	f.segment(t, 3, last)
	e := f.exporter(t)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, e)
	want(t, m, "walvault_last_archived_segment_timestamp_seconds", float64(last.Unix()))
	want(t, m, "walvault_last_archived_segment_age_seconds", f.now.Sub(last).Seconds())
}

// TestRepositoryMetricsDamagedPart: a backup whose part is listed with
// another size than its manifest records counts as DAMAGED, not DONE, and
// the last DONE backup is the one before it.
func TestRepositoryMetricsDamagedPart(t *testing.T) {
	f := newFixture(t)
	f.identity(t)
	t0 := f.now.Add(-2 * time.Hour)
	for n := uint32(1); n <= 3; n++ {
		f.segment(t, n, t0.Add(time.Duration(n)*time.Minute))
	}
	f.backup(t, t0, 2, 3, true)
	t1 := t0.Add(30 * time.Minute)
	id := f.backup(t, t1, 2, 3, false) // a 4-byte part, no manifest yet
	m := repository.BackupManifest{
		FormatVersion: repository.FormatVersion, ID: id, SystemID: "7712061122709846133", PGVersion: 150010, WALSegmentSize: segSize,
		StartTimeline: 1, StopTimeline: 1, StartLSN: "0/2000028", StopLSN: "0/3000100",
		StartWAL: wal.Segment{Timeline: 1, Seg: 2}.String(), StopWAL: wal.Segment{Timeline: 1, Seg: 3}.String(),
		StartTime: t1, StopTime: t1.Add(90 * time.Second),
		Archives: []repository.BackupArchive{{Name: "base.tar", Parts: []repository.BackupPart{{Key: repository.BackupPartKey(id, "base.tar", 0, repository.LZ4), StoredSize: 4000}}}},
	}
	if err := repository.WriteBackupManifest(f.ctx, f.b, m, nil); err != nil {
		t.Fatal(err)
	}
	e := f.exporter(t)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatalf("Refresh with a damaged part: %v", err)
	}
	got := scrape(t, e)
	want(t, got, `walvault_backups{status="DONE"}`, 1)
	want(t, got, `walvault_backups{status="DAMAGED"}`, 1)
	want(t, got, "walvault_backup_last_done_timestamp_seconds", float64(t0.Add(90*time.Second).Unix()))
}

// TestTimelineOverrunMetric: segments archived on timeline 1 past the
// point where timeline 2 branched off it are counted, and the count grows
// while a server goes on archiving on timeline 1 (a restored copy
// promoted into the repository while the original runs on), which is what
// the WalvaultTimelineForked alert watches.
func TestTimelineOverrunMetric(t *testing.T) {
	f := newFixture(t)
	f.identity(t)
	t0 := f.now.Add(-2 * time.Hour)
	for n := uint32(1); n <= 3; n++ {
		f.segment(t, n, t0.Add(time.Duration(n)*time.Minute))
	}
	e := f.exporter(t)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, e), "walvault_wal_timeline_overrun_segments", 0) // one timeline

	// Timeline 2 branched off at the start of segment 2 (a copy restored
	// to the end of segment 1): segments 2 and 3 of timeline 1 lie past it.
	key := repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.None)
	repotest.PutWAL(t, f.b, key, repository.None, []byte("1\t0/2000000\tno recovery target specified\n"), nil)
	f.segmentOn(t, 2, 2, t0.Add(4*time.Minute))
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, e), "walvault_wal_timeline_overrun_segments", 2)

	f.segment(t, 4, t0.Add(5*time.Minute))
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, e)
	want(t, m, "walvault_wal_timeline_overrun_segments", 3)
	want(t, m, "walvault_wal_continuity_ok", 1) // no gap: an overrun is no fault of the archive
}

// TestBackupFromTheFuture: the newest DONE backup's age is negative when it
// ended in the future (a clock that was ahead), not 0: the alert on it
// (WalvaultBackupFromTheFuture) needs to see it.
func TestBackupFromTheFuture(t *testing.T) {
	f := newFixture(t)
	f.identity(t)
	ahead := f.now.Add(24 * time.Hour)
	for n := uint32(1); n <= 4; n++ {
		f.segment(t, n, f.now.Add(-time.Hour))
	}
	f.backup(t, ahead, 2, 3, true)
	e := f.exporter(t)
	if err := e.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, e), "walvault_backup_last_done_age_seconds", f.now.Sub(ahead.Add(90*time.Second)).Seconds())
}
