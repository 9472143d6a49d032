package receive

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/walvault/walvault/wal"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func wantMetric(t *testing.T, body, line string) {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("metrics lack %q", line)
}

func TestMetricsLag(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMetrics()
	m.now = func() time.Time { return now }
	m.disconnectedSince = now

	now = now.Add(3 * time.Second)
	wantMetric(t, scrape(t, m), "walvault_receive_lag_seconds 3") // not yet connected
	m.streaming(1, 0x1000000)
	wantMetric(t, scrape(t, m), "walvault_receive_lag_seconds 0")
	wantMetric(t, scrape(t, m), "walvault_receive_connected 1")

	m.serverAt(0x1000100)
	m.receivedWAL(0x100, 0x1000100)
	now = now.Add(500 * time.Millisecond)
	body := scrape(t, m)
	wantMetric(t, body, "walvault_receive_lag_seconds 0.5")
	wantMetric(t, body, "walvault_receive_lag_bytes 256")
	wantMetric(t, body, "walvault_receive_bytes_total 256")

	m.madeDurable(0x1000100, false)
	body = scrape(t, m)
	wantMetric(t, body, "walvault_receive_lag_seconds 0")
	wantMetric(t, body, "walvault_receive_lag_bytes 0")
	wantMetric(t, body, "walvault_receive_partials_stored_total 1")

	// Lost connection: the lag grows from then, even with nothing pending.
	m.disconnected(true)
	now = now.Add(2 * time.Second)
	body = scrape(t, m)
	wantMetric(t, body, "walvault_receive_lag_seconds 2")
	wantMetric(t, body, "walvault_receive_connected 0")
	wantMetric(t, body, "walvault_receive_reconnects_total 1")
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.streaming(1, 0)
	m.receivedWAL(1, wal.LSN(1))
	m.serverAt(2)
	m.madeDurable(1, true)
	m.uploadFailed()
	m.disconnected(true)
}
