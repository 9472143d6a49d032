package handoff

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	r := Request{Dir: "/var/lib/postgresql/15/main", Args: []string{"walvault", "wal-push", "", "pg_wal/000000010000000000000003"}, Env: []string{"WALVAULT_REPO=s3://b/p", "HOME=/var/lib/postgresql"}}
	b := Encode(r)
	got, err := DecodeRequest(b)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, r)
	}
	// Every proper prefix is incomplete, never a request.
	for i := range len(b) {
		if _, err := DecodeRequest(b[:i]); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix of %d bytes: %v, want ErrIncomplete", i, err)
		}
	}
	for _, bad := range [][]byte{
		append(b, 'x'),                      // trailing bytes
		[]byte("walvault-handoff 1\n"),      // another version
		[]byte("GET / HTTP/1.1\r\n"),        // not ours
		[]byte(protocol + "\n/d\x00-1\x00"), // negative count
	} {
		if _, err := DecodeRequest(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("DecodeRequest(%q): %v, want ErrProtocol", bad, err)
		}
	}
}

func TestAnswerRoundTrip(t *testing.T) {
	for _, c := range []struct {
		a   Answer
		ran bool
	}{
		{Answer{Code: 0, Message: "time=... level=INFO msg=archived\n"}, true},
		{Answer{Code: 200, Message: ""}, true},
		{Answer{Message: "walvault: wal-helper declined (x)\n"}, false},
		{Answer{}, false},
	} {
		b := EncodeAnswer(c.a, c.ran)
		a, ran, complete := DecodeAnswer(b)
		if !complete || ran != c.ran || a != c.a {
			t.Errorf("%q decoded as %+v ran=%v complete=%v; want %+v ran=%v", b, a, ran, complete, c.a, c.ran)
		}
		// An answer cut anywhere is no answer: the caller runs the
		// command itself rather than take a partial one.
		for i := range len(b) {
			if _, ran, complete := DecodeAnswer(b[:i]); complete || ran {
				t.Fatalf("%q cut to %d bytes: complete=%v ran=%v, want neither", b, i, complete, ran)
			}
		}
	}
	for _, bad := range []string{"exit x 0\n", "exit 256 0\n", "exit -1 0\n", "ok 0\n", "exit 0 5\nabc"} {
		if _, ran, complete := DecodeAnswer([]byte(bad)); complete || ran {
			t.Errorf("DecodeAnswer(%q): complete=%v ran=%v, want neither", bad, complete, ran)
		}
	}
}

func TestEligibleAndEnviron(t *testing.T) {
	for args, want := range map[string]bool{
		"walvault wal-push p":               true,
		"walvault --config f wal-fetch a b": true,
		"walvault backup-push":              false,
		"wal-push":                          false, // the program's own name is not a command
	} {
		if got := Eligible(strings.Fields(args)); got != want {
			t.Errorf("Eligible(%q) = %v, want %v", args, got, want)
		}
	}
	got := Environ([]string{"WALVAULT_REPO=x", "PATH=/bin", "AWS_PROFILE=p", "HOME=/h", "HOMEDIR=/x", "SSL_CERT_FILE=/c", "PGDATA=/d", "HTTPS_PROXY=http://p:3128", "no_proxy=.internal", "HTTP_PROXYX=y"})
	want := []string{"WALVAULT_REPO=x", "AWS_PROFILE=p", "HOME=/h", "SSL_CERT_FILE=/c", "HTTPS_PROXY=http://p:3128", "no_proxy=.internal"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Environ kept %q, want %q", got, want)
	}
}

func TestAskWithoutHelper(t *testing.T) {
	a, ok := Ask(t.TempDir()+"/none.sock", Request{Dir: "/", Args: []string{"walvault", "wal-push", "p"}})
	if ok || a.Message != "" {
		t.Fatalf("no socket: got %+v ok=%v, want a silent fallback", a, ok)
	}
}

func TestEnvDiffering(t *testing.T) {
	pg := EnvMap([]string{"WALVAULT_REPO=s3://b/p", "AWS_PROFILE=a", "HOME=/h", "WALVAULT_RETAIN=2 FULL", "X=y=z"})
	helper := EnvMap([]string{"WALVAULT_REPO=s3://b/q", "HOME=/h", "AWS_REGION=eu", "X=y=z"})
	if pg["X"] != "y=z" {
		t.Fatalf("EnvMap split %q at the wrong '='", pg["X"])
	}
	reads := func(k string) bool { return k != "WALVAULT_RETAIN" }
	got := EnvDiffering(pg, helper, reads)
	want := []string{"AWS_PROFILE", "AWS_REGION", "WALVAULT_REPO"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("EnvDiffering = %q, want %q (WALVAULT_RETAIN is not read)", got, want)
	}
	if got := EnvDiffering(helper, helper, reads); len(got) != 0 {
		t.Fatalf("an environment against itself: %q", got)
	}
}
