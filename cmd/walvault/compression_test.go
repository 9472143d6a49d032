package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCompressionSettingRefused: a bad compression setting stops every
// command that reads it before anything is touched, with exit 2 and one
// line naming the setting and what it takes, from the flag, the
// environment or the config file alike (wal-fetch exits 200: a wrong
// setting must stop recovery, never read as "missing").
func TestCompressionSettingRefused(t *testing.T) {
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	for _, tc := range []struct {
		value, want string
	}{
		{"zstd:0", `invalid zstd level in "zstd:0": want a whole number from 1 to 22`},
		{"zstd:99", `invalid zstd level in "zstd:99": want a whole number from 1 to 22`},
		{"lz4:9", `compression "lz4:9" takes no level`},
		{"gzip", `unknown compression "gzip": use lz4, zstd, zstd:LEVEL (1-22) or none`},
	} {
		for _, command := range [][]string{
			{"wal-push", "pg_wal/000000010000000000000001"},
			{"wal-fetch", "000000010000000000000001", "RECOVERYXLOG"},
			{"backup-push"},
		} {
			wantCode := exitUsage
			if command[0] == "wal-fetch" {
				wantCode = exitRecoveryMustStop
			}
			for _, from := range []string{"flag", "env", "file"} {
				t.Run(tc.value+"/"+command[0]+"/"+from, func(t *testing.T) {
					args := []string{command[0], "--repo", repo}
					switch from {
					case "flag":
						args = append(args, "--compression", tc.value)
					case "env":
						t.Setenv("WALVAULT_COMPRESSION", tc.value)
					case "file":
						args = append(args, "--config", writeYAML(t, "compression: "+tc.value+"\n"))
					}
					code, _, stderr := runCmd(t, append(args, command[1:]...)...)
					line := strings.TrimSpace(stderr)
					if code != wantCode || !strings.Contains(line, "invalid compression (--compression, WALVAULT_COMPRESSION)") || !strings.Contains(line, tc.want) || strings.Contains(line, "\n") {
						t.Errorf("exit %d, stderr %q; want exit %d and one line saying %q", code, stderr, wantCode, tc.want)
					}
				})
			}
		}
	}
}
