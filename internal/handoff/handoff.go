// Package handoff lets a wal-push or wal-fetch that PostgreSQL starts hand
// its command line to a running `walvault wal-helper` before the rest of
// walvault initialises.
//
// Every package linked into walvault is initialised in every process
// (the AWS SDK's endpoint tables, the Prometheus client, the CLI's help
// renderer: most of a per-segment command's start). Go initialises
// packages in the order of their import paths, each once its imports are
// done, so this package, which imports only os and syscall, runs its init
// before any of those. When the data directory (archive_command's and
// restore_command's working directory) holds the helper's socket, the
// init sends the command line there, waits for the helper to run it, and
// exits with the helper's exit code, printing what the helper's run
// printed. Anything short of the helper's full answer (no socket, a dead
// helper, a helper that declines, a connection cut before the answer)
// leaves the process to run the command itself, as without a helper (why,
// if it says, is TakeNote's, for the command's log): the
// commands are idempotent, so a command run twice is still right, and a
// success is never reported without the helper saying so.
//
// In a cgo build on glibc the same request is made earlier still, by an
// ELF constructor before the Go runtime starts (early_cgo.go); the init
// then only runs where that constructor does not.
//
// This package must keep its imports to the standard library's lowest
// packages (os, syscall, strconv, strings, errors, slices; and C in a cgo
// build):
// anything heavier would be initialised before the hand-off.
package handoff

import (
	"os"
	"slices"
	"strings"
)

// SocketPath is the helper's socket, relative to the data directory.
const SocketPath = "pg_wal/walvault/helper.sock"

// protocol opens every request; a helper of another version closes the
// connection unanswered, and the caller runs the command itself.
const protocol = "walvault-handoff 2"

// commands are the command words a helper may run.
var commands = [...]string{"wal-push", "wal-fetch"}

func init() {
	if earlyLooked() || !Eligible(os.Args) {
		return
	}
	cwd, err := os.Getwd()
	if err != nil {
		return
	}
	a, ok := Ask(SocketPath, Request{Dir: cwd, Args: os.Args, Env: Environ(os.Environ())})
	if ok {
		os.Stderr.WriteString(a.Message)
		os.Exit(a.Code)
	}
	note = a.Message
}

// note is why the command was left to this process (the helper declined,
// stopped or fell silent), kept for the command's logger: printed here,
// before the settings are read, it would ignore --log-format.
var note string

// TakeNote returns, once, why a helper left the command to this process,
// without the "walvault: " prefix and the newline ("": it did not, or
// there is no helper).
func TakeNote() string {
	n := note
	if n == "" {
		n = takeEarlyNote()
	} else {
		note = ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(n, "walvault: "), "\n")
}

// Eligible says whether a command line names a command a helper may run.
// The helper decides; this only spares other commands the socket.
func Eligible(args []string) bool {
	for _, a := range args[min(1, len(args)):] {
		if Handles(a) {
			return true
		}
	}
	return false
}

// Handles says whether a helper runs the command of that name.
func Handles(command string) bool {
	for _, c := range commands {
		if command == c {
			return true
		}
	}
	return false
}

// Environ keeps the variables that change what a command does: walvault's
// own settings, the AWS SDK's (credentials, region, endpoints, profile),
// HOME (~/.aws), the TLS trust store and the HTTP proxy. A helper runs a command only when
// the caller's agree with its own on those the command reads.
func Environ(env []string) []string {
	var kept []string
	for _, kv := range env {
		if hasPrefix(kv, "WALVAULT_") || hasPrefix(kv, "AWS_") || hasPrefix(kv, "HOME=") ||
			hasPrefix(kv, "SSL_CERT_FILE=") || hasPrefix(kv, "SSL_CERT_DIR=") || isProxy(kv) {
			kept = append(kept, kv)
		}
	}
	return kept
}

// isProxy says whether kv sets a proxy variable, which Go's HTTP client
// (so the S3 client's) reads in either case.
func isProxy(kv string) bool {
	for _, p := range [...]string{"HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY=", "http_proxy=", "https_proxy=", "no_proxy="} {
		if hasPrefix(kv, p) {
			return true
		}
	}
	return false
}

// EnvMap is an environment list as a map.
func EnvMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		for i := range len(kv) {
			if kv[i] == '=' {
				m[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	return m
}

// EnvDiffering names, sorted, the variables reads selects that two
// environments set differently (or only one sets), never their values.
func EnvDiffering(a, b map[string]string, reads func(string) bool) []string {
	var names []string
	for k, v := range a {
		if w, ok := b[k]; reads(k) && (!ok || w != v) {
			names = append(names, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; reads(k) && !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// Request is what a caller hands to the helper: its working directory,
// its whole command line (os.Args) and its environment (Environ).
type Request struct {
	Dir  string
	Args []string
	Env  []string
}

// Answer is the helper's reply: Code and Message (what the command wrote
// to stderr) when it ran the command, or only Message (why, possibly
// empty) when the caller must run the command itself.
type Answer struct {
	Code    int
	Message string
}
