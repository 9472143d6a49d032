package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
)

// Config is every setting, resolved once: flag > WALVAULT_* environment >
// YAML file (--config) > default. Packages below cmd get the parts they need
// as their own option structs and never read flags or the environment.
type Config struct {
	Repo   string
	PGConn string
	// LockMode is "" (off), "GOVERNANCE" or "COMPLIANCE"; LockDays > 0 with it.
	LockMode     storage.RetentionMode
	LockDays     int
	Retain       string // parsed by the retention package
	MaxBackupAge time.Duration
	MinBackups   int
	S3           open.S3Options
	Compression  repository.Compression
	Timeout      time.Duration
	LogLevel     slog.Level
	LogFormat    string
	ConfigFile   string

	// Prefetch is how many WAL segments wal-fetch downloads ahead (0: off).
	Prefetch int

	// UploadConcurrency is how many waiting WAL files wal-push pushes ahead.
	UploadConcurrency int
}

// setting describes one configuration value under all its names. The YAML
// key is the flag name; the environment variable is WALVAULT_ plus the flag
// name in upper case with '_' for '-'.
type setting struct {
	name   string
	def    string
	usage  string
	isBool bool
}

var settings = []setting{
	{name: "repo", usage: "repository URL: file:///absolute/path or s3://bucket/prefix"},
	{name: "s3-endpoint", usage: "S3 endpoint URL for S3-compatible servers (e.g. https://minio.example:9000); empty means AWS"},
	{name: "s3-region", usage: "S3 region; empty means the AWS chain's (AWS_REGION, ~/.aws/config), else us-east-1"},
	{name: "s3-path-style", def: "false", usage: "use path-style addressing (endpoint/bucket/key), needed by most S3-compatible servers", isBool: true},
	{name: "s3-ca-bundle", usage: "PEM file with the CA certificates that sign the S3 endpoint's TLS certificate"},
	{name: "s3-part-size", def: "16MiB", usage: "multipart upload part size; memory per upload is part size x concurrency"},
	{name: "s3-concurrency", def: "4", usage: "parts uploaded in parallel per object"},
	{name: "pg-conn", usage: "PostgreSQL connection for backup-push (libpq conninfo or URL); PG* environment variables and ~/.pgpass apply"},
	{name: "compression", def: "lz4", usage: "compression of new WAL objects: lz4 or none"},
	{name: "lock-mode", def: "off", usage: "S3 Object Lock on every new object: off, governance or compliance (the bucket must have Object Lock enabled)"},
	{name: "lock-days", def: "0", usage: "days each new object stays locked (with lock-mode governance or compliance)"},
	{name: "retain", usage: `retention policy for delete: "REDUNDANCY n" or "RECOVERY WINDOW OF n DAYS"`},
	{name: "max-backup-age", def: "26h", usage: "check: the newest DONE backup must be younger than this"},
	{name: "min-backups", def: "1", usage: "check: at least this many DONE backups"},
	{name: "upload-concurrency", def: "4", usage: "wal-push: WAL files waiting in pg_wal/archive_status pushed ahead in parallel with the requested one (0 turns it off)"},
	{name: "prefetch", def: "8", usage: "wal-fetch: WAL segments downloaded ahead in the background during recovery, into pg_wal/walvault/prefetch (0 turns it off)"},
	{name: "timeout", def: "2m", usage: "deadline for one wal-push or wal-fetch (retries included: a stalled transfer fails within it), for one wal-receive upload, and for backup-push's wait for wal-receive to store the backup's WAL"},
	{name: "log-level", def: "info", usage: "debug, info, warn or error"},
	{name: "log-format", def: "text", usage: "text or json (log lines go to stderr, which PostgreSQL puts in its log)"},
}

