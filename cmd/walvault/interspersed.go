package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// normalizeArgs puts a command line in the one order urfave/cli v2 parses,
// walvault COMMAND [flags] [arguments], so that flags may also come before
// the command word ("walvault --config F wal-push %p", the order WAL-G and
// pgBackRest take) or after the arguments ("wal-fetch %f %p --config F",
// "backup-mark ID --keep", as the README writes it). urfave/cli v2 stops
// at the first argument (Go's flag package does) and has no option to go
// on (v3 does), and walvault has no flags of its own besides --help and
// --version; an archive_command written either way would otherwise fail on
// every segment. Flags the command does not take are left for its parser
// to report, and words before the command that are not all its flags (with
// their values) leave the line as it is, so the usual usage errors still
// name what is wrong.
func normalizeArgs(app *cli.App, args []string) []string {
	args = commandFlagsFirst(app, args)
	if len(args) < 3 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args
	}
	var flags, positional, afterDashes []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			afterDashes = rest[i:]
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := commandFlag(cmd, name)
		if f == nil || hasValue {
			continue
		}
		if _, isBool := f.(*cli.BoolFlag); !isBool && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	if afterDashes != nil {
		out = append(out, "--")
		afterDashes = afterDashes[1:]
	}
	out = append(out, positional...)
	return append(out, afterDashes...)
}

// commandFlagsFirst moves the flags written before the command word to just
// after it, when they are all flags the command takes; otherwise args is
// returned as it is.
func commandFlagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 || len(args[1]) < 2 || args[1][0] != '-' {
		return args
	}
	for i := 2; i < len(args); i++ {
		cmd := app.Command(args[i])
		if cmd == nil || len(cmd.Subcommands) > 0 || !takesFlags(cmd, args[1:i]) {
			continue
		}
		out := append([]string{args[0], args[i]}, args[1:i]...)
		return append(out, args[i+1:]...)
	}
	return args
}

// takesFlags reports whether words are flags of cmd, each with its value
// (the next word, unless written --name=value or a boolean flag).
func takesFlags(cmd *cli.Command, words []string) bool {
	for i := 0; i < len(words); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(words[i], "-"), "=")
		if len(words[i]) < 2 || words[i][0] != '-' || name == "help" || name == "h" {
			return false
		}
		f := commandFlag(cmd, name)
		if f == nil {
			return false
		}
		if _, isBool := f.(*cli.BoolFlag); !isBool && !hasValue {
			i++ // its value
			if i == len(words) {
				return false
			}
		}
	}
	return true
}

// commandFlag is cmd's flag of that name, or nil.
func commandFlag(cmd *cli.Command, name string) cli.Flag {
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}
