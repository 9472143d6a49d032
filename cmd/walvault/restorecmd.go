package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// restoreConfigFile is written into the restored data directory for
// restore_command: repository settings only, never credentials.
const restoreConfigFile = "walvault-restore.yaml"

// restoreOptions are the settings and flags of restore.
type restoreOptions struct {
	restoreConfig
	targetOptions
	PGData            string
	Backup            string
	TablespaceMapping cli.StringSlice
	Owner             string
	PGBin             string
	Verify            string
	ArchiveMode       string
	AcceptGap         bool
	maxRate
	// From precheck:
	recoveryTarget restore.Target
	verify         restore.VerifyMode
	mapping        map[string]string
	dataDir        string // PGData made absolute
	exe            string
}

// --archive-mode values.
const (
	archivePreserve = "preserve"
	archiveOff      = "off"
)

// restoreConfig is what restore and drill resolve: the repository, and
// what they pass on to restore_command in walvault-restore.yaml besides
// it (fetchSettings, whose bind is theirs).
type restoreConfig struct {
	Config
	fetchSettings
}

type fetchSettings struct {
	decryptSettings
	Compression repository.Setting
	Timeout     time.Duration
}

func (f *fetchSettings) bind(b *binder) {
	bindCompression(b, &f.Compression)
	f.decryptSettings.bind(b)
	bindFetchTimeout(b, &f.Timeout, "deadline of each wal-fetch recovery runs (written into walvault-restore.yaml for restore_command)")
}

func restoreCommand() *cli.Command {
	var opts restoreOptions
	return &cli.Command{
		Name:  "restore",
		Usage: "restore a base backup into an empty directory and set up recovery to a target",
		Description: `Downloads a base backup, verifying every part's sha256, extracts it into
--pgdata (which must be absent or empty: walvault never writes into a live or
non-empty data directory), checks the result against PostgreSQL's
backup_manifest, and writes recovery.signal plus, in postgresql.auto.conf:

   restore_command = 'GOTRACEBACK=crash /path/to/walvault wal-fetch --config DIR/walvault-restore.yaml --tablespace-guard %f %p'

and the recovery target. walvault-restore.yaml carries the repository
settings, never credentials: the server's environment or the AWS chain must
provide those, as for archive_command.

In a versioned (Object Lock) bucket, an object someone deleted without a
version id is only hidden behind a delete marker: restore and wal-fetch read
its newest version and log a warning naming it; run walvault repair to make
the repository whole again.

Without --backup, the newest DONE backup that ends before the target is used
(PostgreSQL cannot stop before the end of the backup it starts from). With no
target, recovery replays all archived WAL (latest); restore first proves it
can: a segment missing on the way while later WAL is archived (a gap) would
make PostgreSQL stop there and open without the rest, so restore refuses,
naming the segment, unless --accept-gap. With a time, xid or name target it
only warns: PostgreSQL itself fails if the target lies past the gap.

An incremental backup (PostgreSQL 17+) restores with its chain: the full
backup, then each incremental applied in order, combined as pg_combinebackup
would, every part of the chain proven present before anything is written.

Files are extracted into a hidden staging directory inside --pgdata and moved
into place only once every part they come from matched its sha256, so a
damaged backup never leaves an unverified file in the target. --verify says
how the files are checked against backup_manifest: stream (the default)
checks each file's size and manifest checksum on the bytes as they are
written, and that no listed file is missing or extra, with no second read;
pg_verifybackup reads every restored file again with pg_verifybackup -n (from
--pg-bin; walvault's own reading check when none usable is installed); both
does both.

Then start the server (pg_ctl -D DIR start). PostgreSQL replays WAL up to the
target and, with --target-action promote, opens read-write; if the target is
not reached it stops with "recovery ended before configured recovery target
was reached" instead of opening at the wrong point.

Examples:
   walvault restore --pgdata /var/lib/postgresql/15/restored --target-time '2026-11-25 10:30:00+00' --target-action promote
   walvault restore --pgdata /srv/pg --backup 20261125T103000Z --target-immediate`,
		Flags: settingFlags(&opts, append(opts.targetOptions.flags("at the target: pause (PostgreSQL's default), promote or shutdown"),
			&cli.StringFlag{Name: "pgdata", Usage: "directory to restore into, absent or empty (required)", Destination: &opts.PGData},
			backupRefFlag(&opts.Backup),
			&cli.StringSliceFlag{Name: "tablespace-mapping", Usage: "OLD=NEW: restore the tablespace at OLD into NEW (repeatable)", Destination: &opts.TablespaceMapping},
			&cli.StringFlag{Name: "owner", Usage: "OS user to own the restored files when run as root (default: postgres)", Destination: &opts.Owner},
			&cli.StringFlag{Name: "verify", Value: string(restore.VerifyStream), Usage: "how restored files are checked against backup_manifest: stream (as they are written), pg_verifybackup (read again after extraction) or both", Destination: &opts.Verify},
			&cli.StringFlag{Name: "pg-bin", Usage: "directory with pg_verifybackup, for --verify pg_verifybackup or both (default: /usr/lib/postgresql/<major>/bin, /usr/pgsql-<major>/bin, then PATH)", Destination: &opts.PGBin},
			&cli.BoolFlag{Name: "accept-gap", Usage: "with no target, restore although recovery would stop at a missing segment before the archive's end: the WAL archived after it is not replayed", Destination: &opts.AcceptGap},
			&cli.StringFlag{Name: "archive-mode", Value: archivePreserve, Usage: "archiving of the restored server: preserve (the backup's archive_mode and archive_command: once promoted it archives its new timeline where they say, typically this repository: what a replacement for a lost primary wants) or off (archive_mode = off in postgresql.auto.conf: for a copy that must never write into the repository)", Destination: &opts.ArchiveMode},
		)...),
		Action: repoAction(&opts, restoreAction),
	}
}

