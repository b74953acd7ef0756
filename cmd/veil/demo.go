package main

import (
	"context"
	"flag"
	"io"

	"github.com/veil-e2ee/veil/demo"
)

// runDemo runs a real server on SQLite and two clients over loopback.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("veil demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "keep the demo server's database in this directory (default: a temporary directory, removed afterwards)")
	fs.Usage = func() {
		io.WriteString(stderr, "usage: veil demo [--data DIR]\n\nStarts a Veil server on SQLite and two clients, alice and bob, that talk\nend to end over loopback; then searches the server's files for the plaintexts.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, func(string) string { return "" }); err != nil {
		return err
	}
	return demo.Run(ctx, demo.Options{Out: stdout, DataDir: *data})
}
