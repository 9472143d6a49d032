package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/walvault/walvault/archiveproof"
	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/internal/redact"
	"github.com/walvault/walvault/storage"
)

// Check names: stable, part of the --json output.
const (
	NameRepository   = "repository"
	NameIdentity     = "repository identity"
	NamePostgreSQL   = "PostgreSQL"
	NameWALLevel     = "wal_level"
	NameArchiveMode  = "archive_mode"
	NameArchiveCmd   = "archive_command"
	NameArchiver     = "archiver"
	NameArchiveLag   = "archive lag"
	NameBackupAge    = "backup age"
	NameBackupCount  = "backup count"
	NameContinuity   = "WAL continuity"
	NameObjectLock   = "Object Lock"
	NameWALFreeSpace = "pg_wal free space"
	// NameReceiveSlot is one line per slot wal-receive streams from (and
	// for the slot Options.Slot names); none when wal-receive is not in
	// use.
	NameReceiveSlot = "wal-receive slot"
)

// Thresholds of the archive lag and free space checks.
const (
	// MaxReadyBytes is how much WAL may wait for archiving (.ready
	// files, or a wal-receive slot's retained WAL) before archiving counts
	// as falling behind: MaxReady segments of the default 16 MiB.
	MaxReadyBytes = 1 << 30
	// MaxReady is MaxReadyBytes in default (16 MiB) segments.
	MaxReady = MaxReadyBytes / (16 << 20)
	// MaxReadyAge is how long the oldest .ready file may wait.
	MaxReadyAge = 15 * time.Minute
	// MinFreeBytes and MinFreeFraction: pg_wal's filesystem fails the
	// check below either.
	MinFreeBytes    = 1 << 30
	MinFreeFraction = 0.05
)

// Options is what check needs, resolved by cmd.
type Options struct {
	// ConnString reaches the PostgreSQL server whose archiving is checked
	// (libpq conninfo or URL; PG* environment variables and ~/.pgpass
	// apply through pgx).
	ConnString string
	// Repo is the repository URL as configured, compared with the one
	// archive_command uses.
	Repo         string
	MaxBackupAge time.Duration
	MinBackups   int
	// Slot names the replication slot wal-receive streams from: it is
	// reported even when inactive or missing. Slots a wal-receive streams
	// from now are reported without it.
	Slot string
	// LockMode and LockDays are the configured Object Lock policy.
	LockMode storage.RetentionMode
	LockDays int
	// WindowDays is the recovery window the retention keeps (retain
	// "RECOVERY WINDOW OF n DAYS"); 0 when none was given.
	WindowDays int
	// Redundancy is the number of backups the retention keeps (retain
	// "REDUNDANCY n"); 0 when none was given.
	Redundancy int
	// Identities, when set, are checked to decrypt the newest backup and
	// the WAL since (NameDecryption).
	Identities *crypt.Identities
	// Timeout bounds each check (default 30s).
	Timeout time.Duration
	// Host names the probe object.
	Host string
	// Secrets are values that must never appear in the output (credentials
	// from the environment, the connection's password): any that does is
	// replaced with [REDACTED].
	Secrets []string
	// HelperReads says which environment variables PostgreSQL's wal-push
	// and wal-fetch calls read, which a wal-helper must see set as
	// PostgreSQL does to run them (nil: not compared).
	HelperReads func(name string) bool
	// UnknownEnvVars picks, out of names (NAME= each, no value), the
	// WALVAULT_* variables walvault reads none of: set in the server's
	// environment or in front of archive_command, a misspelled one is
	// silently ignored by wal-push (nil: not looked for).
	UnknownEnvVars func(names []string) []string
	Now            func() time.Time
	Log            *slog.Logger
}