func (o *restoreOptions) bind(b *binder) {
	o.fetchSettings.bind(b)
	o.maxRate.bind(b, "limit on the bytes a second restore downloads, all parts together, such as 50MiB; unset: no limit")
}

func (o *restoreOptions) precheck(c *cli.Context) error {
	if err := noArgs(c, "restore takes no arguments (use --pgdata DIR)"); err != nil {
		return err
	}
	if o.PGData == "" {
		return usagef("restore needs --pgdata DIR, the directory to restore into (absent or empty)")
	}
	var err error
	if o.recoveryTarget, err = o.target(c); err != nil {
		return usageError{err}
	}
	if o.mapping, err = tablespaceMapping(o.TablespaceMapping.Value()); err != nil {
		return usageError{err}
	}
	if o.verify, err = restore.ParseVerifyMode(o.Verify); err != nil {
		return usagef("--verify: %v", err)
	}
	if o.ArchiveMode != archivePreserve && o.ArchiveMode != archiveOff {
		return usagef("--archive-mode %q: want %s or %s", o.ArchiveMode, archivePreserve, archiveOff)
	}
	if o.dataDir, err = filepath.Abs(o.PGData); err != nil {
		return usagef("--pgdata: %v", err)
	}
	o.exe, err = walvaultBinary()
	return err
}

