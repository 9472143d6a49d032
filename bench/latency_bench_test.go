package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walvault/walvault/internal/testenv"
)

// latencyEnv names the environment variable listing the round-trip
// latencies (comma-separated Go durations, e.g. "10ms,40ms") at which the
// S3 benchmarks of a .ready backlog, of recovery, of backup-push and of
// restore run a second time, through a toxiproxy between walvault and the
// gateway, beside the same measure on loopback. Unset or empty: loopback
// only. 0s is a link with no latency: the proxy and its bandwidth cap
// alone, to tell what the simulation costs from what the latency does.
const latencyEnv = "WALVAULT_BENCH_LATENCY"

// linkKBps is the bandwidth cap of the simulated link, in toxiproxy's
// KB/s (1000 bytes): 1 Gbit/s. Toxiproxy caps each direction of each
// connection on its own, so parallel connections share no cap.
const linkKBps = 1_000_000_000 / 8 / 1000

// latencies reads latencyEnv. Each round trip must be a whole even number
// of milliseconds: toxiproxy adds half of it to each direction.
func latencies(tb testing.TB) []time.Duration {
	tb.Helper()
	v := strings.TrimSpace(os.Getenv(latencyEnv))
	if v == "" {
		return nil
	}
	var out []time.Duration
	for _, s := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 || d%(2*time.Millisecond) != 0 {
			tb.Fatalf("%s=%q: want round-trip latencies such as 0s,10ms,40ms (whole, even numbers of milliseconds): %q", latencyEnv, v, s)
		}
		out = append(out, d)
	}
	return out
}

// rttName is a round trip as it appears in benchmark names: "rtt=40ms".
func rttName(rtt time.Duration) string { return "rtt=" + rtt.String() }

// startLink starts a proxy to upstream that delays every byte by rtt/2 in
// each direction (so a request and its answer take rtt more than on
// loopback) and caps each direction of each connection at 1 Gbit/s.
//
// What it does not simulate: the proxy accepts connections on loopback at
// once, so opening a connection costs no round trip (TCP's handshake, and
// TLS's, would cost one or two more per new connection on a real network);
// and there is no TCP window to grow (slow start), no loss, no jitter.
func startLink(tb testing.TB, upstream string, rtt time.Duration) *testenv.FaultProxy {
	tb.Helper()
	p, _ := startLinkWith(tb, upstream, rtt, &http.Client{Timeout: 10 * time.Second})
	return p
}

// startTLSLink is startLink in front of a gateway over HTTPS: the link
// passes TLS through, so its endpoint is https:// too, and the
// gateway's certificate (for 127.0.0.1 and localhost) still matches.
func startTLSLink(tb testing.TB, gw *testenv.S3Server, rtt time.Duration) string {
	tb.Helper()
	_, endpoint := startLinkWith(tb, gw.Endpoint, rtt, gw.HTTPClient(tb, 10*time.Second))
	return endpoint
}

// startLinkWith is startLink checking the link with client; it returns the
// link and its endpoint, of upstream's scheme.
func startLinkWith(tb testing.TB, upstream string, rtt time.Duration, client *http.Client) (*testenv.FaultProxy, string) {
	tb.Helper()
	p := testenv.StartFaultProxy(tb, upstream)
	if rtt > 0 {
		p.Latency(tb, int(rtt/2/time.Millisecond))
	}
	p.Bandwidth(tb, linkKBps)
	endpoint := p.Endpoint()
	if strings.HasPrefix(upstream, "https://") {
		endpoint = "https://" + p.Addr
	}
	direct, err1 := requestTime(client, upstream)
	through, err2 := requestTime(client, endpoint)
	if err := errors.Join(err1, err2); err != nil {
		tb.Fatalf("link %s: %v", rttName(rtt), err)
	}
	if rtt > 0 && through-direct < rtt*9/10 {
		tb.Fatalf("link %s: a request takes %v through it and %v directly: the proxy does not add the round trip", rttName(rtt), through, direct)
	}
	tb.Logf("link %s to %s: a request takes %v through it, %v directly", rttName(rtt), upstream, through.Round(time.Millisecond/10), direct.Round(time.Millisecond/10))
	return p, endpoint
}

// requestTime is the quickest of a few HTTP requests to endpoint on one
// connection (the first, which opens it, left out): the time of a request
// and its answer.
func requestTime(client *http.Client, endpoint string) (time.Duration, error) {
	defer client.CloseIdleConnections()
	best := time.Duration(math.MaxInt64)
	for i := range 4 {
		start := time.Now()
		resp, err := client.Get(endpoint + "/")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if i > 0 {
			best = min(best, time.Since(start))
		}
	}
	return best, nil
}

// latencyRepoName is the key of the repository reached through a link of
// the given round trip in env.repos and backupEnv.repos.
func latencyRepoName(rtt time.Duration) string { return fmt.Sprintf("s3/%s", rttName(rtt)) }

// selfCPU is the CPU time (user and system) this test process has used so
// far: with a link, mostly the proxy's work. Zero where unreadable.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
