package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/restore"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
)

// A setting is one configuration value under all its names: the flag, the
// WALVAULT_* environment variable (envName) and the YAML key, which is the
// flag name. A command reads only the settings its options bind (see
// options and binder); the YAML file and the environment may hold any of
// them, and a command ignores those it does not bind.
type setting struct {
	name   string
	def    string
	usage  string
	isBool bool
}

// settings is every setting a YAML file may hold.
var settings = []setting{
	{name: "repo", usage: "repository URL: file:///absolute/path or s3://bucket/prefix"},
	{name: "s3-endpoint", usage: "S3 endpoint URL for S3-compatible servers (e.g. https://minio.example:9000); empty means AWS"},
	{name: "s3-region", usage: "S3 region; empty means the AWS chain's (AWS_REGION, ~/.aws/config), else us-east-1"},
	{name: "s3-path-style", def: "false", usage: "use path-style addressing (endpoint/bucket/key), needed by most S3-compatible servers", isBool: true},
	{name: "s3-allow-http", def: "false", usage: "allow an http:// s3-endpoint (data and request signatures then travel unencrypted: for loopback tests only)", isBool: true},
	{name: "s3-sse", usage: "storage-side encryption asked of S3 on every write: AES256 or aws:kms (empty: the bucket's default)"},
	{name: "s3-sse-kms-key-id", usage: "KMS key for s3-sse aws:kms (empty: the account's default key)"},
	{name: "s3-ca-bundle", usage: "PEM file with the CA certificates that sign the S3 endpoint's TLS certificate"},
	{name: "s3-part-size", def: "16MiB", usage: "multipart upload part size; memory per upload is part size x concurrency"},
	{name: "s3-concurrency", def: "4", usage: "parts uploaded in parallel per object"},
	{name: "pg-conn", usage: "PostgreSQL connection (libpq conninfo or URL); PG* environment variables and ~/.pgpass apply"},
	{name: "compression", def: "lz4", usage: "compression of new WAL objects and backup parts: lz4, zstd, zstd:LEVEL (1-22) or none; each object records its own, so it may change at any time"},
	{name: "lock-mode", def: "off", usage: "S3 Object Lock on every new object: off, governance or compliance (the bucket must have Object Lock enabled)"},
	{name: "lock-days", def: "0", usage: "days each new object stays locked (with lock-mode governance or compliance)"},
	{name: "encrypt-to", usage: "encrypt new objects to these age public keys (age1..., comma separated), or @FILE with one per line; needs no secret"},
	{name: "decrypt-with", usage: "age identity file (AGE-SECRET-KEY-1... lines) that decrypts an encrypted repository's objects"},
	{name: "retain", usage: `retention policy: "REDUNDANCY n" or "RECOVERY WINDOW OF n DAYS"`},
	{name: "max-backup-age", def: "26h", usage: "the newest DONE backup must be younger than this"},
	{name: "min-backups", def: "1", usage: "at least this many DONE backups"},
	{name: "upload-concurrency", def: "8", usage: "WAL files waiting in pg_wal/archive_status pushed ahead in parallel with the requested one (0 turns it off)"},
	{name: "max-rate", usage: "bytes a second, such as 50MiB; unset: no limit"}, // each command says what it limits (maxRate.bind)
	{name: "helper", def: "off", usage: "auto: a wal-push or wal-fetch run in a data directory no wal-helper serves starts one there, detached, which runs the calls after it and stops after 10 minutes without any (its log: pg_wal/walvault/helper.log); off: only a helper you run yourself"},
	{name: "prefetch", def: "8", usage: "WAL segments downloaded ahead in the background during recovery, into pg_wal/walvault/prefetch, at most 256 MiB of them (so fewer of a segment size above 32 MiB; 0 turns it off)"},
	{name: "timeout", def: "2m"}, // each command says what it bounds (bindTimeout)
	{name: "log-level", def: "info", usage: "debug, info, warn or error"},
	{name: "log-format", def: "text", usage: "text or json (log lines go to stderr, which PostgreSQL puts in its log)"},
}

func envName(flag string) string {
	return "WALVAULT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func lookupSetting(name string) setting {
	for _, s := range settings {
		if s.name == name {
			return s
		}
	}
	panic("walvault: no setting " + name) // a typo in a bind method; every command's tests reach it
}

