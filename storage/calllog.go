package storage

import (
	"context"
	"log/slog"
)

type callLogKey struct{}

// WithCallLog returns ctx carrying the logger of the command making the
// call. The decorators (retries, hidden objects) and the S3 client log a
// call's warnings there rather than to the logger the backend was opened
// with: a backend kept open across commands (wal-helper's) then still
// reports each command's retries in that command's own output, which is
// PostgreSQL's log for archive_command and restore_command.
func WithCallLog(ctx context.Context, log *slog.Logger) context.Context {
	if log == nil {
		return ctx
	}
	return context.WithValue(ctx, callLogKey{}, log)
}

// CallLog is the logger WithCallLog put in ctx, or fallback.
func CallLog(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if log, ok := ctx.Value(callLogKey{}).(*slog.Logger); ok {
		return log
	}
	return fallback
}
