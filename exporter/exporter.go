package exporter

import (
	"context"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/walvault/walvault/storage"
)

// Options are the exporter's settings, resolved by cmd.
type Options struct {
	// Refresh is how often the repository is scanned (default 60s).
	Refresh time.Duration
	// ScanTimeout bounds one scan (default 5m, at least Refresh).
	ScanTimeout time.Duration
	// PGConn, when set, is the PostgreSQL server whose archiver is
	// watched (libpq conninfo or URL; PG* variables and ~/.pgpass apply).
	PGConn string
	// PGTimeout bounds the PostgreSQL queries of one scrape (default 5s).
	PGTimeout time.Duration
	Version   string
	Log       *slog.Logger
	Now       func() time.Time
}

// DefaultRefresh is how often the repository is scanned by default.
const DefaultRefresh = 60 * time.Second

// Exporter holds the newest repository snapshot and serves metrics from it.
type Exporter struct {
	b    storage.Backend
	opts Options
	log  *slog.Logger
	now  func() time.Time
	reg  *prometheus.Registry
	m    *metrics

	mu         sync.Mutex
	scanErrors int64
	pgErrors   int64
	snap       *snapshot // the newest successful scan; nil before the first
	lastScanOK bool
	lastScanAt time.Time
	lastScanIn time.Duration
	lastPGErr  string

	// scanMu serialises scans; cache belongs to whoever holds it.
	scanMu sync.Mutex
	cache  *cache
}

// New builds an exporter for the repository b. Call Run (or Refresh) to
// fill it; until the first scan succeeds only the scan and PostgreSQL
// metrics are served.
func New(b storage.Backend, opts Options) *Exporter {
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.ScanTimeout <= 0 {
		opts.ScanTimeout = 5 * time.Minute
	}
	if opts.ScanTimeout < opts.Refresh {
		opts.ScanTimeout = opts.Refresh
	}
	if opts.PGTimeout <= 0 {
		opts.PGTimeout = 5 * time.Second
	}
	e := &Exporter{b: b, opts: opts, log: opts.Log, now: opts.Now, reg: prometheus.NewRegistry(), m: newMetrics(), cache: newCache()}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.reg.MustRegister(e,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return e
}

// Registry is the exporter's own registry (never the global default).
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// Handler serves /metrics, and a short page at / that links to it.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><head><title>walvault exporter</title></head><body><h1>walvault exporter</h1><p>Repository %s. <a href=\"/metrics\">Metrics</a></p></body></html>\n", html.EscapeString(e.b.Location()))
	})
	return mux
}

// Run scans the repository at once and then every Refresh until ctx ends.
// A failed scan is logged and counted; the previous snapshot stays.
func (e *Exporter) Run(ctx context.Context) {
	_ = e.Refresh(ctx)
	t := time.NewTicker(e.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = e.Refresh(ctx)
		}
	}
}

// Refresh scans the repository once and, on success, replaces the
// snapshot.
func (e *Exporter) Refresh(ctx context.Context) error {
	e.scanMu.Lock()
	defer e.scanMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, e.opts.ScanTimeout)
	defer cancel()
	began := e.now()
	snap, err := e.scan(ctx)
	took := e.now().Sub(began)

	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastScanAt, e.lastScanIn, e.lastScanOK = e.now(), took, err == nil
	if err != nil {
		e.scanErrors++
		kept := "metrics keep the last successful scan's values"
		if e.snap == nil {
			kept = "no scan has succeeded yet, so no repository metric is exported"
		}
		e.log.Warn("repository scan failed; "+kept, "repo", e.b.Location(), "error", err, "elapsed", took.Round(time.Millisecond))
		return err
	}
	e.snap = snap
	e.log.Debug("repository scanned", "repo", e.b.Location(), "objects", snap.totalObjects(), "elapsed", took.Round(time.Millisecond))
	return nil
}
