//go:build linux && cgo

package handoff

import (
	"bytes"
	"testing"
)

// TestEarlyMatchesGo holds the constructor's C (early_cgo.go) to the Go
// protocol: the same socket, the same request bytes for the same command
// line and environment, and the same reading of every answer, whole, cut
// short or malformed.
func TestEarlyMatchesGo(t *testing.T) {
	if earlySocketPath() != SocketPath || earlyProtocol() != protocol {
		t.Fatalf("C uses socket %q and protocol %q; Go %q and %q", earlySocketPath(), earlyProtocol(), SocketPath, protocol)
	}
	env := []string{"PATH=/bin", "WALVAULT_REPO=s3://b/p", "AWS_PROFILE=p", "HOME=/h", "HOMEDIR=/x", "SSL_CERT_DIR=/c", "PGDATA=/d", "WALVAULT_X=a=b", "AWS_=", "https_proxy=http://p:3128", "NO_PROXY=.internal", "HTTP_PROXYX=y"}
	for _, args := range [][]string{
		{"walvault", "wal-push", "pg_wal/000000010000000000000003"},
		{"/usr/bin/walvault", "--config", "/etc/walvault.yaml", "wal-fetch", "00000002.history", "pg_wal/RECOVERYHISTORY", ""},
		{"walvault"},
	} {
		for _, e := range [][]string{env, nil} {
			want := Encode(Request{Dir: "/var/lib/postgresql/15/main", Args: args, Env: Environ(e)})
			if got := earlyEncode("/var/lib/postgresql/15/main", args, e); !bytes.Equal(got, want) {
				t.Errorf("args %q env %q:\nC  %q\nGo %q", args, e, got, want)
			}
		}
	}

	answers := [][]byte{
		EncodeAnswer(Answer{Code: 0, Message: "time=... level=INFO msg=archived\n"}, true),
		EncodeAnswer(Answer{Code: 255}, true),
		EncodeAnswer(Answer{Message: "walvault: wal-helper declined (x)\n"}, false),
		EncodeAnswer(Answer{}, false),
		append([]byte(Keepalive+Keepalive), EncodeAnswer(Answer{Code: 1, Message: "m\n"}, true)...),
		append([]byte(Keepalive), EncodeAnswer(Answer{Message: "declined\n"}, false)...),
	}
	if k, silent, secs := earlyKeepalive(); k != Keepalive || silent != silentMessage || secs != SilenceSeconds {
		t.Errorf("C keeps alive with %q, gives up after %ds saying %q; Go %q, %ds, %q", k, secs, silent, Keepalive, SilenceSeconds, silentMessage)
	}
	var cases [][]byte
	for _, a := range answers {
		for i := range len(a) + 1 {
			cases = append(cases, a[:i])
		}
		cases = append(cases, append(a[:len(a):len(a)], 'x'))
	}
	for _, bad := range []string{
		"exit x 0\n", "exit 256 0\n", "exit -1 0\n", "exit +1 0\n", "exit 1 +0\n", "exit  0\n",
		"ok 0\n", "exit 0 5\nabc", "fallback 1234567890\n", "exit 0000000001 0\n", "exit 007 0\n",
		"fallback\n", " 0\n", "fallback 0 \n", "exit 0 0\n\n", "\n",
		"wait\n", "wait\nwai", "wait\nwait\n", "wai\nexit 0 0\n", "exit 0 0\nwait\n",
	} {
		cases = append(cases, []byte(bad))
	}
	for _, c := range cases {
		ga, gran, gcomplete := DecodeAnswer(c)
		ca, cran, ccomplete := earlyDecode(c)
		if ga != ca || gran != cran || gcomplete != ccomplete {
			t.Errorf("%q: C reads %+v ran=%v complete=%v, Go %+v ran=%v complete=%v", c, ca, cran, ccomplete, ga, gran, gcomplete)
		}
	}
}

// TestEarlyLooked: in this test binary (a cgo build, glibc) the
// constructor ran, so the Go init must not ask a second time.
func TestEarlyLooked(t *testing.T) {
	if !earlyLooked() {
		t.Fatal("the constructor did not run in a cgo build on glibc: a wal-push would start the Go runtime before handing off")
	}
}

// TestEarlyForgetSparesAReplacement: TestForgetHelperSparesAReplacement
// for the constructor's wv_forget_helper.
func TestEarlyForgetSparesAReplacement(t *testing.T) { testForgetHelper(t, earlyForget) }
