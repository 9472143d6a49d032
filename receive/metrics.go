package receive

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/walvault/walvault/wal"
)

// Metrics is what wal-receive reports to Prometheus. It outlives
// reconnections; a nil *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	receivedBytes prometheus.Counter
	segments      prometheus.Counter
	partials      prometheus.Counter
	uploadErrors  prometheus.Counter
	reconnects    prometheus.Counter

	mu sync.Mutex
	// pendingSince is when WAL that is not yet durable in the repository
	// was first received (zero when everything received is durable);
	// disconnectedSince is when the stream was lost (zero when streaming).
	// The lag is the age of the older of the two: WAL the server may hold
	// that the repository lacks.
	pendingSince      time.Time
	disconnectedSince time.Time
	connected         bool
	timeline          wal.TimelineID
	received, durable wal.LSN
	serverEnd         wal.LSN
	lastDurableAt     time.Time
}

// NewMetrics makes wal-receive's metrics in a registry of their own, with
// the Go and process collectors (CPU and RSS of the receiver).
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: time.Now}
	m.disconnectedSince = m.now()
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.receivedBytes = counter("walvault_receive_bytes_total", "WAL bytes received from PostgreSQL.")
	m.segments = counter("walvault_receive_segments_stored_total", "Complete segments stored (or found already archived).")
	m.partials = counter("walvault_receive_partials_stored_total", "Partial segment objects uploaded.")
	m.uploadErrors = counter("walvault_receive_upload_errors_total", "Failed uploads of segments or partials (each ends the session; it reconnects).")
	m.reconnects = counter("walvault_receive_reconnects_total", "Replication sessions that ended and were retried.")
	gauge := func(name, help string, value func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return value()
		}))
	}
	gauge("walvault_receive_lag_seconds", "How long the oldest WAL not yet durable in the repository has waited (received but not uploaded, or unknown while disconnected); 0 when all is durable.", func() float64 {
		var oldest time.Time
		for _, t := range []time.Time{m.pendingSince, m.disconnectedSince} {
			if !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
		}
		if oldest.IsZero() {
			return 0
		}
		return m.now().Sub(oldest).Seconds()
	})
	gauge("walvault_receive_lag_bytes", "WAL the server reported beyond what is durable in the repository.", func() float64 {
		if m.serverEnd <= m.durable {
			return 0
		}
		return float64(m.serverEnd - m.durable)
	})
	gauge("walvault_receive_connected", "1 while streaming from PostgreSQL.", func() float64 { return boolFloat(m.connected) })
	gauge("walvault_receive_timeline", "Timeline being streamed.", func() float64 { return float64(m.timeline) })
	gauge("walvault_receive_received_lsn", "End of the WAL received, as a byte position.", func() float64 { return float64(m.received) })
	gauge("walvault_receive_durable_lsn", "End of the WAL durable in the repository (reported to the slot), as a byte position.", func() float64 { return float64(m.durable) })
	gauge("walvault_receive_last_durable_timestamp_seconds", "When WAL last became durable in the repository.", func() float64 {
		if m.lastDurableAt.IsZero() {
			return 0
		}
		return float64(m.lastDurableAt.UnixNano()) / 1e9
	})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler serves the metrics at /metrics.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 4, Timeout: 10 * time.Second}))
	return mux
}

func (m *Metrics) streaming(tli wal.TimelineID, start wal.LSN) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.connected, m.disconnectedSince = true, time.Time{}
	m.timeline, m.received, m.durable = tli, start, start
}

func (m *Metrics) disconnected(retrying bool) {
	if m == nil {
		return
	}
	if retrying {
		m.reconnects.Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.connected || m.disconnectedSince.IsZero() {
		m.disconnectedSince = m.now()
	}
	m.connected = false
}

func (m *Metrics) receivedWAL(n int, end wal.LSN) {
	if m == nil {
		return
	}
	m.receivedBytes.Add(float64(n))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.received = end
	if m.received > m.durable && m.pendingSince.IsZero() {
		m.pendingSince = m.now()
	}
}

// serverAt records the server's WAL end from a message.
func (m *Metrics) serverAt(end wal.LSN) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.serverEnd = max(m.serverEnd, end)
}

// madeDurable records that WAL up to durable is safe in the repository.
func (m *Metrics) madeDurable(durable wal.LSN, segment bool) {
	if m == nil {
		return
	}
	if segment {
		m.segments.Inc()
	} else {
		m.partials.Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.durable, m.lastDurableAt = durable, m.now()
	if m.received <= m.durable {
		m.pendingSince = time.Time{}
	}
}

func (m *Metrics) uploadFailed() {
	if m != nil {
		m.uploadErrors.Inc()
	}
}
