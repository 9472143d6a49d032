package exporter

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/walvault/walvault/repository"
)

// metrics are the descriptors of everything the exporter reports itself.
type metrics struct {
	buildInfo *prometheus.Desc

	scanSuccess, scanTimestamp, scanDuration, scanErrors *prometheus.Desc
	repoInfo, repoBytes, repoObjects                     *prometheus.Desc

	walSegments, lastArchivedTS, lastArchivedAge                       *prometheus.Desc
	continuityOK, latestContinuityOK, missingSegments, overrunSegments *prometheus.Desc

	backups                                                       *prometheus.Desc
	lastBackupTS, lastBackupAge, lastBackupSize, lastBackupStored *prometheus.Desc
	lastBackupDuration                                            *prometheus.Desc

	drillLastOK, drillLastTS, drillSuccessTS, drillSuccessAge *prometheus.Desc
	drillRTO, drillRPO                                        *prometheus.Desc

	pgUp, pgArchived, pgFailed, pgLastArchivedTS, pgLastFailedTS, pgArchivingOff *prometheus.Desc
	readyFiles, archiveLag, pgErrors                                             *prometheus.Desc
}

func newMetrics() *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &metrics{
		buildInfo: d("walvault_exporter_build_info", "Always 1; the walvault version serving these metrics.", "version"),

		scanSuccess:   d("walvault_repository_scan_success", "1 if the last repository scan succeeded, 0 if it failed (repository metrics then show the last successful scan)."),
		scanTimestamp: d("walvault_repository_scan_timestamp_seconds", "When the repository metrics were last refreshed successfully (Unix time)."),
		scanDuration:  d("walvault_repository_scan_duration_seconds", "How long the last repository scan took."),
		scanErrors:    d("walvault_repository_scan_errors_total", "Repository scans that failed (the repository metrics then keep the last successful scan's values)."),
		repoInfo:      d("walvault_repository_info", "Always 1; the repository's identity from walvault.json.", "system_identifier", "compression", "lock_mode", "pg_major"),
		repoBytes:     d("walvault_repository_bytes", "Bytes stored in the repository, by area (wal, backups, drills, other).", "area"),
		repoObjects:   d("walvault_repository_objects", "Objects stored in the repository, by area.", "area"),

		walSegments:        d("walvault_wal_segments", "Archived WAL segments (full segments, every timeline)."),
		lastArchivedTS:     d("walvault_last_archived_segment_timestamp_seconds", "When the segment stored last (on any timeline) was pushed: its pushed-at metadata, else when it was stored (Unix time)."),
		lastArchivedAge:    d("walvault_last_archived_segment_age_seconds", "Seconds since the segment stored last (on any timeline) was pushed."),
		continuityOK:       d("walvault_wal_continuity_ok", "1 if the archived WAL has no gap from the oldest backup's start to the newest segment on every timeline a backup leads to (and every timeline has its history file), else 0."),
		latestContinuityOK: d("walvault_wal_latest_backup_continuity_ok", "1 if the archived WAL has no gap from the newest DONE backup's start to the newest segment (that backup restores to the latest archived WAL; walvault check's WAL continuity), else 0; absent without a DONE backup."),
		missingSegments:    d("walvault_wal_missing_segments", "WAL segments missing in gaps that a backup's recovery would cross."),
		overrunSegments:    d("walvault_wal_timeline_overrun_segments", "WAL segments archived on a timeline past the point where a later timeline branched off it; restores to latest follow the later timeline and never read them. After a failover, the old primary's last WAL (constant); growing, a server archiving on a timeline that a restored copy or another server has left."),

		backups:            d("walvault_backups", "Backups by status: DONE, WAITING_FOR_WALS, INCOMPLETE, DAMAGED.", "status"),
		lastBackupTS:       d("walvault_backup_last_done_timestamp_seconds", "When the newest DONE backup ended (Unix time)."),
		lastBackupAge:      d("walvault_backup_last_done_age_seconds", "Seconds since the newest DONE backup ended; negative when it ended in the future (a clock was ahead)."),
		lastBackupSize:     d("walvault_backup_last_done_size_bytes", "Raw (uncompressed) size of the newest DONE backup."),
		lastBackupStored:   d("walvault_backup_last_done_stored_bytes", "Stored (compressed) size of the newest DONE backup."),
		lastBackupDuration: d("walvault_backup_last_done_duration_seconds", "How long the newest DONE backup took, from its start to its stop."),

		drillLastOK:     d("walvault_drill_last_ok", "1 if the newest restore drill succeeded, 0 if it failed."),
		drillLastTS:     d("walvault_drill_last_timestamp_seconds", "When the newest restore drill finished, successful or not (Unix time)."),
		drillSuccessTS:  d("walvault_drill_last_success_timestamp_seconds", "When the newest successful restore drill finished (Unix time)."),
		drillSuccessAge: d("walvault_drill_last_success_age_seconds", "Seconds since the newest successful restore drill finished."),
		drillRTO:        d("walvault_drill_last_rto_seconds", "RTO measured by the newest successful restore drill: restore plus replay until read-write."),
		drillRPO:        d("walvault_drill_last_rpo_seconds", "RPO measured by the newest successful restore drill: how old the newest archived WAL was at its target."),

		pgUp:             d("walvault_pg_up", "1 if the PostgreSQL server (pg-conn) answered this scrape, else 0."),
		pgArchived:       d("walvault_pg_archiver_archived_total", "pg_stat_archiver.archived_count: WAL files archived since the statistics were reset."),
		pgFailed:         d("walvault_pg_archiver_failed_total", "pg_stat_archiver.failed_count: failed archive_command runs since the statistics were reset."),
		pgArchivingOff:   d("walvault_pg_archiving_off", "1 when PostgreSQL is a primary with archive_mode = off: its WAL reaches no repository (it writes no .ready files, so the archive lag reads 0), else 0."),
		pgLastArchivedTS: d("walvault_pg_archiver_last_archived_timestamp_seconds", "pg_stat_archiver.last_archived_time (Unix time)."),
		pgLastFailedTS:   d("walvault_pg_archiver_last_failed_timestamp_seconds", "pg_stat_archiver.last_failed_time (Unix time)."),
		readyFiles:       d("walvault_archive_ready_files", "WAL files waiting for archive_command (.ready files in pg_wal/archive_status)."),
		archiveLag:       d("walvault_archive_lag_seconds", "Age of the oldest WAL file waiting for archive_command, 0 when none waits: how far archiving is behind."),
		pgErrors:         d("walvault_pg_scrape_errors_total", "Scrapes whose PostgreSQL queries failed (see walvault_pg_up)."),
	}
}

