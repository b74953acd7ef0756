package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/veil-e2ee/veil/client"
	"github.com/veil-e2ee/veil/client/devicestore"
)

// The client commands: each opens the profile in --home, does one thing
// and exits (recv and chat wait). Output is for people unless --json is
// given, then one JSON object per line.

// clientFlags are the flags every client command takes.
type clientFlags struct {
	home, server, passFile, keyFile string
	json                            bool
	progress                        func(client.Progress) // long operations, if the command shows them
}

// defaultDeviceName is the host's name, for the device list.
func defaultDeviceName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "veil cli"
	}
	if len(h) > client.MaxDeviceName {
		h = h[:client.MaxDeviceName]
	}
	return h
}

func defaultHome() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "veil")
	}
	return ".veil"
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.home, "home", defaultHome(), "profile `directory` holding this device's encrypted store")
	fs.StringVar(&f.server, "server", "", "server `URL` (default: the one the profile registered with; for register http://127.0.0.1:7450)")
	fs.StringVar(&f.passFile, "passphrase-file", "", "read the passphrase from this `file` (else $VEIL_PASSPHRASE, else a prompt)")
	fs.StringVar(&f.keyFile, "key-file", "", "unlock with this 32-byte key `file` instead of a passphrase")
	fs.BoolVar(&f.json, "json", false, "print one JSON object per line")
}

// newClientFlagSet makes a command's flag set with the common flags and
// a usage text.
func newClientFlagSet(name, synopsis, about string, stderr io.Writer) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet("veil "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &clientFlags{}
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: veil %s %s\n\n%s\n\nflags (also from the environment, e.g. --home as VEIL_HOME):\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs, f
}

// parseArgs parses flags that may come before, between or after the
// positional arguments, fills unset flags from the environment and
// checks the number of positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	if err := parseFlags(fs, nil, os.Getenv); err != nil {
		return nil, err
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

// unlock finds the secret that opens the store: a key file, a passphrase
// file, $VEIL_PASSPHRASE, or a prompt on the terminal (asked twice when
// creating).
func (f *clientFlags) unlock(creating bool, stderr io.Writer) (client.Unlock, error) {
	switch {
	case f.keyFile != "":
		b, err := os.ReadFile(f.keyFile)
		if err != nil {
			return client.Unlock{}, fmt.Errorf("reading the key file: %w", err)
		}
		if len(b) != 32 {
			return client.Unlock{}, fmt.Errorf("the key file %s must hold exactly 32 bytes (it has %d); make one with: head -c 32 /dev/urandom > FILE", f.keyFile, len(b))
		}
		return client.KeyFile(b), nil
	case f.passFile != "":
		b, err := os.ReadFile(f.passFile)
		if err != nil {
			return client.Unlock{}, fmt.Errorf("reading the passphrase file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return client.Unlock{}, fmt.Errorf("the passphrase file %s is empty", f.passFile)
		}
		return client.Passphrase(p), nil
	case os.Getenv("VEIL_PASSPHRASE") != "":
		return client.Passphrase(os.Getenv("VEIL_PASSPHRASE")), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return client.Unlock{}, errors.New("no passphrase: set VEIL_PASSPHRASE, or use --passphrase-file or --key-file (or run in a terminal to be asked)")
	}
	fmt.Fprint(stderr, "Passphrase for this device: ")
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return client.Unlock{}, err
	}
	if len(p) == 0 {
		return client.Unlock{}, errors.New("the passphrase is empty")
	}
	if creating {
		fmt.Fprint(stderr, "Once more: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return client.Unlock{}, err
		}
		if string(again) != string(p) {
			return client.Unlock{}, errors.New("the two passphrases differ")
		}
	}
	return client.Passphrase(string(p)), nil
}

