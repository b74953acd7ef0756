// Command veil is Veil's single binary: the server, the client commands
// (register, send, recv, chat, contacts, messages, verify, accept,
// devices, link, edit, delete, react, read), the demo and the benchmarks.
//
// # Usage
//
//	veil <command> [flags]
//
// Commands are listed in [commands]; each parses its own flags with the
// standard flag package, and every flag can also be set through an
// environment variable named VEIL_ plus the flag name in upper case with
// dashes as underscores (--tls-cert → VEIL_TLS_CERT). A flag given on the
// command line wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the dispatcher table; add new subcommands here.
var commands = map[string]command{
	"server":    {"run the Veil server", runServer},
	"demo":      {"run a server and two clients end to end on this machine", runDemo},
	"bench":     {"run benchmarks (veil bench server)", runBench},
	"register":  {"create this device's profile and a new account", runRegister},
	"send":      {"send a message: veil send USERNAME MESSAGE", runSend},
	"recv":      {"receive messages (--once: return when the queue is empty)", runRecv},
	"chat":      {"chat with someone, line by line", runChat},
	"contacts":  {"list contacts and their verification state", runContacts},
	"messages":  {"show the conversation with someone", runMessages},
	"verify":    {"compare safety numbers and mark a contact verified", runVerify},
	"accept":    {"accept a contact's new key after their safety number changed", runAccept},
	"devices":   {"list this account's devices, remove one, or approve a new one", runDevices},
	"link":      {"make this profile a new device of an existing account", runLink},
	"edit":      {"edit one of your messages, for everyone", runEdit},
	"delete":    {"delete one of your messages, for everyone", runDelete},
	"react":     {"react to a message", runReact},
	"read":      {"mark a conversation read on all your devices", runRead},
	"group":     {"groups: create, send, add, remove, leave, rename, admin, list", runGroup},
	"disappear": {"show or set a conversation's disappearing-messages timer", runDisappear},
	"search":    {"search your messages on this device (--reindex rebuilds the index)", runSearch},
	"backup":    {"encrypted backups: create, verify, restore, split, combine", runBackup},
	"account":   {"your account on the server: audit events, export, delete", runAccount},
	"holds":     {"list disclosed legal holds on your account and on the people you talk to", runHolds},
	"admin":     {"administer the server: backups, audit, data-subject rights, legal holds", runAdmin},
}

// errUsage means the arguments were wrong; the usage text has been printed.
var errUsage = errors.New("veil: usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "veil:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "veil: unknown command %q\n\n", args[0])
		usage(stderr)
		return errUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: veil <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'veil <command> -h' for a command's flags")
}

// envName is the environment variable for a flag.
func envName(flagName string) string {
	return "VEIL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", envName(f.Name), e)
			}
		}
	})
	return err
}
