package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/veil-e2ee/veil/client"
	"github.com/veil-e2ee/veil/client/devicestore"
)

// runLink makes --home a new device of an existing account: it shows a
// link code (and its QR code) and waits for a device of the account to
// approve it with 'veil devices add CODE'.
func runLink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("link", "[flags]",
		"Makes this profile a new device of one of your accounts. It shows a link code;\n"+
			"on a device that already has the account run 'veil devices add CODE'. The code\n"+
			"is a secret that lets that device hand over your identity: show it only to\n"+
			"your own device. With --json the code is printed as JSON and the command waits.", stderr)
	wait := fs.Duration("timeout", 10*time.Minute, "how long to wait for the approval")
	kdfTime := fs.Uint("kdf-time", uint(devicestore.DefaultKDFParams.Time), "Argon2id passes for the passphrase")
	kdfMem := fs.Uint("kdf-memory", uint(devicestore.DefaultKDFParams.Memory), "Argon2id memory in `KiB`")
	noQR := fs.Bool("no-qr", false, "do not draw the QR code")
	devName := fs.String("device-name", defaultDeviceName(), "this device's `name` in your device list (encrypted)")
	codeFile := fs.String("code-file", "", "also write the code to this `file` (0600), for another program to pass on")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if f.server == "" {
		f.server = "http://127.0.0.1:7450"
	}
	u, err := f.unlock(true, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	kdf := devicestore.KDFParams{Time: uint32(*kdfTime), Memory: uint32(*kdfMem), Threads: devicestore.DefaultKDFParams.Threads}
	c, err := client.Link(ctx, client.Config{Dir: f.home, Unlock: u, Server: f.server, Progress: progressBar(stderr), DeviceName: *devName,
		StoreOptions: []devicestore.Option{devicestore.WithKDFParams(kdf)}}, func(code string) {
		if *codeFile != "" {
			if err := os.WriteFile(*codeFile, []byte(code+"\n"), 0o600); err != nil {
				fmt.Fprintln(stderr, "veil: writing the code file:", err)
			}
		}
		if f.json {
			printJSON(stdout, map[string]any{"type": "link_code", "code": code})
			return
		}
		fmt.Fprintf(stdout, "On a device that has your account, run:\n\n    veil devices add %s\n\n", code)
		if !*noQR {
			if q, err := qrcode.New(code, qrcode.Low); err == nil {
				fmt.Fprintln(stdout, q.ToSmallString(false))
			}
		}
		fmt.Fprintln(stdout, "waiting for the approval…")
	})
	if errors.Is(err, client.ErrHistoryMissing) && c != nil {
		fmt.Fprintf(stderr, "veil: %v\n", err)
		err = nil
	}
	switch {
	case errors.Is(err, client.ErrAlreadyRegistered):
		return fmt.Errorf("%s already holds a Veil profile; use another --home for the new device", f.home)
	case errors.Is(err, client.ErrDeviceLimit):
		return errors.New("the account already has the maximum number of devices; remove one with 'veil devices remove N' on another device")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the code was not approved within %s; run 'veil link' again for a new code", *wait)
	case err != nil:
		return explain(err)
	}
	defer c.Close()
	s := c.Self()
	if f.json {
		printJSON(stdout, map[string]any{"type": "linked", "username": s.Username, "account_id": s.AccountID, "device_id": s.DeviceID, "home": f.home})
		return nil
	}
	fmt.Fprintf(stdout, "Linked: this is device %d of %s.\n", s.DeviceID, s.Username)
	return nil
}

// progressBar draws history-transfer progress on w (a terminal's
// standard error), one line per stage, updated in place.
func progressBar(w io.Writer) func(client.Progress) {
	last := ""
	return func(p client.Progress) {
		if p.Stage != last && last != "" {
			fmt.Fprintln(w)
		}
		last = p.Stage
		unit := "messages"
		if p.Stage == "upload" || p.Stage == "download" {
			unit = "bytes"
		}
		if p.Total <= 0 {
			fmt.Fprintf(w, "\rhistory %-8s …", p.Stage)
			return
		}
		const width = 30
		n := width * p.Done / p.Total
		fmt.Fprintf(w, "\rhistory %-8s [%s%s] %d/%d %s", p.Stage, strings.Repeat("#", n), strings.Repeat(".", width-n), p.Done, p.Total, unit)
		if p.Done >= p.Total && p.Stage == "import" {
			fmt.Fprintln(w)
		}
	}
}

// addDevice approves a link code shown by a new device.
func addDevice(ctx context.Context, c *client.Client, code string, stdout io.Writer, asJSON bool) error {
	if err := c.ApproveLink(ctx, code); err != nil {
		if errors.Is(err, client.ErrInvalidArgument) {
			return fmt.Errorf("that is not a usable link code: %v", err)
		}
		return explain(err)
	}
	if asJSON {
		printJSON(stdout, map[string]any{"approved": true})
		return nil
	}
	fmt.Fprintln(stdout, "approved: the new device is joining your account")
	return nil
}