// open opens the profile.
func (f *clientFlags) open(ctx context.Context, stderr io.Writer) (*client.Client, error) {
	u, err := f.unlock(false, stderr)
	if err != nil {
		return nil, err
	}
	c, err := client.Open(ctx, client.Config{Dir: f.home, Unlock: u, Server: f.server, Progress: f.progress})
	switch {
	case errors.Is(err, client.ErrNotRegistered):
		return nil, fmt.Errorf("no Veil profile in %s: run 'veil register USERNAME' first (or pass --home)", f.home)
	case errors.Is(err, devicestore.ErrWrongPassphrase):
		return nil, fmt.Errorf("wrong passphrase or key file for the profile in %s", f.home)
	}
	return c, err
}

// explain turns SDK errors into sentences for people.
func explain(err error) error {
	var ice *client.IdentityChangedError
	var se *client.ServerError
	var ude *client.UnverifiedDeviceError
	switch {
	case errors.As(err, &ude):
		return fmt.Errorf("%v.\n  Your message is kept. If this is your own account, remove the device with 'veil devices remove N'", err)
	case errors.As(err, &ice):
		who := ice.Username
		if who == "" {
			who = ice.AccountID
		}
		return fmt.Errorf("%s's safety number has changed. They may have reinstalled Veil, or someone may be intercepting your messages.\n"+
			"  New safety number: %s\n"+
			"  Compare it with %s (in person or on a call), then run: veil accept %s\n"+
			"  Your message is kept and goes out once you accept", who, ice.SafetyNumber, who, who)
	case errors.Is(err, client.ErrUnreachable):
		return fmt.Errorf("cannot reach the server (%v); check --server and that 'veil server' is running", err)
	case errors.Is(err, client.ErrDeviceRemoved):
		return errors.New("this device was removed from its account (or its credential is no longer valid)")
	case errors.As(err, &se):
		return fmt.Errorf("the server refused: %s (%s)", se.Message, se.Code)
	}
	return err
}

func printJSON(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "%s\n", b)
}

// ---- register -------------------------------------------------------------

func runRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("register", "[flags] USERNAME",
		"Creates this device's encrypted profile in --home and registers a new account\n"+
			"named USERNAME (3–32 lowercase letters, digits or _, starting with a letter).", stderr)
	kdfTime := fs.Uint("kdf-time", uint(devicestore.DefaultKDFParams.Time), "Argon2id passes for the passphrase")
	kdfMem := fs.Uint("kdf-memory", uint(devicestore.DefaultKDFParams.Memory), "Argon2id memory in `KiB` (lower it only for small devices)")
	devName := fs.String("device-name", defaultDeviceName(), "this device's `name` in your device list (encrypted; the server cannot read it)")
	trustRoot := fs.String("trust-root", "", "the server's sealed-sender trust root (`base64`, as 'veil server' logs it); registration stops if the server shows another")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if f.server == "" {
		f.server = "http://127.0.0.1:7450"
	}
	if !client.ValidUsername(pos[0]) {
		return fmt.Errorf("%q is not a valid username: use 3–32 lowercase letters, digits or _, starting with a letter", pos[0])
	}
	u, err := f.unlock(true, stderr)
	if err != nil {
		return err
	}
	kdf := devicestore.KDFParams{Time: uint32(*kdfTime), Memory: uint32(*kdfMem), Threads: devicestore.DefaultKDFParams.Threads}
	var root []byte
	if *trustRoot != "" {
		if root, err = base64.StdEncoding.DecodeString(*trustRoot); err != nil || len(root) != 33 {
			return errors.New("--trust-root must be the 33-byte key in base64, as 'veil server' logs it")
		}
	}
	c, err := client.Register(ctx, client.Config{Dir: f.home, Unlock: u, Server: f.server, DeviceName: *devName, TrustRoot: root,
		StoreOptions: []devicestore.Option{devicestore.WithKDFParams(kdf)}}, pos[0])
	switch {
	case errors.Is(err, client.ErrAlreadyRegistered):
		return fmt.Errorf("%s already holds a Veil profile; use another --home for another account", f.home)
	case errors.Is(err, client.ErrUsernameTaken):
		return fmt.Errorf("the username %q is taken; pick another", pos[0])
	case errors.Is(err, client.ErrProtocol) && root != nil:
		return fmt.Errorf("the server at %s does not show the trust root you gave: it is not the server you meant (nothing was registered)", f.server)
	case err != nil:
		return explain(err)
	}
	defer c.Close()
	s := c.Self()
	if f.json {
		printJSON(stdout, map[string]any{"username": s.Username, "account_id": s.AccountID, "device_id": s.DeviceID, "home": f.home, "server": s.Server})
		return nil
	}
	fmt.Fprintf(stdout, "Registered %s (account %s, device %d) on %s.\nThe profile is in %s, encrypted with your passphrase.\n", s.Username, s.AccountID, s.DeviceID, s.Server, f.home)
	return nil
}