// Result is one check's verdict; the --json output is a list of them.
type Result struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Run performs every check and returns one Result each, in a fixed order.
// It never fails as a whole: what cannot be checked is a FAILED line that
// says why.
func Run(ctx context.Context, b storage.Backend, opts Options) []Result {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &checker{b: b, opts: opts}
	c.timed(ctx, func(ctx context.Context) []Result {
		c.srv = gather(ctx, opts.ConnString, opts.Slot)
		return nil
	})
	c.timed(ctx, c.checkRepository)
	c.proveArchiving(ctx)
	c.timed(ctx, c.checkIdentity)
	c.add(c.checkPostgreSQL())
	c.add(c.checkWALLevel())
	c.add(c.checkArchiveMode())
	c.add(c.checkArchiveCommand())
	c.add(c.checkArchiver())
	c.add(c.checkArchiveLag())
	c.add(c.checkWALHelper()...)
	c.add(c.checkPushAhead()...)
	c.timed(ctx, c.checkReceiveSlots)
	c.timed(ctx, c.checkBackups)
	c.timed(ctx, c.checkContinuity)
	c.timed(ctx, c.checkDecryption)
	c.timed(ctx, c.checkObjectLock)
	c.add(c.checkFreeSpace())
	return c.results
}

// timed runs one check under its own deadline.
func (c *checker) timed(parent context.Context, fn func(context.Context) []Result) {
	ctx, cancel := context.WithTimeout(parent, c.opts.Timeout)
	defer cancel()
	c.add(fn(ctx)...)
}

type checker struct {
	b       storage.Backend
	opts    Options
	srv     *server
	results []Result
	// Learnt on the way, for later checks.
	identityLoaded bool
	identity       identityFacts
	backups        *backupFacts
	loc            *local
	// repoDown says why later checks do not ask the repository ("": they
	// do): it did not answer checkRepository's first request ("is not
	// reachable"), each asking again would cost another --timeout; or it
	// is gone from its location.
	repoDown string

	// Whether the credentials could shorten a GOVERNANCE lock
	// (tryLiftGovernance); nil when not tried.
	governance *governanceTry

	// The proof that archiving reaches the repository (proveArchiving),
	// and the file the archiver failed on last after it, when that came
	// after its last success.
	proofRan          bool
	proof             archiveproof.Proof
	proofErr          error
	failingAfterProof string
	// archiverReadAfterProof: pg_stat_archiver was read after the proof
	// (failingAfterProof is known).
	archiverReadAfterProof bool
	// windowBasisOwn: see windowBasis.
	windowBasisOwn string
}

func (c *checker) add(rs ...Result) {
	for _, r := range rs {
		r.Detail = oneLine(scrub(r.Detail, c.opts.Secrets))
		c.results = append(c.results, r)
	}
}

func ok(name, format string, args ...any) Result {
	return Result{Name: name, OK: true, Detail: fmt.Sprintf(format, args...)}
}

func failed(name, format string, args ...any) Result {
	return Result{Name: name, OK: false, Detail: fmt.Sprintf(format, args...)}
}

// Failed counts the FAILED results.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if !r.OK {
			n++
		}
	}
	return n
}

// WriteText prints one line per check: "name: OK", "name: OK (detail)" or
// "name: FAILED (what, and what to do)".
func WriteText(w io.Writer, rs []Result) error {
	var b strings.Builder
	for _, r := range rs {
		verdict := "OK"
		if !r.OK {
			verdict = "FAILED"
		}
		if r.Detail != "" {
			fmt.Fprintf(&b, "%s: %s (%s)\n", r.Name, verdict, r.Detail)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", r.Name, verdict)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the results as a JSON array of {name, ok, detail}.
func WriteJSON(w io.Writer, rs []Result) error {
	if rs == nil {
		rs = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}

// oneLine folds a multi-line detail (pgx lists every address it tried on
// a line of its own) into one line.
func oneLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "; ")
}

// scrub removes secrets from a line of output: every value in secrets,
// secret-looking assignments and URL passwords.
func scrub(s string, secrets []string) string {
	for _, v := range secrets {
		if len(v) >= 3 {
			s = strings.ReplaceAll(s, v, redact.Placeholder)
		}
	}
	return redact.String(s)
}
