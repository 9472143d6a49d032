// Command walvault keeps a PostgreSQL cluster recoverable: it is the
// archive_command and restore_command that move WAL to and from a
// repository on S3 or a local directory.
//
// This package only wires flags, configuration and exit codes, and prints
// what the packages below report; the work is done in archive/, restore/,
// retention/, repair/ and the others. Read config.go first: each command's
// options struct binds the settings it reads, and startSession
// (backend.go, run for each command by repoAction) is how every command
// gets its settings, logger and repository.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"github.com/walvault/walvault/internal/handoff"
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
	return appWith(stdout, stderr,
		walPushCommand(), walFetchCommand(),
		backupPushCommand(), backupListCommand(), infoCommand(), backupMarkCommand(), restoreCommand(),
		deleteCommand(), verifyCommand(), checkCommand(), repairCommand(),
		drillCommand(), exporterCommand(), walPrefetchCommand(),
		walReceiveCommand(), keysCommand(), walHelperCommand(),
	)
}

// helperApp is newApp with only the commands a wal-helper runs (those
// handoff.Handles): it builds the app for every call, and building every
// command's flags was about a tenth of a handed-off call's time.
func helperApp(stdout, stderr io.Writer) *cli.App {
	return appWith(stdout, stderr, walPushCommand(), walFetchCommand())
}

// appWith is the walvault app with commands.
func appWith(stdout, stderr io.Writer, commands ...*cli.Command) *cli.App {
	app := &cli.App{
		Name:    "walvault",
		Usage:   "archive and restore PostgreSQL WAL to S3 or a local directory",
		Version: walvaultVersion(),
		Description: `walvault plugs into PostgreSQL's archive_command and restore_command:

   # postgresql.conf
   archive_mode    = on
   archive_command = 'walvault wal-push %p'
   restore_command = 'GOTRACEBACK=crash walvault wal-fetch %f %p'

Settings come from flags, then WALVAULT_* environment variables, then the YAML
file named by --config, then defaults. Each command reads only its own
(walvault COMMAND --help lists them) and ignores the others' in the
environment and the file. The server's environment (or a config file) must
name the repository, e.g. WALVAULT_REPO=s3://bucket/db1 or
WALVAULT_REPO=file:///var/lib/walvault. S3 credentials come only from the
standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
~/.aws, instance or pod roles) and are never printed.`,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Commands:             commands,
		// Errors are printed once, by run, with the exit code decided there.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   flagError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = flagError
	}
	return app
}

// flagError turns the flag parser's complaint (an unknown flag, one
// without its value, a value that does not parse) into a usage error:
// one line and exit 2, instead of urfave's "Incorrect Usage" and the
// whole help.
func flagError(_ *cli.Context, err error, _ bool) error { return usageError{err} }

func main() {
	// Ctrl-C, SIGTERM or SIGQUIT cancels the context: a backup or restore
	// in flight stops, cleans up what it wrote, and exits non-zero; a
	// wal-fetch exits 200. (Go answers SIGQUIT itself with a stack dump
	// and exit 2, which PostgreSQL would read from restore_command as "not
	// in the archive", ending recovery there.)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	if sig := handoff.EarlyStop(); sig != 0 {
		// It arrived while the call waited on wal-helper, before the Go
		// runtime started: stop as on receiving it now.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		cancel()
	}
	if slices.Contains(os.Args[1:], "wal-fetch") {
		dieBySignalOnCrash()
	}
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
// archive_command and restore_command start a process per segment: for
// them only their own command is built: the other commands' flags are
// some 1,500 allocations (0.1 ms warm, more in a new process) unused.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var app *cli.App
	if len(args) > 1 && (args[1] == "wal-push" || args[1] == "wal-fetch") {
		app = helperApp(stdout, stderr)
	} else {
		app = newApp(stdout, stderr)
	}
	return runApp(ctx, app, normalizeArgs(app, args), stderr)
}

// runApp runs a command line already in normalizeArgs' order with app,
// printing the final error to stderr, and returns the exit code.
func runApp(ctx context.Context, app *cli.App, args []string, stderr io.Writer) int {
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	app.Metadata[argsKey] = args
	err := app.RunContext(ctx, args)
	if why := handoff.TakeNote(); why != "" {
		// The command stopped before its logger took the note.
		io.WriteString(stderr, "walvault: "+why+"\n")
	}
	if err == nil {
		return exitOK
	}
	name := commandName(app, args)
	if name == "" && givenWALFile(args[1:]) {
		// No command of walvault's, yet a WAL file given: a mistyped
		// restore_command, whose usage exit 2 PostgreSQL would take for
		// "not in the archive" (recovery ends early, at the backup's end).
		err = mustStop{fmt.Errorf("%w; it was given a WAL file, as restore_command and archive_command give one: exit 200, so that PostgreSQL stops recovery instead of taking the file for missing and ending it early; correct the command in postgresql.conf (walvault wal-fetch %%f %%p)", err)}
	}
	code := exitCode(name, err)
	writeFinalError(stderr, finalLogFormat(app, args), name, err, code)
	return code
}

// errorLine is the one line an error gets on stderr. A usage error names
// the command and points to its --help ("walvault backup-list: flag
// provided but not defined: -retain; see 'walvault backup-list --help'").
func errorLine(command string, err error) string {
	var ue usageError
	switch msg := err.Error(); {
	case !errors.As(err, &ue):
		return "walvault: " + msg
	case command == "":
		return "walvault: " + msg + "; see 'walvault --help'"
	case strings.HasPrefix(msg, command+" "): // "wal-push takes exactly one argument"
		return "walvault " + msg + "; see 'walvault " + command + " --help'"
	default:
		return "walvault " + command + ": " + msg + "; see 'walvault " + command + " --help'"
	}
}

// commandName finds the command word in args (the first non-flag argument
// that names a command), so exit codes can follow the command's contract
// even for usage errors.
func commandName(app *cli.App, args []string) string {
	for _, a := range args[1:] {
		if len(a) > 0 && a[0] != '-' && app.Command(a) != nil {
			return a
		}
	}
	return ""
}
