package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/archive"
	"github.com/walvault/walvault/receive"
	"github.com/walvault/walvault/repository"
)

// receiveMemoryLimit is wal-receive's soft Go memory limit.
const receiveMemoryLimit = 24 << 20

// defaultReceiveMetricsListen is the exporter's port plus one, so both can
// run on one host.
const defaultReceiveMetricsListen = "127.0.0.1:9732"

// walReceiveOptions are the settings and flags of wal-receive.
type walReceiveOptions struct {
	Config
	lockSettings
	encryptSettings
	PGConn      string
	Compression repository.Setting
	Timeout     time.Duration
	Slot        string
	CreateSlot  bool
	MaxLag      time.Duration
	SpoolDir    string
	Metrics     string // address to serve metrics on, or ""
}

func (o *walReceiveOptions) bind(b *binder) {
	o.bindUploads(b)
	bindPGConn(b, &o.PGConn)
	bindCompression(b, &o.Compression)
	o.lockSettings.bind(b, &o.Repo)
	o.encryptSettings.bind(b)
	bindTimeout(b, &o.Timeout, "deadline for one upload, retries included; then the stream reconnects and resumes from the repository")
}

func walReceiveCommand() *cli.Command {
	var opts walReceiveOptions
	return &cli.Command{
		Name:  "wal-receive",
		Usage: "stream WAL over a replication slot into the repository (sub-second RPO)",
		Description: `A long-running PostgreSQL physical replication client:

   walvault wal-receive --slot walvault --create-slot --pg-conn 'host=db user=walvault'

It streams WAL from the slot, stores each completed segment exactly as
wal-push does (so both can run side by side into one repository), and every
--max-lag uploads the open segment received so far as a new write-once
partial object (partial/TTTTTTTT/<segment>/<end LSN>.lz4). The slot is told
only the position that is durable in the repository. wal-fetch serves the
newest partial, zero-padded, when PostgreSQL asks for a segment that is not
archived, so a restore reaches the last transaction received.

The role needs the REPLICATION attribute and pg_hba.conf must allow it to
connect to the special database 'replication'. SIGTERM or Ctrl-C uploads
what was received and exits 0. A lost connection is retried with backoff.

When the server is a standby that gets promoted, wal-receive follows the
timeline switch: the old timeline's last segment stays a partial, the new
timeline's history file is stored and streaming goes on on the new
timeline.

--metrics ADDR serves Prometheus metrics at http://ADDR/metrics:
   walvault_receive_lag_seconds (age of the oldest WAL not yet durable in
     the repository, growing while disconnected), walvault_receive_lag_bytes,
   walvault_receive_bytes_total, walvault_receive_segments_stored_total,
   walvault_receive_partials_stored_total, walvault_receive_upload_errors_total,
   walvault_receive_reconnects_total, walvault_receive_connected,
   walvault_receive_timeline, walvault_receive_received_lsn,
   walvault_receive_durable_lsn, walvault_receive_last_durable_timestamp_seconds,
   and the process's CPU and memory (process_*).`,
		Flags: settingFlags(&opts,
			slotFlag("physical replication slot to stream from (required)", &opts.Slot),
			&cli.BoolFlag{Name: "create-slot", Usage: "create the slot (PHYSICAL RESERVE_WAL) when it does not exist", Destination: &opts.CreateSlot},
			&cli.DurationFlag{Name: "max-lag", Value: time.Second, Usage: "upload the open segment at most this long after WAL arrived", Destination: &opts.MaxLag},
			&cli.StringFlag{Name: "spool-dir", Usage: "directory for the segment being received (default: $TMPDIR/walvault-receive-<slot>)", Destination: &opts.SpoolDir},
			&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on this address, such as " + defaultReceiveMetricsListen + " (default: none)", EnvVars: []string{"WALVAULT_RECEIVE_METRICS"}, Destination: &opts.Metrics},
		),
		Action: func(c *cli.Context) error { return walReceive(c, &opts) },
	}
}

// slotFlag is --slot, wal-receive's replication slot, for wal-receive and
// check; usage says what the command does with it.
func slotFlag(usage string, dst *string) cli.Flag {
	return &cli.StringFlag{Name: "slot", Usage: usage, EnvVars: []string{"WALVAULT_SLOT"}, Destination: dst}
}

func walReceive(c *cli.Context, opts *walReceiveOptions) error {
	if c.NArg() != 0 {
		return usagef("wal-receive takes no arguments")
	}
	if opts.Slot == "" {
		return usagef("wal-receive needs --slot NAME, a physical replication slot (add --create-slot to create it)")
	}
	if opts.MaxLag <= 0 {
		return usagef("--max-lag must be positive, such as 1s")
	}
	// The receiver's live heap is small (one compressed segment, 1 MiB
	// buffers); a soft limit keeps the collector from letting garbage
	// double it between collections, which held RSS near 100 MiB.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(receiveMemoryLimit)
	}
	var metrics *receive.Metrics
	if addr := opts.Metrics; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s for --metrics: %w (give another address)", addr, err)
		}
		metrics = receive.NewMetrics()
		srv := &http.Server{Handler: metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}
	// No deadline: it runs until stopped.
	return inSession(c, opts, func(s *session) error { return receiveWAL(opts, s, metrics) })
}

// receiveWAL streams into the repository until the session's context ends.
func receiveWAL(opts *walReceiveOptions, s *session, metrics *receive.Metrics) error {
	log, b := s.log, s.b
	if metrics != nil {
		log.Info("serving metrics", "address", "http://"+opts.Metrics+"/metrics")
		if !loopbackOnly(opts.Metrics) {
			log.Warn("receiver metrics are served over plain HTTP without authentication to other hosts; listen on 127.0.0.1 and let a local proxy or the exporter's --web-config-file front it", "address", opts.Metrics)
		}
	}
	host, _ := os.Hostname()
	err := receive.Run(s.ctx, b, receive.Options{
		ConnString: opts.PGConn,
		Slot:       opts.Slot,
		CreateSlot: opts.CreateSlot,
		MaxLag:     opts.MaxLag,
		SpoolDir:   opts.SpoolDir,
		Timeout:    opts.Timeout,
		Metrics:    metrics,
		Push: archive.Options{
			Compression: opts.Compression.Compression,
			ZstdLevel:   opts.Compression.Level,
			Host:        host,
			Version:     walvaultVersion(),
			Lock:        opts.policy(),
			Recipients:  opts.Recipients,
			Log:         log,
		},
		Log: log,
	})
	if err != nil {
		return lockHint(err, opts.lockSettings, b.Location())
	}
	log.Info("wal-receive stopped")
	return nil
}