// ---- send -----------------------------------------------------------------

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("send", "[flags] USERNAME MESSAGE...",
		"Sends MESSAGE to USERNAME (every device of theirs, and your other devices).\n"+
			"MESSAGE '-' reads the message from standard input.", stderr)
	pos, err := parseArgs(fs, args, 2, -1)
	if err != nil {
		return err
	}
	text := strings.Join(pos[1:], " ")
	if text == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, client.MaxTextBytes+1))
		if err != nil {
			return err
		}
		text = strings.TrimRight(string(b), "\n")
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := c.Send(ctx, pos[0], text)
	if err != nil {
		if errors.Is(err, client.ErrNoSuchUser) {
			return fmt.Errorf("there is no user %q on %s", pos[0], c.Self().Server)
		}
		return explain(err)
	}
	if f.json {
		printJSON(stdout, map[string]any{"id": m.ID, "to": pos[0], "status": m.Status.String(), "sent_at": m.SentAt.UTC().Format(time.RFC3339Nano)})
		return nil
	}
	if m.Status == client.Sent {
		fmt.Fprintf(stdout, "sent to %s\n", pos[0])
	} else {
		fmt.Fprintf(stdout, "queued for %s: the server cannot be reached now; it goes out with the next send, recv or chat\n", pos[0])
	}
	return nil
}

// ---- recv -----------------------------------------------------------------

func runRecv(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("recv", "[flags]",
		"Receives messages and prints them as they arrive, until interrupted.\n"+
			"With --once it returns when every waiting message is received.", stderr)
	once := fs.Bool("once", false, "return after the waiting messages instead of waiting for more")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	for ev, err := range c.Receive(ctx, client.ReceiveOptions{Once: *once}) {
		if err != nil {
			return explain(err)
		}
		printEvent(stdout, ev, f.json)
	}
	return nil
}

