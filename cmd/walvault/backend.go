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
// resolved settings, its logger, a context and the opened repository.
type session struct {
	cfg    Config
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

// deadline says whether a command runs under the --timeout deadline (the
// commands PostgreSQL calls and short listings) or only until Ctrl-C or
// SIGTERM (backups, restores, full reads, which take as long as the data is
// big; stalls are caught by the storage transport's own timeouts).
type deadline bool

const (
	withDeadline deadline = true
	noDeadline   deadline = false
)

// startSession resolves the configuration, builds the logger and opens the
// repository, all under the command's context.
func startSession(c *cli.Context, d deadline) (*session, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	s := &session{cfg: cfg, log: newLogger(c.App.ErrWriter, cfg)}
	s.ctx, s.cancel = context.WithCancel(c.Context)
	if d == withDeadline {
		s.ctx, s.cancel = context.WithTimeout(c.Context, cfg.Timeout)
	}
	if s.b, err = openBackend(s.ctx, cfg, s.log); err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}
