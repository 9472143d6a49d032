package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLogVocabulary: whatever key a package uses, the output says err,
// repo and backup_id; in JSON, elapsed (every duration) is a number of
// seconds and ratio a number.
func TestLogVocabulary(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, Config{LogFormat: "json", LogLevel: slog.LevelInfo})
	log.Info("restored", "segment", "000000010000000000000001", "repository", "s3://b/p", "error", errors.New("boom"),
		"backup", "20261125T103000Z", "elapsed", 1500*time.Millisecond, "ratio", ratio(136, 1000))
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %v\n%s", err, buf.String())
	}
	want := map[string]any{"segment": "000000010000000000000001", "repo": "s3://b/p", "err": "boom", "backup_id": "20261125T103000Z", "elapsed": 1.5, "ratio": 0.136}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s: got %#v, want %#v\n%s", k, rec[k], v, buf.String())
		}
	}
	for _, k := range []string{"error", "repository", "backup"} {
		if _, ok := rec[k]; ok {
			t.Errorf("key %q is not in the vocabulary:\n%s", k, buf.String())
		}
	}

	buf.Reset()
	log = newLogger(&buf, Config{LogFormat: "text", LogLevel: slog.LevelInfo})
	log.Warn("retrying", "error", errors.New("boom"), "elapsed", 1500*time.Millisecond)
	if out := buf.String(); !strings.Contains(out, "err=boom") || !strings.Contains(out, "elapsed=1.5s") {
		t.Errorf("text: %s, want err=boom and elapsed=1.5s", out)
	}
}

// TestFinalErrorJSON: under --log-format json the error a command ends
// with is a JSON record too, usage errors included.
func TestFinalErrorJSON(t *testing.T) {
	repo := "file://" + t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"info", "--repo", repo, "--log-format", "json"}, exitFailed},
		{[]string{"info", "--log-format=json", "--repo", repo, "a", "b"}, exitUsage},
	} {
		stdout, stderr, code := runVerifyOrCheck(t, tc.args...)
		if code != tc.code {
			t.Fatalf("%v: exit %d, want %d\n%s%s", tc.args, code, tc.code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
			t.Fatalf("%v: the final error is not a JSON record: %v\n%s", tc.args, err, stderr)
		}
		if rec["level"] != "ERROR" || rec["command"] != "info" || rec["exit_code"] != float64(tc.code) || rec["err"] == "" || !strings.HasPrefix(rec["msg"].(string), "walvault") {
			t.Errorf("%v: final record %v", tc.args, rec)
		}
	}
	// Text stays one plain line.
	_, stderr, _ := runVerifyOrCheck(t, "info", "--repo", repo)
	if !strings.HasPrefix(stderr, "walvault: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("text final error: %q", stderr)
	}
}

// TestLogsRedactSecrets: an error that quotes a conninfo (pgx does, for
// one it cannot parse) or an archive_command loses its secrets in every
// log format and in the final error line, also written "password = X",
// which libpq accepts (explore24d F1, F5).
func TestLogsRedactSecrets(t *testing.T) {
	failure := errors.New("cannot parse `host=db user=wv password = SECRET_Y sslmode=bogus`: failed to configure TLS; archive_command is \"AWS_SECRET_ACCESS_KEY=SECRET_Z walvault wal-push %p\"")
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := newLogger(&buf, Config{LogFormat: format, LogLevel: slog.LevelInfo})
		log.Warn("connecting with password=SECRET_M failed", "err", failure, "detail", failure.Error())
		writeFinalError(&buf, format, "backup-push", failure, 1)
		out := buf.String()
		if strings.Contains(out, "SECRET_Y") || strings.Contains(out, "SECRET_Z") || strings.Contains(out, "SECRET_M") || !strings.Contains(out, "sslmode=bogus") {
			t.Errorf("%s logs: want no secret, the rest kept:\n%s", format, out)
		}
	}
}
