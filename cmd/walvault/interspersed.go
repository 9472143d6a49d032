package main

import (
	"slices"
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
	rest, afterDashes := args[2:], []string(nil)
	if i := slices.Index(rest, "--"); i >= 0 {
		rest, afterDashes = rest[:i], rest[i:]
	}
	flags, positional, _ := splitFlags(cmd, rest)
	if slices.ContainsFunc(flags, isHelpFlag) {
		// urfave/cli would take the first argument for a help topic.
		return append([]string{args[0], args[1]}, flags...)
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
		if cmd == nil || len(cmd.Subcommands) > 0 {
			continue
		}
		if _, positional, ok := splitFlags(cmd, args[1:i]); !ok || len(positional) > 0 {
			continue
		}
		out := append([]string{args[0], args[i]}, args[1:i]...)
		return append(out, args[i+1:]...)
	}
	return args
}

// splitFlags separates words into cmd's flags, each with its value (the
// next word, unless written --name=value or a boolean flag), and the other
// words. ok is false when a flag is not cmd's (--help included), whose
// value, if it has one, is then taken for a word of its own, or when the
// last flag lacks its value: cmd's parser reports either.
func splitFlags(cmd *cli.Command, words []string) (flags, others []string, ok bool) {
	ok = true
	for i := 0; i < len(words); i++ {
		w := words[i]
		if len(w) < 2 || w[0] != '-' {
			others = append(others, w)
			continue
		}
		flags = append(flags, w)
		name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		f := commandFlag(cmd, name)
		if f == nil {
			ok = false
			continue
		}
		if _, isBool := f.(*cli.BoolFlag); isBool || hasValue {
			continue
		}
		if i+1 == len(words) {
			ok = false
			continue
		}
		i++
		flags = append(flags, words[i])
	}
	return flags, others, ok
}

// isHelpFlag says whether a word is urfave/cli's help flag (-h, --help).
func isHelpFlag(w string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
	return strings.HasPrefix(w, "-") && (name == "h" || name == "help")
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