// printEvent prints an event for a person, or as JSON.
func printEvent(w io.Writer, ev client.Event, asJSON bool) {
	who := ev.Contact
	if who == "" {
		who = ev.ContactAccount
	}
	if asJSON {
		switch ev.Kind {
		case client.EventMessage, client.EventMessageUpdated:
			m := ev.Message
			from := m.Peer
			if m.Outgoing {
				from = "" // ours, from another device
			}
			typ := "message"
			if ev.Kind == client.EventMessageUpdated {
				typ = "message_updated"
			}
			obj := map[string]any{"type": typ, "id": m.ID, "conversation": m.Peer, "from": from, "outgoing": m.Outgoing,
				"body": m.Body, "edited": m.Edited, "deleted": m.Deleted, "reactions": m.Reactions,
				"sent_at": m.SentAt.UTC().Format(time.RFC3339Nano), "received_at": m.ReceivedAt.UTC().Format(time.RFC3339Nano)}
			if m.Group != "" {
				obj["group"], obj["conversation"] = m.Group, m.Group
			}
			printJSON(w, obj)
		case client.EventTimerChanged:
			printJSON(w, map[string]any{"type": "timer_changed", "contact": who, "group": ev.Group, "seconds": int64(ev.Timer / time.Second)})
		case client.EventGroupUpdated:
			printJSON(w, map[string]any{"type": "group_updated", "group": ev.Group, "name": ev.GroupName, "by": who, "changes": ev.GroupChanges})
		case client.EventIdentityChanged:
			printJSON(w, map[string]any{"type": "identity_changed", "contact": who, "safety_number": ev.SafetyNumber})
		case client.EventUndecryptable:
			printJSON(w, map[string]any{"type": "undecryptable", "contact": who})
		case client.EventLegalHold, client.EventLegalHoldLifted:
			h := *ev.Hold
			h.Username = who
			printJSON(w, holdJSON(ev.Kind.String(), h))
		}
		return
	}
	switch ev.Kind {
	case client.EventLegalHold:
		h := *ev.Hold
		h.Username = ev.Contact
		fmt.Fprintf(w, "! %s\n", h.Notice())
	case client.EventLegalHoldLifted:
		fmt.Fprintf(w, "! The legal hold on %s has been lifted: its compliance device is gone.\n", map[bool]string{true: "your account", false: who}[ev.Hold.Self])
	case client.EventMessage, client.EventMessageUpdated:
		fmt.Fprintln(w, formatMessage(ev.Message, ev.Kind == client.EventMessageUpdated))
	case client.EventIdentityChanged:
		fmt.Fprintf(w, "! %s's safety number has changed (they reinstalled, or someone is intercepting). New number: %s\n"+
			"  Messages to %s are held until you compare it and run: veil accept %s\n", who, ev.SafetyNumber, who, who)
	case client.EventUndecryptable:
		if who == "" {
			fmt.Fprintln(w, "! a sealed message could not be opened (its sender is unknown)")
			return
		}
		fmt.Fprintf(w, "! a message from %s could not be decrypted; they were asked to send it again\n", who)
	case client.EventTimerChanged:
		where := who
		if ev.Group != "" {
			where = "group " + ev.Group[:8]
		}
		fmt.Fprintf(w, "* %s: %s\n", where, timerText(ev))
	case client.EventGroupUpdated:
		for _, ch := range ev.GroupChanges {
			switch ch.Kind {
			case "created", "renamed":
				fmt.Fprintf(w, "* group %q %s by %s\n", ch.Name, ch.Kind, who)
			default:
				name := ch.Username
				if name == "" {
					name = ch.Member
				}
				fmt.Fprintf(w, "* group %q: %s %s\n", ev.GroupName, name, strings.ReplaceAll(ch.Kind, "_", " "))
			}
		}
	}
}

// formatMessage is one line for a person: time, local id (for edit,
// delete and react), who, the text, and its state.
func formatMessage(m client.Message, updated bool) string {
	name := m.Peer
	if name == "" {
		name = m.PeerAccount
	}
	who := name
	switch {
	case m.Group != "" && m.Outgoing:
		who = "you → group " + m.Group[:8]
	case m.Group != "":
		who = name + " → group " + m.Group[:8]
	case m.Outgoing:
		who = "you → " + name
	}
	body := m.Body
	switch {
	case m.Deleted:
		body = "(deleted)"
	case m.Edited:
		body += " (edited)"
	}
	var rs []string
	for _, k := range slices.Sorted(maps.Keys(m.Reactions)) {
		rs = append(rs, m.Reactions[k]+" "+k)
	}
	if len(rs) > 0 {
		body += "  [" + strings.Join(rs, ", ") + "]"
	}
	prefix := ""
	if updated {
		prefix = "~ "
	}
	return fmt.Sprintf("%s[%s] #%d %s: %s", prefix, m.SentAt.Local().Format("15:04"), m.ID, who, body)
}

// ---- contacts, messages ---------------------------------------------------

