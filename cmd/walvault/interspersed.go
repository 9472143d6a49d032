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
