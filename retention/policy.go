package retention

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a retention policy.
type Kind int

const (
	// Redundancy keeps the n newest DONE backups.
	Redundancy Kind = iota + 1
	// RecoveryWindow keeps what a restore to any point of the last n days
	// needs.
	RecoveryWindow
)

// Policy is a parsed retention policy.
type Policy struct {
	Kind Kind
	N    int // backups (Redundancy) or days (RecoveryWindow), at least 1
}

// Limits on n, far beyond any real use, so a typo cannot overflow a
// duration or mean "forever" by accident.
const (
	maxRedundancy = 100000
	maxWindowDays = 36500
)

// acceptedForms is the part of every ParsePolicy error that says what works.
const acceptedForms = `want "REDUNDANCY n" (keep the n newest DONE backups, n >= 1) or "RECOVERY WINDOW OF n DAYS" (keep what a restore to any point of the last n days needs, n >= 1)`

// ParsePolicy reads "REDUNDANCY n" or "RECOVERY WINDOW OF n DAYS" (or
// "DAY"), in any case and with any spacing.
func ParsePolicy(s string) (Policy, error) {
	f := strings.Fields(strings.ToUpper(s))
	bad := func(why string) (Policy, error) {
		if why != "" {
			why += ": "
		}
		return Policy{}, fmt.Errorf("invalid retention policy %q: %s%s", s, why, acceptedForms)
	}
	switch {
	case len(f) == 0:
		return bad("empty")
	case len(f) == 2 && f[0] == "REDUNDANCY":
		n, err := parseCount(f[1], maxRedundancy)
		if err != nil {
			return bad("REDUNDANCY " + err.Error())
		}
		return Policy{Kind: Redundancy, N: n}, nil
	case len(f) == 5 && f[0] == "RECOVERY" && f[1] == "WINDOW" && f[2] == "OF" && (f[4] == "DAYS" || f[4] == "DAY"):
		n, err := parseCount(f[3], maxWindowDays)
		if err != nil {
			return bad("the window " + err.Error())
		}
		return Policy{Kind: RecoveryWindow, N: n}, nil
	}
	return bad("")
}

// parseCount reads a whole number from 1 to max.
func parseCount(s string, max int) (int, error) {
	n, err := strconv.Atoi(s)
	switch {
	case err != nil && strings.Trim(s, "+-0123456789") == "" && len(s) > 9:
		return 0, fmt.Errorf("%s is too large (at most %d)", s, max)
	case err != nil:
		return 0, fmt.Errorf("needs a whole number, not %q", s)
	case n < 1:
		return 0, fmt.Errorf("must be at least 1, not %d", n)
	case n > max:
		return 0, fmt.Errorf("%d is too large (at most %d)", n, max)
	}
	return n, nil
}

// String is the canonical form, which ParsePolicy reads back.
func (p Policy) String() string {
	switch p.Kind {
	case Redundancy:
		return fmt.Sprintf("REDUNDANCY %d", p.N)
	case RecoveryWindow:
		return fmt.Sprintf("RECOVERY WINDOW OF %d DAYS", p.N)
	}
	return "no policy"
}

// Window is how far back a RecoveryWindow policy reaches.
func (p Policy) Window() time.Duration {
	return time.Duration(p.N) * 24 * time.Hour
}