func envName(flag string) string {
	return "WALVAULT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// configFlags are the flags every command takes.
func configFlags() []cli.Flag {
	flags := []cli.Flag{&cli.StringFlag{
		Name:    "config",
		Usage:   "YAML file with settings (keys are the flag names, e.g. repo: s3://bucket/db1)",
		EnvVars: []string{"WALVAULT_CONFIG"},
	}}
	for _, s := range settings {
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
	return flags
}

// usageError marks bad configuration or arguments: exit code 2 (for wal-fetch
// it still stops recovery, see exitCode).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// loadConfig resolves every setting for the running command.
func loadConfig(c *cli.Context) (Config, error) {
	cfg := Config{ConfigFile: c.String("config")}
	fileValues := map[string]string{}
	if cfg.ConfigFile != "" {
		var err error
		if fileValues, err = readConfigFile(cfg.ConfigFile); err != nil {
			return Config{}, usageError{err}
		}
	}
	values := map[string]string{}
	for _, s := range settings {
		switch v, ok := fileValues[s.name]; {
		case c.IsSet(s.name) && s.isBool:
			values[s.name] = strconv.FormatBool(c.Bool(s.name))
		case c.IsSet(s.name):
			values[s.name] = c.String(s.name)
		case ok:
			values[s.name] = v
		default:
			values[s.name] = s.def
		}
	}
	if err := cfg.apply(values); err != nil {
		return Config{}, usageError{err}
	}
	return cfg, nil
}

// apply parses resolved string values into cfg, naming the setting and its
// sources in every error.
func (cfg *Config) apply(v map[string]string) error {
	bad := func(name string, err error) error {
		return fmt.Errorf("invalid %s (--%s, %s): %w", name, name, envName(name), err)
	}
	cfg.Repo = v["repo"]
	if _, err := open.Parse(cfg.Repo); err != nil {
		return err
	}
	cfg.PGConn = v["pg-conn"]
	cfg.S3.Endpoint = v["s3-endpoint"]
	cfg.S3.Region = v["s3-region"]
	cfg.S3.CABundle = v["s3-ca-bundle"]
	var err error
	if cfg.S3.PathStyle, err = strconv.ParseBool(v["s3-path-style"]); err != nil {
		return bad("s3-path-style", errors.New("want true or false"))
	}
	if cfg.S3.PartSize, err = parseSize(v["s3-part-size"]); err != nil {
		return bad("s3-part-size", err)
	}
	if cfg.S3.PartSize < 5<<20 || cfg.S3.PartSize > 5<<30 {
		return bad("s3-part-size", errors.New("S3 parts must be between 5MiB and 5GiB"))
	}
	if cfg.S3.Concurrency, err = strconv.Atoi(v["s3-concurrency"]); err != nil || cfg.S3.Concurrency < 1 || cfg.S3.Concurrency > 64 {
		return bad("s3-concurrency", errors.New("want a whole number from 1 to 64"))
	}
	if cfg.Compression, err = repository.ParseCompression(v["compression"]); err != nil {
		return bad("compression", err)
	}
	switch strings.ToLower(v["lock-mode"]) {
	case "off", "":
	case "governance":
		cfg.LockMode = storage.Governance
	case "compliance":
		cfg.LockMode = storage.Compliance
	default:
		return bad("lock-mode", errors.New("want off, governance or compliance"))
	}
	if cfg.LockDays, err = strconv.Atoi(v["lock-days"]); err != nil || cfg.LockDays < 0 || cfg.LockDays > 36500 {
		return bad("lock-days", errors.New("want a whole number of days from 1 to 36500"))
	}
	if cfg.LockMode != "" && cfg.LockDays == 0 {
		return bad("lock-days", errors.New("lock-mode needs lock-days of at least 1"))
	}
	if cfg.LockMode == "" && cfg.LockDays != 0 {
		return bad("lock-mode", errors.New("lock-days is set but lock-mode is off: set lock-mode governance or compliance"))
	}
	if cfg.LockMode != "" && strings.HasPrefix(cfg.Repo, "file:") {
		return bad("lock-mode", errors.New("a file:// repository cannot be immutable: Object Lock needs an s3:// repository on a bucket with Object Lock enabled"))
	}
	cfg.Retain = v["retain"]
	if cfg.MaxBackupAge, err = time.ParseDuration(v["max-backup-age"]); err != nil || cfg.MaxBackupAge <= 0 {
		return bad("max-backup-age", errors.New("want a positive duration such as 26h"))
	}
	if cfg.MinBackups, err = strconv.Atoi(v["min-backups"]); err != nil || cfg.MinBackups < 0 {
		return bad("min-backups", errors.New("want a whole number, 0 or more"))
	}
	if cfg.Timeout, err = time.ParseDuration(v["timeout"]); err != nil || cfg.Timeout <= 0 {
		return bad("timeout", errors.New("want a positive duration such as 90s or 5m"))
	}
	if cfg.UploadConcurrency, err = strconv.Atoi(v["upload-concurrency"]); err != nil || cfg.UploadConcurrency < 0 || cfg.UploadConcurrency > 64 {
		return bad("upload-concurrency", errors.New("want a whole number from 0 to 64"))
	}
	if cfg.Prefetch, err = strconv.Atoi(v["prefetch"]); err != nil || cfg.Prefetch < 0 || cfg.Prefetch > 64 {
		return bad("prefetch", errors.New("want a whole number from 0 to 64"))
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(v["log-level"])); err != nil {
		return bad("log-level", errors.New("want debug, info, warn or error"))
	}
	cfg.LogFormat = v["log-format"]
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return bad("log-format", errors.New("want text or json"))
	}
	return nil
}

// readConfigFile reads the YAML settings file. Unknown keys are errors: a
// typo must not silently fall back to a default.
func readConfigFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config file %s is not valid YAML: %w", path, err)
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.name] = true
	}
	values := map[string]string{}
	for key, val := range raw {
		if !known[key] {
			return nil, fmt.Errorf("config file %s: unknown setting %q (known: %s)", path, key, knownNames())
		}
		switch val.(type) {
		case map[string]any, []any:
			return nil, fmt.Errorf("config file %s: setting %q wants a single value", path, key)
		case nil:
			continue
		}
		values[key] = fmt.Sprint(val)
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