// options are a command's settings and flags, one struct per command (as
// restic's cmd_*.go files have). Every command opens the repository, so
// its options embed Config (common); a settingsBinder names the settings
// the command reads beyond it, and the command's own flags write into the
// same struct.
type options interface {
	common() *Config
}

// settingsBinder is implemented by options with settings beyond Config:
// bind names them and where each goes.
type settingsBinder interface {
	bind(b *binder)
}

// bindSettings binds every setting opts reads: Config's, then its own (the
// order --help lists them in).
func bindSettings(opts options) *binder {
	var b binder
	opts.common().bindRepo(&b)
	if sb, ok := opts.(settingsBinder); ok {
		sb.bind(&b)
	}
	return &b
}

// deadliner is implemented by the options of commands that run under a
// total deadline (see startSession).
type deadliner interface {
	deadline() time.Duration
}

// totalTimeout is the timeout setting of a command whose timeout is its
// total deadline; its options embed it, and bind it with bindTimeout.
type totalTimeout struct {
	Timeout time.Duration
}

func (t *totalTimeout) deadline() time.Duration { return t.Timeout }

// binder collects the settings a command's options bind: from it come the
// command's flags (settingFlags) and, at run time, the resolved values
// (resolve).
type binder struct {
	bound  []binding
	checks []func() error // across settings, after every one is parsed
	// timeout is where the command's --timeout lands, nil when it binds
	// none (see callTimeout).
	timeout *time.Duration
}

type binding struct {
	setting
	// set parses the resolved value into the options; its error names the
	// setting and its sources.
	set func(string) error
}

func (b *binder) add(name string, set func(string) error) {
	b.bound = append(b.bound, binding{lookupSetting(name), set})
}

// addUsage binds a setting whose meaning the command words itself.
func (b *binder) addUsage(name, usage string, set func(string) error) {
	s := lookupSetting(name)
	s.usage = usage
	b.bound = append(b.bound, binding{s, set})
}

func (b *binder) check(fn func() error) { b.checks = append(b.checks, fn) }

// invalid is the error for a bad value of setting name.
func invalid(name, want string) error {
	return fmt.Errorf("invalid %s (--%s, %s): %s", name, name, envName(name), want)
}

// Config is what every command that opens the repository resolves: where
// the repository is, how to reach it, and how to log. Other settings
// belong to the options of the commands that read them.
type Config struct {
	Repo string
	S3   open.S3Options
	// AllowHTTP lets s3-endpoint be http:// (s3-allow-http).
	AllowHTTP  bool
	LogLevel   slog.Level
	LogFormat  string
	ConfigFile string
	// envIgnored names the WALVAULT_* variables a settings file written
	// by restore overrode (resolve), comma-separated, for the command to
	// warn about.
	envIgnored string
}

func (cfg *Config) common() *Config { return cfg }

// bindRepo binds the settings every command reads (see bindSettings).
func (cfg *Config) bindRepo(b *binder) {
	b.add("repo", func(v string) error {
		cfg.Repo = v
		_, err := open.Parse(v) // its message names --repo and WALVAULT_REPO
		return err
	})
	b.add("s3-endpoint", func(v string) error { cfg.S3.Endpoint = v; return nil })
	b.add("s3-region", func(v string) error { cfg.S3.Region = v; return nil })
	b.add("s3-path-style", func(v string) (err error) {
		if cfg.S3.PathStyle, err = strconv.ParseBool(v); err != nil {
			return invalid("s3-path-style", "want true or false")
		}
		return nil
	})
	b.add("s3-ca-bundle", func(v string) error { cfg.S3.CABundle = v; return nil })
	cfg.bindAllowHTTP(b)
	cfg.bindSSE(b)
	b.add("log-level", func(v string) error {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return invalid("log-level", "want debug, info, warn or error")
		}
		return nil
	})
	b.add("log-format", func(v string) error {
		if cfg.LogFormat = v; v != "text" && v != "json" {
			return invalid("log-format", "want text or json")
		}
		return nil
	})
}

