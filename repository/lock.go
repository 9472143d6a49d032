package repository

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/walvault/walvault/storage"
)

// LockPolicy is a repository's Object Lock policy: every object walvault
// writes is locked in Mode until Days days after it was written. The zero
// value is "off". The first push records it in walvault.json (lock_mode,
// lock_days); it never changes afterwards, and every later push must be
// configured with the same policy (Identity.CheckLock).
type LockPolicy struct {
	Mode storage.RetentionMode // "" (off), storage.Governance or storage.Compliance
	Days int                   // at least 1 when Mode is set
}

// Enabled reports whether objects are locked.
func (p LockPolicy) Enabled() bool { return p.Mode != "" }

// Retention is the retention of an object written at now, or nil when the
// policy is off.
func (p LockPolicy) Retention(now time.Time) *storage.Retention {
	if !p.Enabled() {
		return nil
	}
	return &storage.Retention{Mode: p.Mode, Until: now.UTC().Add(time.Duration(p.Days) * 24 * time.Hour)}
}

// Validate checks a policy read from walvault.json or built by cmd.
func (p LockPolicy) Validate() error {
	switch p.Mode {
	case "":
		if p.Days != 0 {
			return fmt.Errorf("lock_days %d without lock_mode", p.Days)
		}
		return nil
	case storage.Governance, storage.Compliance:
		if p.Days < 1 {
			return fmt.Errorf("lock_mode %s needs lock_days of at least 1, not %d", p.Mode, p.Days)
		}
		return nil
	}
	return fmt.Errorf("unknown lock_mode %q: want %s or %s", p.Mode, storage.Governance, storage.Compliance)
}

// String reads "off", "GOVERNANCE for 1 day" or "COMPLIANCE for 30 days".
func (p LockPolicy) String() string {
	if !p.Enabled() {
		return "off"
	}
	unit := "days"
	if p.Days == 1 {
		unit = "day"
	}
	return fmt.Sprintf("%s for %d %s", p.Mode, p.Days, unit)
}

// settings says how to configure p, in the settings' own words.
func (p LockPolicy) settings() string {
	if !p.Enabled() {
		return "lock-mode off (and no lock-days)"
	}
	return fmt.Sprintf("lock-mode %s and lock-days %d", strings.ToLower(string(p.Mode)), p.Days)
}

// ErrLockPolicy: a push is configured with another Object Lock policy than
// the repository records. Nothing was written.
var ErrLockPolicy = errors.New("the Object Lock settings differ from the repository's policy")

// Lock is the Object Lock policy the identity records.
func (id Identity) Lock() LockPolicy { return LockPolicy{Mode: id.LockMode, Days: id.LockDays} }

// WithLock returns id recording policy p.
func (id Identity) WithLock(p LockPolicy) Identity {
	id.LockMode, id.LockDays = p.Mode, p.Days
	return id
}

// CheckLock refuses a push configured with policy configured into a
// repository that records another: a repository is immutable as a whole
// or not at all, and a silently unlocked (or differently locked) object in
// a locked repository would be the one an attacker deletes. location names
// the repository in the message.
func (id Identity) CheckLock(configured LockPolicy, location string) error {
	recorded := id.Lock()
	if recorded == configured {
		return nil
	}
	return fmt.Errorf("%w: repository %s records Object Lock %s in %s, but this walvault is configured with %s; nothing was written. "+
		"Set %s (settings lock-mode and lock-days, or WALVAULT_LOCK_MODE and WALVAULT_LOCK_DAYS) to match the repository; "+
		"the policy is fixed when a repository is created, so a different policy needs a new repository (another bucket or prefix)",
		ErrLockPolicy, location, recorded, IdentityKey, configured, recorded.settings())
}
