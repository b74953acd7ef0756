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
	keep := fs.String("keep", "", "keep the server's database and both device stores in this `directory` (default: a temporary directory, removed afterwards)")
	fs.Usage = func() {
		io.WriteString(stderr, "usage: veil demo [--keep DIR]\n\nStarts a Veil server on SQLite and two people, alice and bob, whose devices talk\nend to end over loopback; shows what each sees and what the server's database\nholds, compares safety numbers, then searches every file for the plaintexts.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, func(string) string { return "" }); err != nil {
		return err
	}
	return demo.Run(ctx, demo.Options{Out: stdout, Keep: *keep})
}