// bindUploads binds the multipart settings, for the commands that upload
// objects bigger than one part: wal-push, wal-receive and backup-push.
// Elsewhere the S3 backend's defaults apply to the few small objects
// written.
func (cfg *Config) bindUploads(b *binder) {
	b.add("s3-part-size", func(v string) (err error) {
		if cfg.S3.PartSize, err = parseSize(v); err != nil {
			return invalid("s3-part-size", err.Error())
		}
		if cfg.S3.PartSize < 5<<20 || cfg.S3.PartSize > 5<<30 {
			return invalid("s3-part-size", "S3 parts must be between 5MiB and 5GiB")
		}
		return nil
	})
	b.add("s3-concurrency", intIn("s3-concurrency", &cfg.S3.Concurrency, 1, 64))
}

// intIn parses a whole number from min to max into dst.
func intIn(name string, dst *int, min, max int) func(string) error {
	return func(v string) (err error) {
		if *dst, err = strconv.Atoi(v); err != nil || *dst < min || *dst > max {
			return invalid(name, fmt.Sprintf("want a whole number from %d to %d", min, max))
		}
		return nil
	}
}

// positiveDuration parses a duration above zero into dst: Go's units (h,
// m, s, ms) or whole days ("30d").
func positiveDuration(name, example string, dst *time.Duration) func(string) error {
	return func(v string) (err error) {
		if days, ok := strings.CutSuffix(v, "d"); ok {
			n, err := strconv.Atoi(days)
			if err != nil || n <= 0 || n > 100*365 {
				return invalid(name, "want a positive duration such as "+example+" (in whole days: 30d)")
			}
			*dst = time.Duration(n) * 24 * time.Hour
			return nil
		}
		if *dst, err = time.ParseDuration(v); err != nil || *dst <= 0 {
			return invalid(name, "want a positive duration such as "+example+" (units: h, m, s; or whole days: 30d)")
		}
		return nil
	}
}

func bindPGConn(b *binder, dst *string) {
	b.add("pg-conn", func(v string) error { *dst = v; return nil })
}

func bindCompression(b *binder, dst *repository.Setting) {
	b.add("compression", func(v string) (err error) {
		if *dst, err = repository.ParseSetting(v); err != nil {
			return fmt.Errorf("invalid compression (--compression, %s): %w", envName("compression"), err)
		}
		return nil
	})
}

// bindTimeout binds timeout; usage says what it bounds for the command,
// beyond the rule every command follows (timeoutRule).
func bindTimeout(b *binder, dst *time.Duration, usage string) {
	b.addUsage("timeout", usage+timeoutRule, positiveDuration("timeout", "90s or 5m", dst))
	b.timeout = dst
}

// timeoutRule is what --timeout means for every command that reads it:
// storage.StackOptions.CallTimeout, and the S3 stall timeout under it.
const timeoutRule = "; as for every command, no storage call takes longer than this, retries included (a transfer is bounded by its progress instead: no byte for 30s, or this timeout if shorter)"

// defaultCallTimeout bounds each storage call of the commands that bind
// no --timeout (repair, exporter, wal-prefetch): the setting's default.
const defaultCallTimeout = 2 * time.Minute

// callTimeout is the longest one storage call of the command may take:
// its --timeout once resolved, else defaultCallTimeout.
func callTimeout(opts options) time.Duration {
	if b := bindSettings(opts); b.timeout != nil && *b.timeout > 0 {
		return *b.timeout
	}
	return defaultCallTimeout
}

// The deadline of a command PostgreSQL calls follows one rule: the
// command whose failure PostgreSQL retries by itself keeps the short
// shared default (wal-push: a failed archive_command is run again a second
// later, then every minute, and the segment waits in pg_wal, while a long
// attempt holds up the segments behind it); the command whose failure it
// does not retry gets a long one (wal-fetch: exit 200 stops recovery, and a
// restore of hours must then be started again by hand). Within its
// deadline a command retries transient storage errors (storage.RetryPolicy).
//
// walFetchTimeout is wal-fetch's default: ten minutes rides out a gateway
// restart, a failover or a network outage of a few minutes, while
// restore_command still never hangs for good (a standby waiting on it
// neither replays nor streams, and a dead repository must be reported).
const walFetchTimeout = "10m"

