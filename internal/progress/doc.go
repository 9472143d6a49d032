// Package progress shows how far a long command got: on a terminal, one
// bar line (done of total, rate, ETA) kept below the log; elsewhere, a log
// line every few seconds. Every long command (backup-push, restore, verify
// --full, drill, delete --confirm) reports through it.
//
// An Output owns the command's stderr: the logger writes through it too,
// so a log record clears the bar line first and the bar is drawn again
// below it; a log line never shares a line with the bar. Read output.go
// first, then task.go.
package progress