// restoreAction has no total deadline: a restore takes as long as the
// data is big.
func restoreAction(c *cli.Context, opts *restoreOptions, s *session) error {
	opts.warnMode(s.log)
	opts.restoreConfig.recordReach(s.b)
	configYAML, err := opts.restoreConfig.yaml()
	if err != nil {
		return err
	}
	dataDir, target := opts.dataDir, opts.recoveryTarget
	res, err := restore.RestoreBackup(s.ctx, s.b, restore.BackupOptions{
		DataDir:           dataDir,
		BackupRef:         opts.Backup,
		Target:            target,
		TablespaceMapping: opts.mapping,
		Owner:             opts.Owner,
		OwnerReads:        []string{opts.S3.CABundle},
		RestoreCommand:    restoreCommandLine(opts.exe, dataDir, opts.AcceptGap),
		// With a target past a gap restore finds, recovery ends at the
		// gap, as PostgreSQL ends one whose target lies past the archive.
		RestoreCommandAcceptingGap: restoreCommandLine(opts.exe, dataDir, true),
		ConfigFile:                 restoreConfigFile,
		ConfigYAML:                 configYAML,
		Verify:                     opts.verify,
		ArchiveOff:                 opts.ArchiveMode == archiveOff,
		AcceptGap:                  opts.AcceptGap,
		PGBinDir:                   opts.PGBin,
		Identities:                 opts.Identities,
		Log:                        s.log,
		Progress:                   s.out,
		MaxRate:                    opts.MaxRate,
	})
	if err != nil {
		return err
	}
	m := res.Backup
	w := c.App.Writer
	fmt.Fprintf(w, "restored backup %s (taken %s, WAL %s to %s) into %s: %s in %s, %s\n",
		m.ID, m.StartTime.UTC().Format(time.RFC3339), m.StartLSN, m.StopLSN, dataDir, units.Bytes(res.Bytes), res.Elapsed.Round(time.Second/10), res.Verified)
	what := target.String()
	if opts.AcceptGap && slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "--accept-gap") }) {
		what = "up to the gap below (--accept-gap), not all archived WAL"
	}
	fmt.Fprintf(w, "recovery target: %s\n", what)
	for _, warning := range res.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warning)
	}
	switch {
	case opts.ArchiveMode == archiveOff:
		fmt.Fprintf(w, "archiving: off (archive_mode = off in postgresql.auto.conf)\n")
	case res.NoConfigFile:
		fmt.Fprintf(w, "archiving: as the configuration you give the restored cluster says (the backup has none, see the warning above)\n")
	default:
		fmt.Fprintf(w, "archiving: as the backup's configuration says; once promoted, the server archives its new timeline there (for a copy, restore again with --archive-mode off)\n")
	}
	next := "start the server as its owner"
	if res.NoConfigFile {
		next = "give the cluster its configuration (see the warning above), then start the server as its owner"
	}
	fmt.Fprintf(w, "next: %s, e.g.\n   pg_ctl -D %s -l %s start\n", next, shellQuote(dataDir), shellQuote(filepath.Join(dataDir, "restore.log")))
	fmt.Fprintf(w, "      (the server's environment needs the repository credentials, as for archive_command)\n")
	return nil
}

// targetOptions are the recovery target flags restore and drill share.
type targetOptions struct {
	TargetTime, TargetXID, TargetLSN, TargetName string
	TargetImmediate, TargetInclusive             bool
	TargetTimeline, TargetAction                 string
}

// flags are the --target-* flags; actionUsage says what --target-action
// does for the command.
func (t *targetOptions) flags(actionUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "target-time", Usage: "recover up to this time, with a numeric offset or a zone name (abbreviations such as CET are refused): '2026-11-25 10:30:00+00', 2026-11-25T10:30:00Z or '2026-11-25 11:30:00 Europe/Berlin'", Destination: &t.TargetTime},
		&cli.StringFlag{Name: "target-xid", Usage: "recover up to this transaction id", Destination: &t.TargetXID},
		&cli.StringFlag{Name: "target-lsn", Usage: "recover up to this WAL location, e.g. 0/3000060", Destination: &t.TargetLSN},
		&cli.StringFlag{Name: "target-name", Usage: "recover up to this restore point (pg_create_restore_point)", Destination: &t.TargetName},
		&cli.BoolFlag{Name: "target-immediate", Usage: "stop as soon as the backup is consistent", Destination: &t.TargetImmediate},
		&cli.BoolFlag{Name: "target-inclusive", Value: true, Usage: "stop just after the target (true) or just before it (false)", Destination: &t.TargetInclusive},
		&cli.StringFlag{Name: "target-timeline", Usage: "timeline to follow: latest, current, or a number (default: current with --target-immediate, the backup's own; else latest)", Destination: &t.TargetTimeline},
		&cli.StringFlag{Name: "target-action", Usage: actionUsage, Destination: &t.TargetAction},
	}
}

// backupRefFlag is --backup of restore and drill: the backup to start from.
func backupRefFlag(dst *string) cli.Flag {
	return &cli.StringFlag{Name: "backup", Usage: "backup id, or LATEST (default: the newest DONE backup that ends before the target)", Destination: dst}
}