// bindFetchTimeout binds wal-fetch's timeout, with its own default
// (walFetchTimeout); restore and drill bind it too, for the
// walvault-restore.yaml restore_command reads.
func bindFetchTimeout(b *binder, dst *time.Duration, usage string) {
	s := lookupSetting("timeout")
	s.usage, s.def = usage+timeoutRule, walFetchTimeout
	b.bound = append(b.bound, binding{s, positiveDuration("timeout", "90s or 10m", dst)})
	b.timeout = dst
}

// lockSettings are the Object Lock settings of commands that write new
// objects: wal-push, wal-receive, backup-push, and check (which checks the
// bucket can do what they ask).
type lockSettings struct {
	// LockMode is "" (off), "GOVERNANCE" or "COMPLIANCE"; LockDays > 0 with it.
	LockMode storage.RetentionMode
	LockDays int
}

// policy is the Object Lock policy the settings ask for.
func (l lockSettings) policy() repository.LockPolicy {
	return repository.LockPolicy{Mode: l.LockMode, Days: l.LockDays}
}

// bind binds lock-mode and lock-days; repo is the command's repository
// URL, since a directory cannot lock.
func (l *lockSettings) bind(b *binder, repo *string) {
	b.add("lock-mode", func(v string) error {
		switch strings.ToLower(v) {
		case "off", "":
			l.LockMode = ""
		case "governance":
			l.LockMode = storage.Governance
		case "compliance":
			l.LockMode = storage.Compliance
		default:
			return invalid("lock-mode", "want off, governance or compliance")
		}
		return nil
	})
	b.add("lock-days", func(v string) (err error) {
		if l.LockDays, err = strconv.Atoi(v); err != nil || l.LockDays < 0 || l.LockDays > 36500 {
			return invalid("lock-days", "want a whole number of days from 1 to 36500 (0, the default, with lock-mode off)")
		}
		return nil
	})
	b.check(func() error {
		switch {
		case l.LockMode != "" && l.LockDays == 0:
			return invalid("lock-days", "lock-mode needs lock-days of at least 1")
		case l.LockMode == "" && l.LockDays != 0:
			return invalid("lock-mode", "lock-days is set but lock-mode is off: set lock-mode governance or compliance")
		case l.LockMode != "" && strings.HasPrefix(*repo, "file:"):
			return invalid("lock-mode", "a file:// repository cannot be immutable: Object Lock needs an s3:// repository on a bucket with Object Lock enabled")
		}
		return nil
	})
}

// commandEnvVars are the WALVAULT_* variables of flags that are no
// setting (one command's own: drill's, the exporter's, wal-receive's);
// TestKnownEnvVars holds the list to the commands' flags.
var commandEnvVars = []string{"WALVAULT_CONFIG", "WALVAULT_SCRATCH_DIR", "WALVAULT_PG_BIN", "WALVAULT_LISTEN", "WALVAULT_REFRESH",
	"WALVAULT_WEB_CONFIG_FILE", "WALVAULT_RECEIVE_METRICS", "WALVAULT_SLOT"}

// unknownEnvVars are the WALVAULT_* variables in env that name nothing
// walvault reads: a misspelled one would otherwise be silently ignored.
// The test and benchmark harness's own are left alone.
func unknownEnvVars(env []string) []string {
	known := map[string]bool{}
	for _, s := range settings {
		known[envName(s.name)] = true
	}
	for _, name := range commandEnvVars {
		known[name] = true
	}
	var unknown []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "WALVAULT_") || known[name] || harnessEnvVar(name) {
			continue
		}
		unknown = append(unknown, name)
	}
	sort.Strings(unknown)
	return unknown
}

// harnessEnvVar says whether name is one of the test and benchmark
// harness's variables, which reach walvault in the environment of the
// servers the harness starts, or one contrib/ and the demo read.
func harnessEnvVar(name string) bool {
	for _, prefix := range []string{"WALVAULT_BENCH_", "WALVAULT_TEST_", "WALVAULT_TESTENV_", "WALVAULT_KEEPUP", "WALVAULT_FAKE_", "WALVAULT_DRILL_FAKE_", "WALVAULT_PG1"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	switch name {
	case "WALVAULT_BIN", "WALVAULT_MINIO", "WALVAULT_VERSITYGW", "WALVAULT_PG_USER", "WALVAULT_RECEIVE_SECONDS",
		// contrib/systemd's environment file and units, and the demo.
		"WALVAULT_ON_FAILURE", "WALVAULT_CLUSTER", "WALVAULT_DEMO_CONFIG":
		return true
	}
	return false
}

// configFlag is the flag every command takes.
func configFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "config",
		Usage:   "YAML file with settings (keys are the flag names, e.g. repo: s3://bucket/db1)",
		EnvVars: []string{"WALVAULT_CONFIG"},
	}
}