func runContacts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("contacts", "[flags]", "Lists your contacts and whether you verified their safety numbers.", stderr)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	cs, err := c.Contacts(ctx)
	if err != nil {
		return err
	}
	if f.json {
		for _, ct := range cs {
			printJSON(stdout, map[string]any{"username": ct.Username, "account_id": ct.AccountID, "trust": ct.Trust, "verified": ct.Verified()})
		}
		return nil
	}
	if len(cs) == 0 {
		fmt.Fprintln(stdout, "no contacts yet: 'veil send USERNAME MESSAGE' starts a conversation")
		return nil
	}
	for _, ct := range cs {
		name := ct.Username
		if name == "" {
			name = "(unknown) " + ct.AccountID
		}
		note := map[string]string{"verified": "verified", "trusted": "not verified", "changed": "SAFETY NUMBER CHANGED: veil accept " + name, "unknown": "no key yet"}[ct.Trust]
		fmt.Fprintf(stdout, "%-32s %s\n", name, note)
	}
	return nil
}

func runMessages(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("messages", "[flags] USERNAME", "Prints the conversation with USERNAME, oldest first.", stderr)
	limit := fs.Int("limit", 50, "show the last `N` messages")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	var all []client.Message
	for after := int64(0); ; {
		ms, err := c.Messages(ctx, pos[0], after, 1000)
		if err != nil {
			if errors.Is(err, client.ErrNoSuchUser) {
				return fmt.Errorf("%s is not one of your contacts", pos[0])
			}
			return err
		}
		if len(ms) == 0 {
			break
		}
		all = append(all, ms...)
		after = ms[len(ms)-1].ID
	}
	if *limit > 0 && len(all) > *limit {
		all = all[len(all)-*limit:]
	}
	if err := printHolds(ctx, c, pos[0], stdout, f.json); err != nil {
		return err
	}
	for _, m := range all {
		printEvent(stdout, client.Event{Kind: client.EventMessage, Message: m}, f.json)
	}
	return nil
}

// ---- verify, accept -------------------------------------------------------

// confirm asks a yes/no question on the terminal; without one it is no.
func confirm(stderr io.Writer, q string) bool {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return false
	}
	fmt.Fprintf(stderr, "%s [y/N] ", q)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("verify", "[flags] USERNAME",
		"Shows the safety number you share with USERNAME. Compare it with theirs (in person,\n"+
			"or on a call): if they match, nobody is in the middle. Then confirm, or pass the\n"+
			"number they read out with --safety-number, and USERNAME is marked verified.", stderr)
	given := fs.String("safety-number", "", "the `digits` USERNAME sees (spaces ignored): mark verified if they match")
	unverify := fs.Bool("remove", false, "take the verified mark away")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	who := pos[0]
	if *unverify {
		if err := c.Unverify(ctx, who); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "%s is no longer marked verified\n", who)
		return nil
	}
	sn, err := c.SafetyNumber(ctx, who)
	if err != nil {
		if errors.Is(err, client.ErrNoSuchUser) {
			return fmt.Errorf("there is no user %q", who)
		}
		return explain(err)
	}
	digits := *given
	if digits == "" {
		if f.json {
			printJSON(stdout, map[string]any{"contact": who, "safety_number": sn.String(), "verified": false})
			return nil
		}
		fmt.Fprintf(stdout, "Safety number with %s:\n\n    %s\n\n", who, groupLines(sn.String()))
		if !confirm(stderr, fmt.Sprintf("Does %s see the same number?", who)) {
			fmt.Fprintf(stdout, "Not marked verified. After comparing, run: veil verify %s --safety-number '<the number %s sees>'\n", who, who)
			return nil
		}
		digits = sn.Digits
	}
	switch err := c.Verify(ctx, who, digits); {
	case errors.Is(err, client.ErrSafetyNumberMismatch):
		return fmt.Errorf("the safety numbers do NOT match: %s was not marked verified. Someone may be intercepting your messages; do not trust this conversation until you find out why", who)
	case err != nil:
		return explain(err)
	}
	if f.json {
		printJSON(stdout, map[string]any{"contact": who, "safety_number": sn.String(), "verified": true})
		return nil
	}
	fmt.Fprintf(stdout, "%s is verified\n", who)
	return nil
}

