package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/internal/handoff"
	"github.com/walvault/walvault/internal/progress"
	"github.com/walvault/walvault/repository"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
)

// openBackend opens the repository under the decorator stack
// (open.Stacked, storage.Stack): the only way a command gets a backend.
// No call through it takes longer than callTimeout, retries included.
func openBackend(ctx context.Context, cfg Config, log *slog.Logger, callTimeout time.Duration) (storage.Backend, error) {
	return open.Stacked(ctx, cfg.Repo, open.Options{S3: cfg.S3, Stack: storage.StackOptions{Log: log, CallTimeout: callTimeout}})
}

// session is what a command that works on the repository starts with: its
// logger, a context and the opened repository (its settings are in the
// command's options).
type session struct {
	log    *slog.Logger
	out    *progress.Output // stderr: the logger writes through it, long commands show progress on it
	ctx    context.Context
	b      storage.Backend
	cancel context.CancelFunc
}

// Close releases the repository and the context.
func (s *session) Close() {
	s.b.Close()
	s.cancel()
}

// validator is implemented by options that check what depends on resolved
// settings; its errors are usage errors, found before any I/O.
type validator interface {
	validate() error
}

// startSession is the one setup path of every command (each opens the
// repository): it resolves the settings opts binds and validates them
// (usage errors), builds the logger and opens the repository, all under
// the command's context. That context ends at Ctrl-C or SIGTERM, and, when opts is a deadliner
// (the commands PostgreSQL calls, short listings), at its deadline too;
// backups, restores and full reads take as long as the data is big: for
// every command, each storage call is bounded by its --timeout instead
// (callTimeout, storage.StackOptions.CallTimeout).
func startSession(c *cli.Context, opts options) (*session, error) {
	if err := resolve(c, opts); err != nil {
		return nil, err
	}
	if v, ok := opts.(validator); ok {
		if err := v.validate(); err != nil {
			return nil, usageError{err}
		}
	}
	cfg := *opts.common()
	noteLogFormat(c, cfg)
	s := &session{out: progress.New(c.App.ErrWriter, progress.Options{Terminal: isTerminal(c.App.ErrWriter)})}
	s.log = newLogger(s.out, cfg)
	if why := handoff.TakeNote(); why != "" {
		s.log.Warn(why)
	}
	// A wal-helper's own environment is not the caller's: it warns once,
	// when it starts.
	if unknown := unknownEnvVars(os.Environ()); len(unknown) > 0 && helperOf(c) == nil {
		s.log.Warn("WALVAULT_* variables that name no walvault setting are ignored: a misspelling? (walvault COMMAND --help lists each setting's variable)", "variables", strings.Join(unknown, ","))
	}
	if cfg.envIgnored != "" {
		s.log.Warn("settings in the environment ignored: the file walvault restore wrote names the repository this cluster was restored from, and only the command line overrides it",
			"ignored", cfg.envIgnored, "config", cfg.ConfigFile,
			"hint", "remove those variables from the server's environment, or edit the file if the repository moved")
	}
	if d, ok := opts.(deadliner); ok {
		s.ctx, s.cancel = context.WithTimeout(c.Context, d.deadline())
	} else {
		s.ctx, s.cancel = context.WithCancel(c.Context)
	}
	// Storage warnings go to this command's output even from a backend a
	// wal-helper keeps open across commands.
	s.ctx = storage.WithCallLog(s.ctx, s.log)
	var err error
	if h := helperOf(c); h != nil {
		s.b, err = h.backend(cfg, callTimeout(opts))
	} else {
		if l, ok := opts.(interface{ policy() repository.LockPolicy }); ok {
			// Its writes will check the bucket's Object Lock: asked early.
			cfg.S3.ObjectLock = l.policy().Mode != ""
		}
		s.b, err = openBackend(s.ctx, cfg, s.log, callTimeout(opts))
	}
	if err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// prechecker is implemented by options that check the command line (the
// arguments and the command's own flags) before any setting is read, so a
// bad one is a usage error found before the configuration is; precheck
// also keeps what it parsed, and looks up what needs no setting.
type prechecker interface {
	precheck(c *cli.Context) error
}

// noArgs is the precheck of a command that takes no arguments; msg is the
// usage error when it gets some.
func noArgs(c *cli.Context, msg string) error {
	if c.NArg() == 0 {
		return nil
	}
	if first := c.Args().First(); first == "true" || first == "false" {
		// --target-inclusive false: a boolean flag takes its value
		// after "=", and the word is left over.
		return usagef("%s; %q is left over: a true/false flag takes its value as --flag=%s", msg, first, first)
	}
	return usagef("%s; %q is left over", msg, c.Args().First())
}

// repoAction is the Action of a command that works on the repository: the
// precheck of opts (when it has one), then run in a session (inSession).
func repoAction[O options](opts O, run func(c *cli.Context, opts O, s *session) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if p, ok := any(opts).(prechecker); ok {
			if err := p.precheck(c); err != nil {
				return err
			}
		}
		return inSession(c, opts, func(s *session) error { return run(c, opts, s) })
	}
}

// inSession starts the command's session (startSession), runs work in it
// and closes it.
func inSession(c *cli.Context, opts options, work func(s *session) error) error {
	s, err := startSession(c, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	return work(s)
}
