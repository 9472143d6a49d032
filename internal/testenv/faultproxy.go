package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// FaultProxy is a TCP proxy (Shopify's toxiproxy, run in the test process)
// between walvault and an upstream server, through which a test stalls,
// resets, cuts, slows or refuses connections. Faults apply to connections
// made after they are set and to those already open. It is stopped in
// t.Cleanup.
type FaultProxy struct {
	// Addr is the proxy's loopback address (127.0.0.1:PORT); it stays the
	// same across Refuse and Heal.
	Addr string

	proxy *toxiproxy.Proxy
}

// StartFaultProxy starts a proxy to upstream (host:port, or a URL whose
// host:port is taken) on a free loopback port.
func StartFaultProxy(t testing.TB, upstream string) *FaultProxy {
	t.Helper()
	upstream = strings.TrimPrefix(strings.TrimPrefix(upstream, "http://"), "https://")
	upstream = strings.TrimSuffix(upstream, "/")
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(server, "s3", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("fault proxy to %s: %v", upstream, err)
	}
	t.Cleanup(p.Stop)
	return &FaultProxy{Addr: p.Listen, proxy: p}
}

// Endpoint is the proxy as an http:// URL, for WALVAULT_S3_ENDPOINT.
func (p *FaultProxy) Endpoint() string { return "http://" + p.Addr }

// addToxic adds one toxic (a toxiproxy fault) by its JSON description.
func (p *FaultProxy) addToxic(t testing.TB, name, kind, stream string, attributes string) {
	t.Helper()
	spec := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, kind, stream, attributes)
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		t.Fatalf("fault proxy: add %s: %v", name, err)
	}
}

// Stall lets connections open but passes no byte in either direction and
// never closes them: a hung server or load balancer.
func (p *FaultProxy) Stall(t testing.TB) {
	t.Helper()
	p.addToxic(t, "stall-up", "timeout", "upstream", `{"timeout":0}`)
	p.addToxic(t, "stall-down", "timeout", "downstream", `{"timeout":0}`)
}

// CutAfter closes each connection once the server has sent n bytes on it:
// a response cut mid-body.
func (p *FaultProxy) CutAfter(t testing.TB, n int64) {
	t.Helper()
	p.addToxic(t, "cut", "limit_data", "downstream", fmt.Sprintf(`{"bytes":%d}`, n))
}

// Reset answers the first bytes of each connection with a TCP reset.
func (p *FaultProxy) Reset(t testing.TB) {
	t.Helper()
	p.addToxic(t, "reset", "reset_peer", "upstream", `{"timeout":0}`)
}

// Latency adds d milliseconds each way (so 2*ms to a round trip).
func (p *FaultProxy) Latency(t testing.TB, ms int) {
	t.Helper()
	p.addToxic(t, "latency-up", "latency", "upstream", fmt.Sprintf(`{"latency":%d}`, ms))
	p.addToxic(t, "latency-down", "latency", "downstream", fmt.Sprintf(`{"latency":%d}`, ms))
}

// Bandwidth caps each direction of each connection at kbps KB (1000
// bytes) per second: toxiproxy's unit.
func (p *FaultProxy) Bandwidth(t testing.TB, kbps int) {
	t.Helper()
	p.addToxic(t, "bandwidth-up", "bandwidth", "upstream", fmt.Sprintf(`{"rate":%d}`, kbps))
	p.addToxic(t, "bandwidth-down", "bandwidth", "downstream", fmt.Sprintf(`{"rate":%d}`, kbps))
}

// Refuse closes the listener and every open connection: new connections
// are refused until Heal.
func (p *FaultProxy) Refuse(t testing.TB) {
	t.Helper()
	p.proxy.Stop()
}

// Heal removes every fault and accepts connections again on the same
// address.
func (p *FaultProxy) Heal(t testing.TB) {
	t.Helper()
	p.proxy.Toxics.ResetToxics(context.Background())
	if p.proxy.Enabled {
		return
	}
	p.proxy.Listen = p.Addr
	if err := p.proxy.Start(); err != nil {
		t.Fatalf("fault proxy: listen again on %s: %v", p.Addr, err)
	}
}