// groupLines puts the 12 groups of a safety number on 3 lines.
func groupLines(s string) string {
	g := strings.Fields(s)
	var lines []string
	for i := 0; i < len(g); i += 4 {
		lines = append(lines, strings.Join(g[i:min(i+4, len(g))], " "))
	}
	return strings.Join(lines, "\n    ")
}

func runAccept(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("accept", "[flags] USERNAME",
		"Accepts USERNAME's new identity key after their safety number changed, so you can\n"+
			"write to them again (held messages go out). Compare the new number with them first.", stderr)
	given := fs.String("safety-number", "", "accept only if the new safety number is these `digits`")
	yes := fs.Bool("yes", false, "accept without asking (scripts)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	who := pos[0]
	ct, err := c.Contact(ctx, who)
	if err != nil {
		return fmt.Errorf("%s is not one of your contacts", who)
	}
	if ct.Trust != "changed" {
		fmt.Fprintf(stdout, "%s's safety number has not changed: nothing to accept\n", who)
		return nil
	}
	sn, err := c.SafetyNumber(ctx, who)
	if err != nil {
		return explain(err)
	}
	digits := *given
	if digits == "" {
		fmt.Fprintf(stdout, "New safety number with %s:\n\n    %s\n\n", who, groupLines(sn.String()))
		if !*yes && !confirm(stderr, fmt.Sprintf("Accept %s's new key?", who)) {
			return fmt.Errorf("not accepted; messages to %s stay held (pass --yes or --safety-number to accept without a prompt)", who)
		}
		digits = sn.Digits
	}
	if err := c.AcceptIdentity(ctx, who, digits); err != nil {
		if errors.Is(err, client.ErrSafetyNumberMismatch) {
			return fmt.Errorf("that is not %s's new safety number; nothing accepted", who)
		}
		return explain(err)
	}
	fmt.Fprintf(stdout, "accepted %s's new key; held messages are on their way\n", who)
	return nil
}

// ---- devices --------------------------------------------------------------

func runDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("devices", "[flags] [remove ID | add CODE]",
		"Lists your account's devices, removes one (veil devices remove 2), or approves a new\n"+
			"device that shows a link code (veil devices add CODE; see 'veil link').", stderr)
	pos, err := parseArgs(fs, args, 0, 2)
	if err != nil {
		return err
	}
	if len(pos) > 0 && ((pos[0] != "remove" && pos[0] != "add") || len(pos) != 2) {
		fs.Usage()
		return errUsage
	}
	if len(pos) == 2 && pos[0] == "add" {
		f.progress = progressBar(stderr) // the history export
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(pos) == 2 && pos[0] == "add" {
		return addDevice(ctx, c, pos[1], stdout, f.json)
	}
	if len(pos) == 2 {
		id, err := strconv.ParseUint(pos[1], 10, 32)
		if err != nil || id == 0 {
			return fmt.Errorf("%q is not a device id (see 'veil devices')", pos[1])
		}
		if err := c.RemoveDevice(ctx, uint32(id)); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "device %d removed\n", id)
		return nil
	}
	ds, err := c.Devices(ctx)
	if err != nil {
		return explain(err)
	}
	for _, d := range ds {
		if f.json {
			printJSON(stdout, map[string]any{"device_id": d.ID, "name": d.Name, "name_unreadable": d.NameUnreadable, "created": d.Created, "last_seen": d.LastSeen, "current": d.Current, "compliance": d.Compliance})
			continue
		}
		name := d.Name
		switch {
		case d.Compliance:
			name = "! LEGAL HOLD compliance device (run by the server's organisation; removed when the hold is lifted)"
		case d.NameUnreadable:
			name = "!! NOT LINKED BY YOUR DEVICES (its name does not decrypt): remove it unless you know it"
		case name == "":
			name = "(no name)"
		}
		cur := ""
		if d.Current {
			cur = "  (this device)"
		}
		fmt.Fprintf(stdout, "%3d  %-20s created %s  last seen %s%s\n", d.ID, name, d.Created, d.LastSeen, cur)
	}
	return nil
}

// ---- edit, delete, react, read ---------------------------------------------

