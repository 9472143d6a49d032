package main

import (
	"io"
	"log/slog"
)

// newLogger builds the one logger a command passes down. Under
// archive_command and restore_command stderr lands in the PostgreSQL log, so
// lines are short and keyed: segment, bytes, elapsed.
func newLogger(w io.Writer, cfg Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
