package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersedFlags sets the flags that follow a positional argument
// ("backup-mark ID --keep", as the README writes it) and returns the
// positional arguments. urfave/cli v2 hands everything after the first
// argument to the command as arguments (Go's flag package stops there) and
// has no option to go on parsing (v3 does); so a command whose arguments
// come before its flags calls this first. Flags the command does not
// declare are usage errors, as they are before the argument.
func interspersedFlags(c *cli.Context) ([]string, error) {
	bools := map[string]bool{}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			known[n], bools[n] = true, isBool
		}
	}
	var positional []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(positional, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			return nil, usagef("flag provided but not defined: -%s", name)
		}
		switch {
		case hasValue:
		case bools[name]:
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			return nil, usagef("flag needs an argument: -%s", name)
		}
		if err := c.Set(name, value); err != nil {
			return nil, usagef("invalid value %q for flag -%s: %v", value, name, err)
		}
	}
	return positional, nil
}

// commandFlagsFirst moves the flags written before the command word to just
// after it ("walvault --config F wal-push %p", the order WAL-G and
// pgBackRest take), where the command parses them: walvault has no flags of
// its own besides --help and --version, and an archive_command written that
// way would otherwise fail on every segment. args is returned unchanged
// when the words before the command are not all flags the command takes,
// so the usual usage errors still name what is wrong.
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