// settingFlags are the flags of the settings opts binds, after --config,
// followed by the command's own flags.
func settingFlags(opts options, own ...cli.Flag) []cli.Flag {
	b := bindSettings(opts)
	flags := make([]cli.Flag, 0, 1+len(b.bound)+len(own))
	flags = append(flags, configFlag())
	for _, s := range b.bound {
		usage := s.usage
		if s.def != "" && !s.isBool { // urfave prints bool defaults itself
			usage += " (default: " + s.def + ")"
		}
		if s.isBool {
			flags = append(flags, &cli.BoolFlag{Name: s.name, Usage: usage, EnvVars: []string{envName(s.name)}})
			continue
		}
		flags = append(flags, &cli.StringFlag{Name: s.name, Usage: usage, EnvVars: []string{envName(s.name)}})
	}
	return append(flags, own...)
}

// usageError marks bad configuration or arguments: exit code 2 (for wal-fetch
// it still stops recovery, see exitCode), printed as one line that points to
// the command's --help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// givenFlags are the names of the command's flags given on its command
// line or by their environment variables: c.IsSet of each, at once.
// c.IsSet itself finds a name through every flag's Names(), a regular
// expression each, which a wal-helper paid for each setting of each call.
func givenFlags(c *cli.Context) map[string]bool {
	set := map[string]bool{}
	for _, name := range c.LocalFlagNames() {
		set[name] = true
	}
	return set
}

