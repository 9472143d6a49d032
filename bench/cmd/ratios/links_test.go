package main

import (
	"bytes"
	"strings"
	"testing"
)

// A run over links is printed beside its loopback twin and its 0s control,
// and the 40 ms targets are judged from the medians.
func TestReportLinks(t *testing.T) {
	in := `
BenchmarkWALPushBacklog/walvault=s3/upload-concurrency=0-2   64  100000000 ns/op  167.77 MB/s
BenchmarkWALPushBacklog/walvault=s3/rtt=40ms/upload-concurrency=0-2   64  200000000 ns/op  83.89 MB/s  16.0 link-cpu-ms
BenchmarkWALPushBacklog/walvault=s3/rtt=40ms/upload-concurrency=8-2   64  40000000 ns/op  419.43 MB/s  12.0 link-cpu-ms
BenchmarkWALFetchRecovery/walvault=s3/rtt=40ms/prefetch=8-2   64  100000000 ns/op  167.77 MB/s
BenchmarkRestore/walvault=s3-2   1  1000000000 ns/op  200.00 MB/s
BenchmarkRestore/walvault=s3/rtt=0s-2   1  1100000000 ns/op  180.00 MB/s  0.50 link-cpu-s
BenchmarkRestore/walvault=s3/rtt=40ms-2   1  1300000000 ns/op  150.00 MB/s  0.60 link-cpu-s
`
	var order []string
	byName := map[string]*result{}
	if err := parse(strings.NewReader(in), &order, byName); err != nil {
		t.Fatal(err)
	}
	order, byName = stripProcs(order, byName)
	var out bytes.Buffer
	missed := reportLinks(&out, order, byName)
	got := out.String()
	for _, want := range []string{
		"Restore/walvault=s3/rtt=40ms", "0.75x", "0.83x", "0.60 s", "16.0 ms/seg",
		"upload-concurrency 8 ÷ 0 = 5.00x: target ≥ 4x met",
		"prefetch 8 = 160 MiB/s: target ≥ 150 MiB/s met",
		"throughput 0.75x loopback's: target ≥ 0.8x MISSED",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if missed != 1 {
		t.Errorf("missed = %d, want 1 (the restore):\n%s", missed, got)
	}
}
