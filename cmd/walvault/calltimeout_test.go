package main

import (
	"testing"
	"time"
)

// TestCallTimeoutIsTheCommandsTimeout: every command that reads --timeout
// bounds each storage call by it, long commands included; one that reads
// none gets the setting's default, whatever the environment says.
func TestCallTimeoutIsTheCommandsTimeout(t *testing.T) {
	env := map[string]string{"WALVAULT_REPO": "file:///r", "WALVAULT_TIMEOUT": "45s", "WALVAULT_RETAIN": "REDUNDANCY 1"}
	for name, opts := range map[string]options{
		"wal-push": &walPushOptions{}, "wal-fetch": &walFetchOptions{}, "wal-receive": &walReceiveOptions{},
		"backup-push": &backupPushOptions{}, "backup-list": &backupListOptions{}, "backup-mark": &backupMarkOptions{},
		"restore": &restoreOptions{}, "drill": &drillOptions{}, "delete": &deleteOptions{},
		"verify": &verifyOptions{}, "check": &checkOptions{},
	} {
		if err := resolveFor(t, opts, env); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := callTimeout(opts); got != 45*time.Second {
			t.Errorf("%s: call timeout %v with WALVAULT_TIMEOUT=45s, want 45s", name, got)
		}
	}
	for name, opts := range map[string]options{"repair": &repairOptions{}, "exporter": &exporterOptions{}, "wal-prefetch": &walPrefetchOptions{}} {
		if err := resolveFor(t, opts, env); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := callTimeout(opts); got != defaultCallTimeout {
			t.Errorf("%s: call timeout %v, want the default %v (it reads no --timeout)", name, got, defaultCallTimeout)
		}
	}
}
