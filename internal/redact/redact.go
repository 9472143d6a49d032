// Package redact removes secrets from text walvault prints: NAME=value
// pairs whose name says the value is a secret (AWS_SECRET_ACCESS_KEY=...,
// PGPASSWORD=..., password = ... in a conninfo, which libpq allows with
// spaces) and the passwords of URLs (postgres://user:secret@host). Every
// log record and the final error line go through it, so an error that
// quotes what it could not parse (pgx quotes a conninfo, backup-push an
// archive_command) does not carry a secret into the server log or a
// cron mail.
package redact

import (
	"regexp"
	"strings"
	"sync"
)

// Placeholder replaces what was removed.
const Placeholder = "[REDACTED]"

// The patterns are compiled on first use: package initialisation runs in
// every walvault process, and most print nothing that needs them.
var (
	assignment = sync.OnceValue(func() *regexp.Regexp {
		// The value: quoted ('...', "...", or \"...\" as %q prints
		// it), else up to the next space.
		return regexp.MustCompile(`(?i)\b([A-Z0-9_]*(?:SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL)[A-Z0-9_]*)(\s*=\s*)('[^']*'|\\"(?:[^"\\]|\\[^"])*\\"|"[^"]*"|\S+)`)
	})
	// Greedy to the last '@' before the host: a password may hold one.
	userinfo = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(://[^/\s:@]*:)[^\s/]*@`) })
)

// String is s without secret-looking assignments and URL passwords.
func String(s string) string {
	// Neither pattern can match without these: the common line (a
	// segment name, a key, a duration) skips the regular expressions.
	if !strings.ContainsAny(s, "=@") {
		return s
	}
	s = assignment().ReplaceAllString(s, "${1}${2}"+Placeholder)
	return userinfo().ReplaceAllString(s, "${1}"+Placeholder+"@")
}
