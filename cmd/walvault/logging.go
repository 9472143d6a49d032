package main

import (
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/walvault/walvault/internal/redact"
)

// Log keys: one vocabulary for every command, whatever package logs.
//
//	err        an error
//	repo       the repository's location
//	segment    a WAL file name
//	backup_id  a backup's id
//	elapsed    how long something took (under --log-format json, like every
//	           duration, a number of seconds; in text, as Go prints it)
//
// newLogger enforces it at the output (normalizeAttr), so a package that
// says "error" or "repository" still logs "err" and "repo".
var keyAliases = map[string]string{
	"error":      "err",
	"repository": "repo",
	"backup":     "backup_id",
}

// logFormatKey is where startSession leaves the log format it resolved, in
// the app's Metadata, for the final error line (run).
const logFormatKey = "walvault.log-format"

// newLogger builds the one logger a command passes down. Under
// archive_command and restore_command stderr lands in the PostgreSQL log, so
// lines are short and keyed: segment, bytes, elapsed.
func newLogger(w io.Writer, cfg Config) *slog.Logger {
	json := cfg.LogFormat == "json"
	opts := &slog.HandlerOptions{Level: cfg.LogLevel, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return normalizeAttr(a, json) }}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// normalizeAttr renames keys to the vocabulary and, in JSON, turns
// durations into seconds. It removes secrets from the message and every
// string or error (package redact): an error may quote what it could not
// parse, a conninfo with its password.
func normalizeAttr(a slog.Attr, json bool) slog.Attr {
	if k, ok := keyAliases[a.Key]; ok {
		a.Key = k
	}
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(redact.String(a.Value.String()))
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(redact.String(err.Error()))
		}
	}
	if json && a.Value.Kind() == slog.KindDuration {
		a.Value = slog.Float64Value(a.Value.Duration().Seconds())
	}
	return a
}

// noteLogFormat remembers the resolved log format for the final error line.
func noteLogFormat(c *cli.Context, cfg Config) {
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[logFormatKey] = cfg.LogFormat
}

// finalLogFormat is the log format the final error line follows: the one
// the command resolved, or, when it failed before (a usage or
// configuration error), what the command line or WALVAULT_LOG_FORMAT asks.
func finalLogFormat(app *cli.App, args []string) string {
	if f, ok := app.Metadata[logFormatKey].(string); ok && f != "" {
		return f
	}
	for i, a := range args {
		for _, flag := range []string{"--log-format", "-log-format"} {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				return v
			}
			if a == flag && i+1 < len(args) {
				return args[i+1]
			}
		}
	}
	return os.Getenv("WALVAULT_LOG_FORMAT")
}

// writeFinalError prints the error a command ended with: one line of text,
// or under --log-format json one JSON record (level ERROR, msg, err,
// command, exit_code).
func writeFinalError(w io.Writer, format, command string, err error, code int) {
	line := redact.String(errorLine(command, err))
	if format != "json" {
		io.WriteString(w, line+"\n")
		return
	}
	log := slog.New(slog.NewJSONHandler(w, nil))
	log.Error(line, "err", redact.String(err.Error()), "command", command, "exit_code", code)
}
