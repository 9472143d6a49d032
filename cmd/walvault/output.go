package main

import (
	"encoding/json"
	"io"

	"github.com/urfave/cli/v2"
)

// jsonFlag is --json; usage says what it prints.
func jsonFlag(usage string, dst *bool) cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: usage, Destination: dst}
}

// writeJSON prints v as indented JSON: every --json output.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
