package handoff

import (
	"errors"
	"strconv"
)

// A request is the protocol line, then NUL-terminated fields: the working
// directory, the number of arguments and each argument, the number of
// environment entries and each entry. An answer is one line, "exit CODE
// LEN" or "fallback LEN", then LEN bytes of message, after any number of
// keepalives; the helper closes the connection after it, and an answer
// cut short is no answer.

// Encode writes r in the protocol.
func Encode(r Request) []byte {
	b := append([]byte(protocol), '\n')
	field := func(s string) { b = append(append(b, s...), 0) }
	field(r.Dir)
	field(strconv.Itoa(len(r.Args)))
	for _, a := range r.Args {
		field(a)
	}
	field(strconv.Itoa(len(r.Env)))
	for _, e := range r.Env {
		field(e)
	}
	return b
}

// ErrIncomplete is what DecodeRequest returns for a request not yet whole.
var ErrIncomplete = errors.New("incomplete request")

// ErrProtocol is a request that is not in this protocol (another version,
// or not walvault's).
var ErrProtocol = errors.New("not a walvault hand-off request of this version")

// DecodeRequest reads a request from the start of b: ErrIncomplete while
// b holds less than a whole one.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	head := []byte(protocol + "\n")
	if len(b) < len(head) {
		if string(b) != string(head[:len(b)]) {
			return r, ErrProtocol
		}
		return r, ErrIncomplete
	}
	if string(b[:len(head)]) != string(head) {
		return r, ErrProtocol
	}
	b = b[len(head):]
	next := func() (string, error) {
		for i, c := range b {
			if c == 0 {
				s := string(b[:i])
				b = b[i+1:]
				return s, nil
			}
		}
		return "", ErrIncomplete
	}
	list := func() ([]string, error) {
		n, err := next()
		if err != nil {
			return nil, err
		}
		count, err := strconv.Atoi(n)
		if err != nil || count < 0 || count > 1<<16 {
			return nil, ErrProtocol
		}
		out := make([]string, 0, min(count, 64))
		for range count {
			s, err := next()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	var err error
	if r.Dir, err = next(); err != nil {
		return r, err
	}
	if r.Args, err = list(); err != nil {
		return r, err
	}
	if r.Env, err = list(); err != nil {
		return r, err
	}
	if len(b) != 0 {
		return r, ErrProtocol
	}
	return r, nil
}

// Keepalive is what a helper sends every KeepaliveSeconds while a call is
// queued or runs, before its answer: a caller that hears nothing for
// SilenceSeconds stops waiting (the helper is stopped or stuck) and runs
// the command itself, so a helper never holds archive_command up for
// good. (Seconds, not time.Duration: this package imports only the
// lowest packages.)
const (
	Keepalive        = "wait\n"
	KeepaliveSeconds = 10
	SilenceSeconds   = 30
)

// EncodeAnswer writes the answer to a command the helper ran (ran) or
// declined.
func EncodeAnswer(a Answer, ran bool) []byte {
	var b []byte
	if ran {
		b = append(b, "exit "...)
		b = strconv.AppendInt(b, int64(a.Code), 10)
	} else {
		b = append(b, "fallback"...)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(a.Message)), 10)
	b = append(b, '\n')
	return append(b, a.Message...)
}

// DecodeAnswer parses a whole answer, after any keepalives; complete is
// false when b is not one (cut short, or not an answer at all).
func DecodeAnswer(b []byte) (a Answer, ran, complete bool) {
	for hasPrefix(string(b[:min(len(b), len(Keepalive))]), Keepalive) {
		b = b[len(Keepalive):]
	}
	nl := -1
	for i, c := range b {
		if c == '\n' {
			nl = i
			break
		}
	}
	if nl < 0 {
		return a, false, false
	}
	line, msg := string(b[:nl]), b[nl+1:]
	sp := len(line) - 1
	for sp >= 0 && line[sp] != ' ' {
		sp--
	}
	if sp < 0 {
		return a, false, false
	}
	size, ok := parseDigits(line[sp+1:])
	if !ok || size != len(msg) {
		return a, false, false
	}
	a.Message = string(msg)
	switch kind := line[:sp]; {
	case kind == "fallback":
		return a, false, true
	case hasPrefix(kind, "exit "):
		code, ok := parseDigits(kind[len("exit "):])
		if !ok || code > 255 {
			return Answer{}, false, false
		}
		a.Code = code
		return a, true, true
	}
	return Answer{}, false, false
}

// parseDigits reads a count or an exit code of an answer: decimal digits
// only, at most nine of them (no sign, no overflow to think of).
func parseDigits(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