// parseMessageID reads a local message id as shown by 'veil messages'
// (#12 or 12).
func parseMessageID(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%q is not a message id: 'veil messages USERNAME' shows them as #N", s)
	}
	return id, nil
}

func runEdit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("edit", "[flags] ID NEW TEXT...", "Replaces the text of one of your messages for everyone (ID from 'veil messages').", stderr)
	pos, err := parseArgs(fs, args, 2, -1)
	if err != nil {
		return err
	}
	return operate(ctx, f, stdout, stderr, pos[0], func(c *client.Client, id int64) (client.Message, error) {
		return c.Edit(ctx, id, strings.Join(pos[1:], " "))
	})
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("delete", "[flags] ID", "Deletes one of your messages for everyone, on every device (ID from 'veil messages').", stderr)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return operate(ctx, f, stdout, stderr, pos[0], func(c *client.Client, id int64) (client.Message, error) {
		return c.Delete(ctx, id)
	})
}

func runReact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("react", "[flags] ID EMOJI", "Reacts to a message (ID from 'veil messages'); EMOJI '-' removes your reaction.", stderr)
	pos, err := parseArgs(fs, args, 2, 2)
	if err != nil {
		return err
	}
	emoji := pos[1]
	if emoji == "-" {
		emoji = ""
	}
	return operate(ctx, f, stdout, stderr, pos[0], func(c *client.Client, id int64) (client.Message, error) {
		return c.React(ctx, id, emoji)
	})
}

func operate(ctx context.Context, f *clientFlags, stdout, stderr io.Writer, idArg string, fn func(*client.Client, int64) (client.Message, error)) error {
	id, err := parseMessageID(idArg)
	if err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := fn(c, id)
	if err != nil {
		return explain(err)
	}
	if f.json {
		printEvent(stdout, client.Event{Kind: client.EventMessageUpdated, Message: m}, true)
		return nil
	}
	fmt.Fprintln(stdout, formatMessage(m, false))
	return nil
}

func runRead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("read", "[flags] USERNAME", "Marks the conversation with USERNAME read, on all your devices.", stderr)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.MarkRead(ctx, pos[0]); err != nil {
		if errors.Is(err, client.ErrNoSuchUser) {
			return fmt.Errorf("%s is not one of your contacts", pos[0])
		}
		return explain(err)
	}
	return nil
}

// holdJSON is a legal hold as the --json output gives it.
func holdJSON(typ string, h client.LegalHold) map[string]any {
	return map[string]any{"type": typ, "account_id": h.AccountID, "contact": h.Username, "self": h.Self, "hold": h.HoldID,
		"device": h.DeviceID, "since": h.Since.UTC().Format(time.RFC3339)}
}

// printHolds shows the legal holds that concern a conversation, first
// and always (docs/COMPLIANCE.md).
func printHolds(ctx context.Context, c *client.Client, conversation string, w io.Writer, asJSON bool) error {
	hs, err := c.ConversationHolds(ctx, conversation)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if asJSON {
			printJSON(w, holdJSON("legal_hold", h))
		} else {
			fmt.Fprintf(w, "! %s\n", h.Notice())
		}
	}
	return nil
}

// runHolds lists the legal holds on this account and on the accounts it
// talks to, after asking the server for the current list.
func runHolds(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("holds", "[flags]", "Lists the disclosed legal holds on your account and on the people you talk to.", stderr)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.RefreshHolds(ctx); err != nil {
		return err
	}
	hs, err := c.LegalHolds(ctx)
	if err != nil {
		return err
	}
	if f.json {
		out := make([]map[string]any, 0, len(hs))
		for _, h := range hs {
			out = append(out, holdJSON("legal_hold", h))
		}
		printJSON(stdout, out)
		return nil
	}
	if len(hs) == 0 {
		fmt.Fprintln(stdout, "no legal holds on your account or on the people you talk to")
	}
	for _, h := range hs {
		fmt.Fprintf(stdout, "! %s\n", h.Notice())
	}
	return nil
}
