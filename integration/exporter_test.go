package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

func startExporter(t *testing.T, env []string, args ...string) (string, *testenv.SyncBuffer) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cmd := exec.Command(testenv.BuildWalvault(t), append([]string{"exporter", "--listen", addr}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := testenv.ScrapeMetrics(addr); err == nil {
			return addr, out
		}
		select {
		case <-exited:
			t.Fatalf("the exporter exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exporter did not answer within 30s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitMetrics scrapes until cond holds.
func waitMetrics(t *testing.T, addr, what string, cond func(m map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := testenv.ScrapeMetrics(addr)
		if err == nil && cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s within 30s (last scrape error %v):\n%s", what, err, walvaultMetrics(m))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// walvaultMetrics prints the walvault_ series of a scrape, for failures.
func walvaultMetrics(m map[string]float64) string {
	var lines []string
	for k, v := range m {
		if strings.HasPrefix(k, "walvault_") {
			lines = append(lines, fmt.Sprintf("%s %v", k, v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestExporter scrapes the exporter over HTTP while WAL is pushed, a backup
// taken and a drill run: each shows in the metrics, within a refresh.
func TestExporter(t *testing.T) {
	promtool := testenv.Promtool(t) // fail before the servers start
	r := s3Repo(t)
	secret := valueOf(r.env, "AWS_SECRET_ACCESS_KEY")
	pg, _ := archivingServer(t, r)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	addr, exporterOut := startExporter(t, r.env, "--refresh", "1s", "--pg-conn", pg.ConnString())

	m0 := waitMetrics(t, addr, "a first scan and PostgreSQL", func(m map[string]float64) bool {
		return m["walvault_repository_scan_success"] == 1 && m["walvault_wal_segments"] >= 1 && m["walvault_pg_up"] == 1
	})
	for _, series := range []string{
		"walvault_last_archived_segment_timestamp_seconds", "walvault_last_archived_segment_age_seconds",
		"walvault_wal_continuity_ok", `walvault_backups{status="DONE"}`, `walvault_repository_bytes{area="wal"}`,
		"walvault_pg_archiver_archived_total", "walvault_pg_archiver_failed_total", "walvault_archive_ready_files",
		"walvault_archive_lag_seconds", "walvault_repository_scan_duration_seconds", "walvault_repository_scan_errors_total",
	} {
		if _, ok := m0[series]; !ok {
			t.Errorf("the first scrape lacks %s", series)
		}
	}
	if m0[`walvault_backups{status="DONE"}`] != 0 || m0["walvault_wal_continuity_ok"] != 1 || m0["walvault_pg_archiving_off"] != 0 {
		t.Errorf("before any backup: %s", walvaultMetrics(m0))
	}

	// Another cluster's server at pg-conn (a copied environment file):
	// its archiving must not stand for this repository's (explore23a
	// F10). Its archive_mode is off, which an exporter on a repository
	// of its own says (F6).
	other := testenv.StartPostgres(t, testenv.PostgresOptions{})
	wrongAddr, wrongOut := startExporter(t, r.env, "--refresh", "1h", "--pg-conn", other.ConnString())
	waitMetrics(t, wrongAddr, "another cluster's server refused", func(m map[string]float64) bool {
		return m["walvault_repository_scan_success"] == 1 && m["walvault_pg_up"] == 0
	})
	if !strings.Contains(wrongOut.String(), "holds cluster") {
		t.Errorf("exporter at another cluster's server: log %q, want the mismatch said", wrongOut.String())
	}
	offAddr, _ := startExporter(t, append(r.env, "WALVAULT_REPO=file://"+testenv.UserDir(t)), "--refresh", "1h", "--pg-conn", other.ConnString())
	waitMetrics(t, offAddr, "archive_mode off", func(m map[string]float64) bool {
		return m["walvault_pg_up"] == 1 && m["walvault_pg_archiving_off"] == 1
	})
	if _, ok := m0["walvault_drill_last_success_timestamp_seconds"]; ok {
		t.Errorf("a drill success is reported before any drill")
	}

	// A role without pg_monitor cannot list archive_status: each scrape's
	// failed query counts, and the lag is left out rather than guessed.
	pg.SQL(t, "CREATE ROLE mon LOGIN")
	monAddr, monOut := startExporter(t, r.env, "--refresh", "1h", "--pg-conn", pg.ConnString()+" user=mon")
	mm := waitMetrics(t, monAddr, "a counted scrape error without pg_monitor", func(m map[string]float64) bool {
		return m["walvault_pg_up"] == 1 && m["walvault_pg_scrape_errors_total"] >= 1
	})
	if _, ok := mm["walvault_archive_lag_seconds"]; ok || !strings.Contains(monOut.String(), "GRANT pg_monitor TO mon") {
		t.Errorf("without pg_monitor: lag exported %v, log %q; want no lag and the GRANT named", ok, monOut.String())
	}

	// A push: more segments, pg_stat_archiver counts it.
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitMetrics(t, addr, "the pushed segment", func(m map[string]float64) bool {
		return m["walvault_wal_segments"] > m0["walvault_wal_segments"] &&
			m["walvault_pg_archiver_archived_total"] > m0["walvault_pg_archiver_archived_total"] &&
			m[`walvault_repository_bytes{area="wal"}`] > m0[`walvault_repository_bytes{area="wal"}`]
	})

	// A backup.
	pg.SQL(t, "CREATE TABLE exported AS SELECT g FROM generate_series(1, 1000) g")
	id := backupPush(t, r, pg)
	pg.WaitArchived(t, pg.SwitchWAL(t), 60*time.Second)
	waitDone(t, r, id)
	m1 := waitMetrics(t, addr, "the backup", func(m map[string]float64) bool {
		return m[`walvault_backups{status="DONE"}`] == 1 && m["walvault_backup_last_done_size_bytes"] > 0
	})
	for _, series := range []string{"walvault_backup_last_done_timestamp_seconds", "walvault_backup_last_done_age_seconds", "walvault_backup_last_done_duration_seconds", "walvault_backup_last_done_stored_bytes"} {
		if _, ok := m1[series]; !ok {
			t.Errorf("after a backup the metrics lack %s", series)
		}
	}

	// A drill.
	scratch := testenv.UserDir(t)
	res := walvault(t, r.env, "drill", "--scratch-dir", scratch, "--check-sql", "SELECT * FROM exported")
	if res.code != 0 {
		t.Fatalf("drill: %v", res)
	}
	m2 := waitMetrics(t, addr, "the drill", func(m map[string]float64) bool {
		return m["walvault_drill_last_success_timestamp_seconds"] > 0 && m["walvault_drill_last_ok"] == 1
	})
	if m2["walvault_drill_last_rto_seconds"] <= 0 || m2[`walvault_repository_objects{area="drills"}`] != 1 || m2["walvault_wal_continuity_ok"] != 1 || m2["walvault_wal_latest_backup_continuity_ok"] != 1 {
		t.Errorf("after a drill: %s", walvaultMetrics(m2))
	}
	assertDrillCleanedUp(t, scratch)
	t.Logf("metrics after a push, a backup and a drill:\n%s", walvaultMetrics(m2))
	checkMetrics(t, promtool, addr)

	outputs := map[string]string{
		"exporter output":      exporterOut.String(),
		"drill output":         res.stdout + res.stderr,
		"archiving server log": string(readFile(t, pg.LogFile)),
	}
	body := new(strings.Builder)
	for k, v := range m2 {
		fmt.Fprintf(body, "%s %v\n", k, v)
	}
	outputs["metrics"] = body.String()
	assertNoSecret(t, secret, outputs)
}

// checkMetrics runs promtool check metrics on a scrape of addr: names,
// types and help texts as Prometheus' own linter wants them.
func checkMetrics(t *testing.T, promtool, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	if !bytes.Contains(body, []byte("walvault_pg_archiver_failed_total")) {
		t.Fatalf("the scrape lacks the PostgreSQL metrics:\n%s", body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on the exporter's scrape: %v\n%s", err, out)
	}
}

// TestLogLines checks the one info line each wal-push and wal-fetch
// writes per outcome, as PostgreSQL's log shows them: the segment, its
// size and the time it took, and never a secret.
func TestLogLines(t *testing.T) {
	r := s3Repo(t)
	secret := valueOf(r.env, "AWS_SECRET_ACCESS_KEY")
	pg, _ := archivingServer(t, r)
	seg := pg.SwitchWAL(t)
	pg.WaitArchived(t, seg, 60*time.Second)

	log := string(readFile(t, pg.LogFile))
	var push string
	for _, line := range strings.Split(log, "\n") {
		// "archived", or "already archived ..." when PostgreSQL retried a
		// push whose first attempt it did not see succeed.
		if strings.Contains(line, "level=INFO") && strings.Contains(line, "archived") && strings.Contains(line, "segment="+seg) {
			push = line
		}
	}
	if push == "" {
		t.Fatalf("the server log has no wal-push line for %s:\n%s", seg, log)
	}
	for _, key := range []string{"level=INFO", "segment=", "bytes=16777216", "elapsed="} {
		if !strings.Contains(push, key) {
			t.Errorf("wal-push line lacks %s: %s", key, push)
		}
	}

	fetch := walvault(t, r.env, "wal-fetch", seg, t.TempDir()+"/seg")
	var info []string // a loaded gateway may add retry warnings; the outcome is one INFO line
	for _, line := range strings.Split(strings.TrimSpace(fetch.stderr), "\n") {
		if strings.Contains(line, "level=INFO") {
			info = append(info, line)
		}
	}
	if fetch.code != 0 || len(info) != 1 {
		t.Fatalf("wal-fetch: want one INFO line, got %v", fetch)
	}
	for _, key := range []string{"msg=restored", "segment=" + seg, "bytes=16777216", "elapsed="} {
		if !strings.Contains(info[0], key) {
			t.Errorf("wal-fetch line lacks %s: %s", key, info[0])
		}
	}
	missing := walvault(t, r.env, "wal-fetch", "0000000100000000000000FF", t.TempDir()+"/x")
	if missing.code != 1 || !strings.Contains(missing.stderr, "0000000100000000000000FF") || !strings.Contains(missing.stderr, "not in the archive") {
		t.Errorf("wal-fetch of a missing segment: %v", missing)
	}
	json := walvault(t, append(r.env, "WALVAULT_LOG_FORMAT=json"), "wal-fetch", seg, t.TempDir()+"/seg")
	if json.code != 0 || !strings.HasPrefix(strings.TrimSpace(json.stderr), `{"time":`) || !strings.Contains(json.stderr, `"msg":"restored","segment":"`+seg+`"`) {
		t.Errorf("wal-fetch with log-format json: %v", json)
	}
	assertNoSecret(t, secret, map[string]string{
		"server log":   log,
		"wal-fetch":    fetch.stdout + fetch.stderr,
		"missing":      missing.stdout + missing.stderr,
		"json logging": json.stdout + json.stderr,
	})
}