// Describe sends every descriptor (the exporter is a checked collector).
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	m := e.m
	for _, d := range []*prometheus.Desc{
		m.buildInfo, m.scanSuccess, m.scanTimestamp, m.scanDuration, m.scanErrors, m.repoInfo, m.repoBytes, m.repoObjects,
		m.walSegments, m.lastArchivedTS, m.lastArchivedAge, m.continuityOK, m.latestContinuityOK, m.missingSegments, m.overrunSegments,
		m.backups, m.lastBackupTS, m.lastBackupAge, m.lastBackupSize, m.lastBackupStored, m.lastBackupDuration,
		m.drillLastOK, m.drillLastTS, m.drillSuccessTS, m.drillSuccessAge, m.drillRTO, m.drillRPO,
		m.pgUp, m.pgArchived, m.pgFailed, m.pgLastArchivedTS, m.pgLastFailedTS, m.pgArchivingOff, m.readyFiles, m.archiveLag, m.pgErrors,
	} {
		ch <- d
	}
}

// Collect builds the metrics from the cached snapshot (never listing the
// repository) and, with a connection, from PostgreSQL.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	m := e.m
	now := e.now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	version := e.opts.Version
	if version == "" {
		version = "devel"
	}
	gauge(m.buildInfo, 1, version)

	e.mu.Lock()
	s, ok, took, scanErrors := e.snap, e.lastScanOK, e.lastScanIn, e.scanErrors
	scanned := !e.lastScanAt.IsZero()
	e.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.scanErrors, prometheus.CounterValue, float64(scanErrors))
	if scanned {
		gauge(m.scanSuccess, boolValue(ok))
		gauge(m.scanDuration, took.Seconds())
	}
	if s != nil {
		gauge(m.scanTimestamp, unix(s.at))
		e.collectRepository(s, now, gauge)
	}
	if e.opts.PGConn != "" {
		e.collectPostgres(ch, gauge)
	}
}

func (e *Exporter) collectRepository(s *snapshot, now time.Time, gauge func(*prometheus.Desc, float64, ...string)) {
	m := e.m
	if id := s.identity; id != nil {
		lock := strings.ToLower(string(id.LockMode))
		if lock == "" {
			lock = "off"
		}
		gauge(m.repoInfo, 1, id.SystemID, string(id.Compression), lock, strconv.Itoa(id.PGMajor))
	}
	for _, area := range []string{areaWAL, areaBackups, areaDrills, areaOther} {
		gauge(m.repoBytes, float64(s.bytes[area]), area)
		gauge(m.repoObjects, float64(s.objects[area]), area)
	}
	gauge(m.walSegments, float64(s.segments))
	if !s.newestPushedAt.IsZero() {
		gauge(m.lastArchivedTS, unix(s.newestPushedAt))
		gauge(m.lastArchivedAge, age(now, s.newestPushedAt))
	}
	if s.continuityKnown {
		gauge(m.continuityOK, boolValue(s.continuityOK))
		gauge(m.missingSegments, float64(s.missingSegments))
		gauge(m.overrunSegments, float64(s.overrunSegments))
	}
	if s.latestKnown {
		gauge(m.latestContinuityOK, boolValue(s.latestOK))
	}
	for _, st := range []repository.BackupStatus{repository.StatusDone, repository.StatusWaitingForWALs, repository.StatusIncomplete, repository.StatusDamaged} {
		gauge(m.backups, float64(s.backups[st]), string(st))
	}
	if b := s.lastDone; b != nil {
		gauge(m.lastBackupTS, unix(b.StopTime))
		// Not clamped at 0: a backup from the future (a clock that was
		// ahead) shows, and hides no older backup's age.
		gauge(m.lastBackupAge, now.Sub(b.StopTime).Seconds())
		gauge(m.lastBackupSize, float64(b.RawBytes))
		gauge(m.lastBackupStored, float64(b.Stored))
		gauge(m.lastBackupDuration, b.StopTime.Sub(b.StartTime).Seconds())
	}
	if r := s.lastDrill; r != nil {
		gauge(m.drillLastOK, boolValue(r.OK))
		gauge(m.drillLastTS, unix(r.FinishedAt))
	}
	if r := s.lastOKDrill; r != nil {
		gauge(m.drillSuccessTS, unix(r.FinishedAt))
		gauge(m.drillSuccessAge, age(now, r.FinishedAt))
		gauge(m.drillRTO, r.RTOSeconds)
		if r.RPOSeconds != nil {
			gauge(m.drillRPO, *r.RPOSeconds)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
