package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// veil account: what the server records and holds about your account.

const accountUsage = `usage: veil account SUBCOMMAND [flags]

  audit       the security events the server recorded about your account
  export      everything the server holds about your account (JSON)
  delete      erase your account on the server (--yes); prints the signed receipt`

func runAccount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, accountUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub := args[0]
	fs, f := newClientFlagSet("account "+sub, "[flags]", "See 'veil account'.", stderr)
	yes := false
	if sub == "delete" {
		fs.BoolVar(&yes, "yes", false, "really erase the account (no undo)")
	}
	if _, err := parseArgs(fs, args[1:], 0, 0); err != nil {
		return err
	}
	switch sub {
	case "audit", "export", "delete":
	default:
		fmt.Fprintf(stderr, "veil account: unknown subcommand %q\n\n%s\n", sub, accountUsage)
		return errUsage
	}
	if sub == "delete" && !yes {
		return errors.New("this erases your account and everything the server holds about it, for good: run again with --yes")
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	switch sub {
	case "audit":
		evs, err := c.AuditLog(ctx)
		if err != nil {
			return explain(err)
		}
		for _, ev := range evs {
			if f.json {
				printJSON(stdout, ev)
				continue
			}
			var ds []string
			for k, v := range ev.Details {
				ds = append(ds, k+"="+v)
			}
			dev := ""
			if ev.Device != 0 {
				dev = fmt.Sprintf(" device %d", ev.Device)
			}
			fmt.Fprintf(stdout, "%s  #%d %s%s %s\n", ev.Time.Local().Format("2006-01-02 15:04"), ev.Seq, ev.Type, dev, strings.Join(ds, " "))
		}
		if len(evs) == 0 && !f.json {
			fmt.Fprintln(stdout, "no events recorded")
		}
	case "export":
		raw, err := c.ExportAccountData(ctx)
		if err != nil {
			return explain(err)
		}
		return printRaw(stdout, raw, f.json)
	case "delete":
		raw, err := c.DeleteAccount(ctx)
		if err != nil {
			return explain(err)
		}
		if !f.json {
			fmt.Fprintf(stdout, "your account is erased on the server; delete %s to remove this device's copy. Receipt:\n", f.home)
		}
		return printRaw(stdout, raw, f.json)
	}
	return nil
}

func printRaw(w io.Writer, raw json.RawMessage, compact bool) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	var b []byte
	if compact {
		b, _ = json.Marshal(v)
	} else {
		b, _ = json.MarshalIndent(v, "", "  ")
	}
	_, err := fmt.Fprintf(w, "%s\n", b)
	return err
}
