package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/internal/handoff"
	"github.com/walvault/walvault/restore"
)

// helperSetting is the helper setting of wal-push and wal-fetch: whether
// a call PostgreSQL makes starts a wal-helper for its data directory.
type helperSetting struct{ AutoHelper bool }

func (h *helperSetting) bind(b *binder) {
	b.add("helper", func(v string) error {
		switch strings.ToLower(v) {
		case "off", "":
			h.AutoHelper = false
		case "auto":
			h.AutoHelper = true
		default:
			return invalid("helper", "want off or auto")
		}
		return nil
	})
}

// autoHelperIdle is how long a helper started by helper auto waits for
// the next call before it stops.
const autoHelperIdle = 10 * time.Minute

// autoHelperLog is the log of a helper started by helper auto, in the
// data directory.
const autoHelperLog = "pg_wal/walvault/helper.log"

// autoHelperStamp, in the data directory, is created by the call that
// starts a helper: no other call starts one while it is younger than
// autoHelperRetry. A helper takes a moment to listen, and one that cannot
// start must not cost every call a second process.
const (
	autoHelperStamp = "pg_wal/walvault/helper.started"
	autoHelperRetry = time.Minute
)

// claimAutoHelperStart says whether this call may start a helper: it
// creates the stamp, or replaces one older than autoHelperRetry. Of
// calls racing, one wins.
func claimAutoHelperStart(dir string) bool {
	stamp := filepath.Join(dir, autoHelperStamp)
	for range 2 {
		f, err := os.OpenFile(stamp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return true
		}
		fi, serr := os.Stat(stamp)
		if !errors.Is(err, fs.ErrExist) || serr != nil || time.Since(fi.ModTime()) < autoHelperRetry {
			return false
		}
		os.Remove(stamp)
	}
	return false
}

// startAutoHelper starts a wal-helper for the data directory this command
// runs in, when helper is auto and none answers there: PostgreSQL runs
// archive_command and restore_command in the data directory, so the calls
// after this one go to it. It runs this binary, detached, with this
// process's environment (PostgreSQL's: the helper then runs every call)
// and the settings given on this command line that it reads, and stops
// after autoHelperIdle without calls. Failing to start one is only logged:
// the calls run in their own processes, as without a helper.
func startAutoHelper(c *cli.Context, enabled bool, cfg Config, log *slog.Logger) {
	if !enabled || runtime.GOOS != "linux" || helperOf(c) != nil {
		return
	}
	if _, err := os.Stat("PG_VERSION"); err != nil {
		return // not in a data directory: run by hand
	}
	if conn, err := net.DialTimeout("unix", handoff.SocketPath, time.Second); err == nil {
		conn.Close() // a helper runs (it declined this call, or was starting)
		return
	}
	failed := func(err error) {
		log.Warn("cannot start a wal-helper (helper auto); calls go on in their own processes", "error", err)
	}
	dir, err := os.Getwd()
	if err != nil {
		failed(err)
		return
	}
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(autoHelperStamp)), 0o700); err != nil || !claimAutoHelperStart(dir) {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		failed(err)
		return
	}
	args := append([]string{"wal-helper", "--idle-exit=" + autoHelperIdle.String()}, forwardedSettings(c, &walHelperOptions{})...)
	if cfg.LogLevel == slog.LevelInfo && !c.IsSet("log-level") {
		// A line per call would grow the log in pg_wal without bound.
		args = append(args, "--log-level=warn")
	}
	args = append(args, dir)
	logPath := filepath.Join(dir, autoHelperLog)
	if err := restore.StartDetached(exe, args, logPath); err != nil {
		failed(err)
		return
	}
	log.Info("started a wal-helper for this data directory (helper auto): the next calls go to it", "log", logPath, "idle_exit", autoHelperIdle)
}

// forwardedSettings are the arguments that give a command started by this
// one (opts: its options) the --config and the settings it reads that this
// command line set. The environment is inherited, and its settings are not
// made flags: a flag would beat the settings file restore wrote, which
// the environment must not (resolve).
func forwardedSettings(c *cli.Context, opts options) []string {
	var args []string
	given := givenFlags(c)
	if given["config"] {
		args = append(args, "--config="+c.String("config"))
	}
	for _, s := range bindSettings(opts).bound {
		switch {
		case !given[s.name], fromEnvironment(c, s.setting):
		case s.isBool:
			args = append(args, "--"+s.name+"="+strconv.FormatBool(c.Bool(s.name)))
		default:
			args = append(args, "--"+s.name+"="+c.String(s.name))
		}
	}
	return args
}