// target builds the recovery target from the --target-* flags (c says
// whether --target-inclusive was given at all).
func (t *targetOptions) target(c *cli.Context) (restore.Target, error) {
	var rt restore.Target
	for name, v := range map[string]string{"target-time": t.TargetTime, "target-xid": t.TargetXID, "target-lsn": t.TargetLSN, "target-name": t.TargetName, "target-timeline": t.TargetTimeline} {
		if v == "" && c.IsSet(name) {
			// A script's --target-name "$RP" with RP unset would
			// otherwise replay all archived WAL, past what it meant to
			// stop before.
			return rt, usagef("--%s is empty: give a value, or leave the flag out", name)
		}
	}
	if s := t.TargetTime; s != "" {
		tm, err := parseTargetTime(s)
		if err != nil {
			return rt, err
		}
		rt.Time = &tm
	}
	rt.XID = t.TargetXID
	if s := t.TargetLSN; s != "" {
		lsn, err := wal.ParseLSN(s)
		if err != nil {
			return rt, fmt.Errorf("--target-lsn: %w", err)
		}
		rt.LSN = &lsn
	}
	rt.Name = t.TargetName
	rt.Immediate = t.TargetImmediate
	if c.IsSet("target-inclusive") {
		v := t.TargetInclusive
		rt.Inclusive = &v
	}
	rt.Timeline = t.TargetTimeline
	rt.Action = t.TargetAction
	return rt, rt.Validate()
}

// parseTargetTime reads the time forms people type. A zone is required:
// a restore to the wrong hour is worse than an error.
func parseTargetTime(s string) (time.Time, error) {
	layouts := []string{
		time.RFC3339Nano,
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999Z07",
		"2006-01-02 15:04:05.999999999 Z07:00",
		"2006-01-02 15:04:05.999999999 Z07",
		"2006-01-02 15:04:05.999999999Z0700",
		"2006-01-02 15:04:05.999999999 Z0700",
		"2006-01-02 15:04:05.999999999 MST",
	}
	in := strings.TrimSpace(s)
	if n := len(in); n > 4 && in[n-4] == ' ' && (strings.EqualFold(in[n-3:], "utc") || strings.EqualFold(in[n-3:], "gmt")) {
		in = in[:n-3] + strings.ToUpper(in[n-3:])
	}
	for _, l := range layouts {
		t, err := time.Parse(l, in)
		if err != nil {
			continue
		}
		// Go reads an abbreviation the host's zone does not use as UTC,
		// and one it does use by that zone, not PostgreSQL's table (IST,
		// CST): a restore to the wrong hour, so only UTC and GMT pass.
		if name, _ := t.Zone(); strings.HasSuffix(l, "MST") && name != "UTC" && name != "GMT" {
			return time.Time{}, fmt.Errorf("--target-time %q: the zone abbreviation %s is ambiguous (walvault and PostgreSQL may read it as different offsets, or not at all): give the zone as a numeric offset, like '2026-11-25 10:30:00+01' or '2026-11-25 10:30:00-05:00', or in UTC", s, name)
		}
		return toMicroseconds(t), nil
	}
	if t, ok, err := parseInNamedZone(s, in); ok {
		return toMicroseconds(t), err
	}
	if noSeconds().MatchString(in) {
		return time.Time{}, fmt.Errorf("--target-time %q: give the seconds too, like '2026-11-25 10:30:00+00' or '2026-11-25 10:30:00 Europe/Berlin'", s)
	}
	return time.Time{}, fmt.Errorf("--target-time %q: use a time with a zone, like '2026-11-25 10:30:00+00', 2026-11-25 10:30:00.123+00 (as SELECT now() prints it) or '2026-11-25 10:30:00 Europe/Berlin'", s)
}

// toMicroseconds rounds t to PostgreSQL's precision as PostgreSQL reads
// the same text (rint: a half to the even microsecond), so the backup
// chosen and the target written are the instant recovery stops at.
func toMicroseconds(t time.Time) time.Time {
	down := t.Truncate(time.Microsecond)
	rest := t.Sub(down)
	if rest > time.Microsecond/2 || rest == time.Microsecond/2 && (down.Nanosecond()/1000)%2 == 1 {
		return down.Add(time.Microsecond)
	}
	return down
}

