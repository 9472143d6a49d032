package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/walvault/walvault/exporter"
	"github.com/walvault/walvault/pg"
)

// defaultExporterListen is loopback only, on a port no common PostgreSQL
// exporter uses: postgres_exporter has 9187, pgbackrest_exporter 9854.
const defaultExporterListen = "127.0.0.1:9731"

// exporterOptions are the settings and flags of exporter.
type exporterOptions struct {
	Config
	PGConn  string // "": no PostgreSQL metrics
	Listen  string
	Refresh time.Duration
	// WebConfigFile is the exporter-toolkit web configuration (TLS, basic
	// auth); "" serves plain HTTP without authentication.
	WebConfigFile string
}

func (o *exporterOptions) bind(b *binder) {
	bindPGConn(b, &o.PGConn)
}

func exporterCommand() *cli.Command {
	var opts exporterOptions
	return &cli.Command{
		Name:  "exporter",
		Usage: "serve Prometheus metrics: archive lag, newest backup and drill, WAL continuity, repository size",
		Description: `Serves metrics at http://LISTEN/metrics for Prometheus. The default address,
` + defaultExporterListen + `, is on loopback and on a port that no common PostgreSQL
exporter uses (postgres_exporter listens on 9187, pgbackrest_exporter on
9854), so it can run beside them; give --listen :9731 to be scraped from
another host, with --web-config-file for TLS and a password (below).

The repository is scanned once at start and then every --refresh: one
listing of the whole repository, with manifests and drill records read once
and cached. A scrape never lists the repository; it reads the last scan
(walvault_repository_scan_timestamp_seconds says when that was). With
pg-conn set, each scrape also reads pg_stat_archiver and the .ready backlog
from PostgreSQL (the role needs pg_monitor).

Metrics (gauges unless _total):
   walvault_last_archived_segment_timestamp_seconds, _age_seconds
   walvault_wal_segments, walvault_wal_continuity_ok,
   walvault_wal_latest_backup_continuity_ok, walvault_wal_missing_segments,
     walvault_wal_timeline_overrun_segments (grows: a timeline archived past a branch)
   walvault_backups{status}, walvault_backup_last_done_timestamp_seconds,
     _age_seconds, _size_bytes, _stored_bytes, _duration_seconds
   walvault_drill_last_ok, walvault_drill_last_timestamp_seconds,
     walvault_drill_last_success_timestamp_seconds, _age_seconds,
     walvault_drill_last_rto_seconds, walvault_drill_last_rpo_seconds
   walvault_repository_bytes{area}, walvault_repository_objects{area},
     walvault_repository_info{...}, walvault_repository_scan_success,
     _scan_timestamp_seconds, _scan_duration_seconds, _scan_errors_total
   with pg-conn: walvault_pg_up, walvault_pg_archiver_archived_total,
     walvault_pg_archiver_failed_total, walvault_pg_archiver_last_archived_timestamp_seconds,
     walvault_pg_archiver_last_failed_timestamp_seconds, walvault_archive_ready_files,
     walvault_archive_lag_seconds (age of the oldest .ready file), walvault_pg_scrape_errors_total,
     walvault_pg_archiving_off (a primary with archive_mode = off)
   (walvault_pg_up is 0 too when pg-conn reaches another cluster than the
   repository's: its archiving says nothing about this repository)

TLS and basic authentication: --web-config-file names a web configuration
file in the format every Prometheus exporter reads (tls_server_config with
cert_file and key_file; basic_auth_users with bcrypt hashes, e.g. from
htpasswd -nBC 10 ""). It is read again on each connection, so a renewed
certificate or a changed password needs no restart.

Alert rules (with promtool unit tests), systemd units and a Grafana
dashboard are in contrib/; the README ("Monitoring") says more.`,
		Flags: settingFlags(&opts,
			&cli.StringFlag{Name: "listen", Value: defaultExporterListen, Usage: "address to serve metrics on", EnvVars: []string{"WALVAULT_LISTEN"}, Destination: &opts.Listen},
			&cli.DurationFlag{Name: "refresh", Value: exporter.DefaultRefresh, Usage: "how often to scan the repository", EnvVars: []string{"WALVAULT_REFRESH"}, Destination: &opts.Refresh},
			&cli.StringFlag{Name: "web-config-file", Usage: "web configuration file for TLS and basic authentication (the Prometheus exporters' --web.config.file format)", EnvVars: []string{"WALVAULT_WEB_CONFIG_FILE"}, Destination: &opts.WebConfigFile},
		),
		Action: repoAction(&opts, exporterAction),
	}
}

