package exporter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/walvault/walvault/pg"
)

// pgStats is what one scrape reads from PostgreSQL.
type pgStats struct {
	archived, failed         int64
	lastArchived, lastFailed *time.Time
	ready                    int64
	oldestReadyAge           *float64 // seconds, by the server's clock
	readyErr                 error    // pg_ls_archive_statusdir refused (needs pg_monitor)
	// archivingOff: a primary with archive_mode = off, whose WAL reaches
	// no repository (it writes no .ready files, so lag reads 0).
	archivingOff bool
}

// queryPG connects, reads pg_stat_archiver and the .ready files, and
// disconnects. A scrape is rare enough (every 15 to 60 s) that a
// connection per scrape costs nothing and never goes stale.
func (e *Exporter) queryPG(ctx context.Context, repoSystemID string) (pgStats, error) {
	var st pgStats
	cfg, err := pg.ParseConfig(e.opts.PGConn, "")
	if err != nil {
		return st, err
	}
	cfg.RuntimeParams["application_name"] = "walvault exporter"
	conn, err := pg.Connect(ctx, cfg)
	if err != nil {
		return st, err
	}
	defer pg.CloseSQL(conn)
	err = conn.QueryRow(ctx, `SELECT archived_count, failed_count, last_archived_time, last_failed_time,
	  current_setting('archive_mode') = 'off' AND NOT pg_is_in_recovery() FROM pg_stat_archiver`).
		Scan(&st.archived, &st.failed, &st.lastArchived, &st.lastFailed, &st.archivingOff)
	if err != nil {
		return st, fmt.Errorf("read pg_stat_archiver: %w", err)
	}
	// Another cluster's server (a pg-conn copied from another cluster's
	// environment file) would make its archiving stand for this
	// repository's. Roles that may not read the identifier are not judged.
	var sysID string
	if repoSystemID != "" && conn.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&sysID) == nil && sysID != repoSystemID {
		return st, fmt.Errorf("pg-conn reaches the PostgreSQL cluster with system identifier %s, but the repository %s holds cluster %s's WAL: its archiving says nothing about this repository; point pg-conn at the cluster that archives here", sysID, e.b.Location(), repoSystemID)
	}
	st.readyErr = conn.QueryRow(ctx, `SELECT count(*), extract(epoch FROM now() - min(modification))::float8
	  FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'`).Scan(&st.ready, &st.oldestReadyAge)
	var pgErr *pgconn.PgError
	if errors.As(st.readyErr, &pgErr) && pgErr.Code == "42501" {
		st.readyErr = fmt.Errorf("%s: GRANT pg_monitor TO %s to export the .ready backlog", pgErr.Message, cfg.User)
	}
	return st, nil
}

// collectPostgres reports the archiver's state; walvault_pg_up says
// whether PostgreSQL answered.
func (e *Exporter) collectPostgres(ch chan<- prometheus.Metric, gauge func(*prometheus.Desc, float64, ...string)) {
	m := e.m
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.PGTimeout)
	defer cancel()
	repoSystemID := ""
	e.mu.Lock()
	if e.snap != nil && e.snap.identity != nil {
		repoSystemID = e.snap.identity.SystemID
	}
	e.mu.Unlock()
	st, err := e.queryPG(ctx, repoSystemID)
	msg := ""
	if err != nil {
		msg = err.Error()
	} else if st.readyErr != nil {
		msg = st.readyErr.Error()
	}
	e.mu.Lock()
	changed := msg != e.lastPGErr
	e.lastPGErr = msg
	if err != nil || st.readyErr != nil { // a query failed, whichever
		e.pgErrors++
	}
	pgErrors := e.pgErrors
	e.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.pgErrors, prometheus.CounterValue, float64(pgErrors))
	if changed && msg != "" {
		e.log.Warn("PostgreSQL metrics incomplete", "error", msg)
	} else if changed {
		e.log.Info("PostgreSQL metrics available again")
	}
	if err != nil {
		gauge(m.pgUp, 0)
		return
	}
	gauge(m.pgUp, 1)
	gauge(m.pgArchivingOff, boolValue(st.archivingOff))
	// Counters: they only grow, and a statistics reset is a counter reset
	// to Prometheus (rate and increase handle it).
	ch <- prometheus.MustNewConstMetric(m.pgArchived, prometheus.CounterValue, float64(st.archived))
	ch <- prometheus.MustNewConstMetric(m.pgFailed, prometheus.CounterValue, float64(st.failed))
	if st.lastArchived != nil {
		gauge(m.pgLastArchivedTS, unix(*st.lastArchived))
	}
	if st.lastFailed != nil {
		gauge(m.pgLastFailedTS, unix(*st.lastFailed))
	}
	if st.readyErr == nil {
		gauge(m.readyFiles, float64(st.ready))
		lag := 0.0
		if st.oldestReadyAge != nil && *st.oldestReadyAge > 0 {
			lag = *st.oldestReadyAge
		}
		gauge(m.archiveLag, lag)
	}
}

// unix is t as Prometheus timestamps are: seconds since the epoch.
func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// age is how many seconds before now t was (never negative).
func age(now, t time.Time) float64 {
	if d := now.Sub(t).Seconds(); d > 0 {
		return d
	}
	return 0
}
