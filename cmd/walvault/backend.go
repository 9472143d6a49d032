package main

import (
	"context"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/storage/open"
)

// openBackend opens the repository under the decorator stack
// (open.Stacked, storage.Stack): the only way a command gets a backend.
func openBackend(ctx context.Context, cfg Config, log *slog.Logger) (storage.Backend, error) {
	return open.Stacked(ctx, cfg.Repo, open.Options{S3: cfg.S3, Stack: storage.StackOptions{Log: log}})
}

// session is what a command that works on the repository starts with: its
// logger, a context and the opened repository (its settings are in the
// command's options).
type session struct {
	log    *slog.Logger
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
// backups, restores and full reads take as long as the data is big, and
// their stalls are caught by the storage transport's own timeouts.
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
	s := &session{log: newLogger(c.App.ErrWriter, cfg)}
	if d, ok := opts.(deadliner); ok {
		s.ctx, s.cancel = context.WithTimeout(c.Context, d.deadline())
	} else {
		s.ctx, s.cancel = context.WithCancel(c.Context)
	}
	var err error
	if s.b, err = openBackend(s.ctx, cfg, s.log); err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}