func (o *exporterOptions) precheck(c *cli.Context) error {
	if err := noArgs(c, "exporter takes no arguments"); err != nil {
		return err
	}
	if o.Refresh < time.Second {
		return usagef("--refresh %v: want at least 1s", o.Refresh)
	}
	// Read now so a bad file fails at start, not at the first scrape.
	if err := web.Validate(o.WebConfigFile); err != nil {
		return usagef("--web-config-file %s: %v", o.WebConfigFile, err)
	}
	return nil
}

// validate refuses, once the settings are resolved, connection settings
// that can never parse: every scrape would report walvault_pg_up 0 and
// log why.
func (o *exporterOptions) validate() error {
	if o.PGConn != "" {
		if _, err := pg.ParseConfig(o.PGConn, ""); err != nil {
			return fmt.Errorf("pg-conn: %w", err)
		}
	}
	return nil
}

// exporterAction serves until the session's context ends (SIGINT or
// SIGTERM).
func exporterAction(c *cli.Context, opts *exporterOptions, s *session) error {
	log, ctx, b := s.log, s.ctx, s.b
	refresh := opts.Refresh
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (give another --listen)", opts.Listen, err)
	}

	e := exporter.New(b, exporter.Options{Refresh: refresh, PGConn: opts.PGConn, Version: walvaultVersion(), Log: log})
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(runCtx)
	}()
	served := make(chan error, 1)
	webFlags := &web.FlagConfig{WebConfigFile: &opts.WebConfigFile}
	go func() { served <- web.Serve(ln, srv, webFlags, log) }()
	log.Info("serving metrics", "address", ln.Addr().String(), "path", "/metrics", "repo", b.Location(), "refresh", refresh, "postgres", opts.PGConn != "", "web_config", opts.WebConfigFile)
	if !loopbackOnly(ln.Addr().String()) {
		if opts.WebConfigFile == "" {
			log.Warn("metrics are served over plain HTTP without authentication to other hosts; give --web-config-file for TLS and a password", "address", ln.Addr().String())
		} else if passwordsInClear(opts.WebConfigFile) {
			log.Warn("basic authentication without TLS: passwords cross the network in clear text; add tls_server_config to the web configuration file", "address", ln.Addr().String(), "web_config", opts.WebConfigFile)
		}
	}

	select {
	case err = <-served:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	stop()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err == nil {
		log.Info("exporter stopped")
	}
	return err
}

// passwordsInClear reports whether a web configuration file asks for
// basic authentication but sets up no TLS: every scrape then sends a
// password any host on the path can read. The file has passed
// web.Validate already; a read error here only skips the warning.
func passwordsInClear(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var shape struct {
		TLS   map[string]any    `yaml:"tls_server_config"`
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if yaml.Unmarshal(data, &shape) != nil {
		return false
	}
	if len(shape.Users) == 0 {
		return false
	}
	// The toolkit serves TLS once any certificate, key or client CA
	// setting is given (min_version and the like alone leave it off).
	for _, key := range []string{"cert_file", "cert", "key_file", "key", "client_ca_file", "client_ca", "client_auth_type"} {
		if v, _ := shape.TLS[key].(string); v != "" {
			return false
		}
	}
	return true
}

// loopbackOnly reports whether a listen address can only be reached from
// this host; an unspecified address (":9731") listens on every interface.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
