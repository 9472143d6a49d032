// Command walvault keeps a PostgreSQL cluster recoverable: it is the
// archive_command and restore_command that move WAL to and from a
// repository on S3 or a local directory.
//
// This package only wires flags, configuration and exit codes; the work is
// done in archive/, restore/ and storage/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func walvaultVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "walvault",
		Usage:   "archive and restore PostgreSQL WAL to S3 or a local directory",
		Version: walvaultVersion(),
		Description: `walvault plugs into PostgreSQL's archive_command and restore_command:

   # postgresql.conf
   archive_mode    = on
   archive_command = 'walvault wal-push %p'
   restore_command = 'walvault wal-fetch %f %p'

Settings come from flags, then WALVAULT_* environment variables, then the YAML
file named by --config, then defaults. The server's environment (or a config
file) must name the repository, e.g. WALVAULT_REPO=s3://bucket/db1 or
WALVAULT_REPO=file:///var/lib/walvault. S3 credentials come only from the
standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
~/.aws, instance or pod roles) and are never printed.`,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Commands: []*cli.Command{
			walPushCommand(), walFetchCommand(),
			backupPushCommand(), backupListCommand(), backupMarkCommand(), restoreCommand(),
			deleteCommand(), verifyCommand(), checkCommand(), repairCommand(),
			drillCommand(), exporterCommand(), walPrefetchCommand(),
			walReceiveCommand(),
		},
		// Errors are printed once, by main, with the exit code decided there.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func main() {
	// Ctrl-C or SIGTERM cancels the context: a backup or restore in flight
	// stops, cleans up what it wrote, and exits non-zero.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	code := exitCode(commandName(args), err)
	fmt.Fprintf(stderr, "walvault: %v\n", err)
	return code
}

// commandName finds the command word in args (the first non-flag argument),
// so exit codes can follow the command's contract even for usage errors.
func commandName(args []string) string {
	for _, a := range args[1:] {
		if len(a) > 0 && a[0] != '-' {
			return a
		}
	}
	return ""
}