// noSeconds matches a date and a time of day without seconds.
var noSeconds = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}($|[^:0-9])`)
})

// parseInNamedZone reads a local time in a zone of the IANA database
// ("2026-11-25 10:30:00 Europe/Berlin", as PostgreSQL takes it); ok is
// false when in does not end in such a name. A local time the zone skips
// (the hour lost when summer time begins) or has twice (the hour repeated
// when it ends) is refused: which instant it means is a guess.
func parseInNamedZone(s, in string) (t time.Time, ok bool, err error) {
	const wall = "2006-01-02 15:04:05.999999999"
	i := strings.LastIndexByte(in, ' ')
	if i < 0 || !strings.Contains(in[i+1:], "/") {
		return time.Time{}, false, nil
	}
	local, name := strings.TrimSpace(in[:i]), in[i+1:]
	loc, lerr := time.LoadLocation(name)
	if lerr != nil {
		// PostgreSQL takes zone names in any case; the database's files
		// are named in one.
		if canonical := zoneNameFold(name); canonical != "" {
			loc, lerr = time.LoadLocation(canonical)
		}
	}
	if lerr != nil {
		return time.Time{}, true, fmt.Errorf("--target-time %q: %v (not in the system's zone database): give the zone as a numeric offset, like '2026-11-25 10:30:00+01'", s, lerr)
	}
	t, perr := time.ParseInLocation(wall, strings.Replace(local, "T", " ", 1), loc)
	if perr != nil {
		return time.Time{}, false, nil
	}
	clock := t.Format(wall)
	if clock != strings.Replace(local, "T", " ", 1) {
		return time.Time{}, true, fmt.Errorf("--target-time %q: %s has no %s (the clocks skip it when summer time begins): give a numeric offset", s, name, local)
	}
	// The same wall clock under the offset in force a day before or after
	// is a second reading when the clocks repeat it (summer time ends: by
	// an hour in most zones, half an hour on Lord Howe Island, two at the
	// Troll station).
	asUTC, _ := time.ParseInLocation(wall, clock, time.UTC)
	for _, near := range []time.Time{t.Add(-24 * time.Hour), t.Add(24 * time.Hour)} {
		_, offset := near.In(loc).Zone()
		other := asUTC.Add(-time.Duration(offset) * time.Second).In(loc)
		if !other.Equal(t) && other.Format(wall) == clock {
			first, second := t, other
			if second.Before(first) {
				first, second = second, first
			}
			return time.Time{}, true, fmt.Errorf("--target-time %q: %s has %s twice (the clocks repeat it when summer time ends): give the offset you mean, like %s or %s", s, name, local,
				first.Format("2006-01-02 15:04:05-07:00"), second.Format("2006-01-02 15:04:05-07:00"))
		}
	}
	return t, true, nil
}

// zoneNameFold is the IANA zone name that equals name but for case, as
// the system's zone database spells it ("" when none does).
func zoneNameFold(name string) string {
	dir := "/usr/share/zoneinfo"
	found := ""
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return nil
		}
		if rel, rerr := filepath.Rel(dir, p); rerr == nil && strings.EqualFold(rel, name) {
			found = rel
			return fs.SkipAll
		}
		return nil
	})
	return found
}

func tablespaceMapping(specs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, spec := range specs {
		old, new, ok := strings.Cut(spec, "=")
		if !ok || !filepath.IsAbs(old) || !filepath.IsAbs(new) {
			return nil, fmt.Errorf("--tablespace-mapping %q: want OLD=NEW with two absolute paths", spec)
		}
		old, new = filepath.Clean(old), filepath.Clean(new)
		if prev, dup := m[old]; dup && prev != new {
			// Likely a typo in one of them: which was meant is a guess.
			return nil, fmt.Errorf("--tablespace-mapping maps %s twice, to %s and to %s: give each tablespace one mapping", old, prev, new)
		}
		m[old] = new
	}
	return m, nil
}

// walvaultBinary is the path of this binary, which restore_command runs:
// the name it was run by (its PATH entry, say /usr/local/bin/walvault, a
// link an upgrade switches to a new version) when that leads to this
// binary, so that the restored server follows upgrades and does not keep
// a version directory that may be removed; else the binary's own path.
func walvaultBinary() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return "", fmt.Errorf("find this walvault binary for restore_command: %w", err)
	}
	return invokedAs(exe, os.Args[0]), nil
}

// invokedAs is arg0 (a path, or a name looked up in PATH), made absolute,
// when it leads to exe (a resolved path), else exe.
func invokedAs(exe, arg0 string) string {
	invoked, err := exec.LookPath(arg0)
	if err != nil {
		return exe
	}
	if invoked, err = filepath.Abs(invoked); err != nil {
		return exe
	}
	if real, err := filepath.EvalSymlinks(invoked); err == nil && real == exe {
		return invoked
	}
	return exe
}

// restoreCommandLine is the restore_command of a cluster restored into
// dataDir: exe's wal-fetch, reading the walvault-restore.yaml written there,
// with its tablespace guard (restore.RestoreGuard); with acceptGap (restore --accept-gap), a segment missing before later
// ones is answered missing, so recovery ends at the gap.
func restoreCommandLine(exe, dataDir string, acceptGap bool) string {
	line := crashBySignal + shellQuote(exe) + " wal-fetch --config " + shellQuote(filepath.Join(dataDir, restoreConfigFile)) + " --tablespace-guard"
	if acceptGap {
		line += " --accept-gap"
	}
	return line + " %f %p"
}

// crashBySignal goes in front of the restore_command walvault writes: a
// Go runtime that fails as the process starts, before wal-fetch can set
// its own traceback level (an address-space or thread limit), then dies
// of SIGABRT rather than exiting 2, which PostgreSQL reads as "not in the
// archive" and would end recovery on (see dieBySignalOnCrash).
const crashBySignal = "GOTRACEBACK=crash "

// recordReach takes the endpoint and region the opened repository b uses
// into the settings walvault-restore.yaml records, when they came from
// elsewhere than walvault's settings (AWS_ENDPOINT_URL_S3, AWS_REGION, a
// profile): restore_command runs in the server's environment, which may
// lack that configuration and would then ask AWS (explore24c F5).
func (r *restoreConfig) recordReach(b storage.Backend) {
	reach, ok := storage.As[interface{ Reach() (string, string) }](b)
	if !ok {
		return
	}
	endpoint, region := reach.Reach()
	if r.S3.Endpoint == "" {
		r.S3.Endpoint = endpoint
	}
	if r.S3.Region == "" {
		r.S3.Region = region
	}
}

// yaml is walvault-restore.yaml, the settings file restore_command reads:
// where the repository is and how to reach it. Credentials never go in it.
func (r *restoreConfig) yaml() ([]byte, error) {
	cfg, fetch := r.Config, r.fetchSettings
	values := map[string]any{
		"repo":        cfg.Repo,
		"compression": fetch.Compression.String(),
		"timeout":     fetch.Timeout.String(),
	}
	if fetch.Identities != nil {
		// The path, never the key: restore_command reads the file (the
		// server's OS user must be able to).
		path, err := filepath.Abs(fetch.Identities.Path())
		if err != nil {
			return nil, err
		}
		values["decrypt-with"] = path
	}
	if cfg.S3.Endpoint != "" {
		values["s3-endpoint"] = cfg.S3.Endpoint
	}
	if cfg.S3.Region != "" {
		values["s3-region"] = cfg.S3.Region
	}
	if cfg.S3.PathStyle {
		values["s3-path-style"] = true
	}
	if cfg.AllowHTTP {
		values["s3-allow-http"] = true
	}
	if cfg.S3.CABundle != "" {
		ca, err := filepath.Abs(cfg.S3.CABundle)
		if err != nil {
			return nil, err
		}
		values["s3-ca-bundle"] = ca
	}
	body, err := yaml.Marshal(values)
	if err != nil {
		return nil, err
	}
	header := restore.ConfigFileMarker + " for restore_command: repository settings only.\n# Credentials come from the server's environment or the AWS chain.\n"
	return append([]byte(header), body...), nil
}

// shellQuote quotes a path for the shell PostgreSQL runs restore_command
// with, when it needs quoting.
func shellQuote(s string) string {
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r)) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