// resolve fills the settings opts binds: flag > WALVAULT_* environment >
// YAML file (--config) > default, except that a file restore wrote beats
// the environment. Settings opts does not bind are not read, wherever
// they are set.
func resolve(c *cli.Context, opts options) error {
	b := bindSettings(opts)
	cfg := opts.common()
	cfg.ConfigFile = c.String("config")
	var fileValues map[string]string
	var byRestore bool
	if cfg.ConfigFile != "" {
		var err error
		if fileValues, byRestore, err = readConfigFile(cfg.ConfigFile); err != nil {
			return usageError{err}
		}
	}
	set := givenFlags(c)
	var ignored []string
	for _, s := range b.bound {
		if set[s.name] && emptyInEnvironment(c, s.setting) {
			// WALVAULT_X= (a blank line in an EnvironmentFile) sets
			// nothing: the file or the default goes.
			set[s.name] = false
		}
		v, inFile := fileValues[s.name]
		fromFile := inFile
		switch {
		case byRestore && inFile && set[s.name] && fromEnvironment(c, s.setting) && !restoreFileYields[s.name]:
			// The file restore wrote names the repository the cluster
			// was restored from, and how to reach it; the server's
			// environment (perhaps still naming another repository, or
			// a prefix since abandoned) must not redirect its recovery,
			// which would end early where that repository ends. Only
			// the command line overrides it.
			if env := os.Getenv(envName(s.name)); !sameValue(s.setting, env, v) {
				ignored = append(ignored, envName(s.name))
			}
		case set[s.name] && s.isBool:
			v, fromFile = strconv.FormatBool(c.Bool(s.name)), false
		case set[s.name]:
			v, fromFile = c.String(s.name), false
		case !inFile:
			v = s.def
		}
		if err := s.set(v); err != nil {
			if fromFile {
				// Not the value itself: a setting such as pg-conn may
				// hold a password.
				err = fmt.Errorf("%w (the value is %s's, in %s)", err, s.name, cfg.ConfigFile)
			}
			return usageError{err}
		}
	}
	cfg.envIgnored = strings.Join(ignored, ",")
	for _, check := range b.checks {
		if err := check(); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// restoreFileYields are the settings of walvault-restore.yaml the
// server's environment may override: they neither pick nor reach the
// repository (compression only orders wal-fetch's first lookups).
var restoreFileYields = map[string]bool{"compression": true, "log-format": true, "log-level": true}

// argsKey keeps, in the app's Metadata, the command line runApp ran.
const argsKey = "walvault.args"

// fromEnvironment says whether setting s, given (c's flag is set), came
// from its WALVAULT_* variable rather than the command line: urfave/cli
// reports both as set, so the command line is read. A flag on it wins
// even when it has the variable's value (restore_command's --repo beside
// the same WALVAULT_REPO must beat walvault-restore.yaml, explore24c F2).
func fromEnvironment(c *cli.Context, s setting) bool {
	env, ok := os.LookupEnv(envName(s.name))
	if !ok {
		return false
	}
	if args, known := c.App.Metadata[argsKey].([]string); known {
		return !flagOnCommandLine(args, s.name)
	}
	if s.isBool {
		return sameValue(s, env, strconv.FormatBool(c.Bool(s.name)))
	}
	return env == c.String(s.name)
}

// flagOnCommandLine says whether args (a whole command line) give flag
// name, as -name, --name, or either with =value, before any "--".
func flagOnCommandLine(args []string, name string) bool {
	for _, a := range args[min(1, len(args)):] {
		if a == "--" {
			return false
		}
		flag, ok := strings.CutPrefix(a, "-")
		if !ok {
			continue
		}
		flag = strings.TrimPrefix(flag, "-")
		flag, _, _ = strings.Cut(flag, "=")
		if flag == name {
			return true
		}
	}
	return false
}

// emptyInEnvironment says whether setting s, given, is its WALVAULT_*
// variable set to nothing (and no flag gave it another value: for a
// boolean, urfave/cli reads the blank variable as false, which only
// --name=false on the command line would give too).
func emptyInEnvironment(c *cli.Context, s setting) bool {
	env, ok := os.LookupEnv(envName(s.name))
	if !ok || env != "" {
		return false
	}
	if s.isBool {
		return !c.Bool(s.name)
	}
	return c.String(s.name) == ""
}

// sameValue says whether two values of setting s mean the same.
func sameValue(s setting, a, b string) bool {
	if s.isBool {
		x, errA := strconv.ParseBool(a)
		y, errB := strconv.ParseBool(b)
		return errA == nil && errB == nil && x == y
	}
	return a == b
}

// readConfigFile reads the YAML settings file, and says whether restore
// wrote it (restore.ConfigFileMarker). Unknown keys are errors: a typo
// must not silently fall back to a default.
func readConfigFile(path string) (values map[string]string, byRestore bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read config file: %w", err)
	}
	values, err = parseConfigFile(path, data)
	return values, bytes.HasPrefix(data, []byte(restore.ConfigFileMarker)), err
}

func parseConfigFile(path string, data []byte) (map[string]string, error) {
	// Values are read as written, never as YAML's typed values: a
	// flag's or a variable's "030" is 30, and so must the file's be (YAML
	// would read it as octal 24, and "3_0" as 30).
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s is not valid YAML: %w", path, err)
	}
	// A second document ("---" and more settings) would be ignored
	// without a word.
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s holds more than one YAML document (a line \"---\"): put every setting in one", path)
	}
	values := map[string]string{}
	if len(doc.Content) == 0 {
		return values, nil // empty, or comments only
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: want settings as key: value lines", path)
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.name] = true
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i].Value, root.Content[i+1]
		if !known[key] {
			return nil, fmt.Errorf("config file %s: unknown setting %q (known: %s)", path, key, knownNames())
		}
		if seen[key] {
			return nil, fmt.Errorf("config file %s: setting %q is given twice", path, key)
		}
		seen[key] = true
		if val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		switch {
		case val.Kind != yaml.ScalarNode:
			return nil, fmt.Errorf("config file %s: setting %q wants a single value", path, key)
		case val.Tag == "!!null":
			continue
		}
		values[key] = val.Value
	}
	return values, nil
}

func knownNames() string {
	names := make([]string, 0, len(settings))
	for _, s := range settings {
		names = append(names, s.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// parseSize reads "16MiB", "8MB", "1048576".
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a size such as 16MiB")
	}
	return n * mult, nil
}
