package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"

	"github.com/veil-e2ee/veil/client"
	"github.com/veil-e2ee/veil/legalhold"
	"github.com/veil-e2ee/veil/legalhold/archive"
	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store"
)

// `veil admin keygen` and `veil admin legal-hold …`: disclosed legal
// holds (docs/COMPLIANCE.md). Requests, approvals and lifting run against
// the server's database like the other admin commands and are signed with
// the administrator's own key; the compliance device (`run`) is a client
// of the server.

// loadAdmins reads the admins file (default <data>/admins).
func loadAdmins(path, data string) (legalhold.Admins, error) {
	if path == "" {
		path = filepath.Join(data, "admins")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admins file (lines \"NAME PUBLIC-KEY\" from 'veil admin keygen'): %w", err)
	}
	defer f.Close()
	a, err := legalhold.ParseAdmins(f)
	if err != nil {
		return nil, fmt.Errorf("admins file %s: %w", path, err)
	}
	return a, nil
}

func loadAdminKey(path string) (*legalhold.AdminKey, error) {
	if path == "" {
		return nil, errors.New("--key: the administrator's key file (from 'veil admin keygen') is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return legalhold.ParseAdminKey(b)
}

func runAdminKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newAdminFlags("keygen", stderr)
	out := fs.String("out", "", "key file to write (default NAME.key in the current directory); it is secret: keep it 0600 and to yourself")
	pos, err := parseAdmin(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	k, err := legalhold.GenerateAdminKey(pos[0], rand.Reader)
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = pos[0] + ".key"
	}
	b, _ := k.MarshalText()
	fl, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the key (an existing file is never overwritten): %w", err)
	}
	if _, err := fl.Write(b); err != nil {
		fl.Close()
		return err
	}
	if err := fl.Close(); err != nil {
		return err
	}
	if f.json {
		return writeJSON(stdout, map[string]string{"name": k.Name, "key_file": path, "admins_line": k.AdminsLine()})
	}
	fmt.Fprintf(stdout, "key written to %s (secret)\nadd this line to the servers' admins file:\n%s\n", path, k.AdminsLine())
	return nil
}

// holdFlags are the flags the legal-hold commands share.
type holdFlags struct {
	*adminFlags
	admins, secretFile, key string
	approvals               int
}

func newHoldFlags(name string, stderr io.Writer, needKey bool) (*flag.FlagSet, *holdFlags) {
	fs, af := newAdminFlags("legal-hold "+name, stderr)
	f := &holdFlags{adminFlags: af}
	fs.StringVar(&f.admins, "admins", "", "the admins file the servers use (default <data>/admins)")
	fs.IntVar(&f.approvals, "approvals", server.DefaultHoldApprovals, "approvals a hold needs, as the servers' --legal-hold-approvals")
	fs.StringVar(&f.secretFile, "secret-file", "", "the server secret file (default <data>/server.secret): keys the audit log")
	if needKey {
		fs.StringVar(&f.key, "key", "", "your administrator key file (from 'veil admin keygen')")
	}
	return fs, f
}

// tool opens the database and returns the hold admin over it.
func (f *holdFlags) tool(ctx context.Context) (*server.HoldAdmin, func(), error) {
	admins, err := loadAdmins(f.admins, f.data)
	if err != nil {
		return nil, nil, err
	}
	path := f.secretFile
	if path == "" {
		path = filepath.Join(f.data, "server.secret")
	}
	secret, err := loadSecret(path, false)
	if err != nil {
		return nil, nil, fmt.Errorf("server secret (the hold is recorded in the audit log): %w", err)
	}
	st, err := f.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &server.HoldAdmin{Store: st, Secret: secret, Admins: admins, Approvals: f.approvals}, func() { st.Close() }, nil
}

func runAdminLegalHold(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"request": runHoldRequest, "approve": runHoldApprove, "lift": runHoldLift, "list": runHoldList,
		"run": runHoldRun, "archive": runHoldArchive,
	}
	usage := func() {
		fmt.Fprintln(stderr, `usage: veil admin legal-hold <command> [flags]

  request ACCOUNT --reason TEXT --key FILE   record a hold (your approval counts as the first)
  approve HOLD --key FILE                    add your approval (a hold needs --approvals distinct administrators)
  list [ACCOUNT]                             list holds and their approvals
  run HOLD --key FILE --server URL --home DIR --archive DIR --recipient AGE-RECIPIENT
                                             register the compliance device of an approved hold and archive
                                             what it receives, encrypted to the organisation's age key
  archive DIR --identity FILE                decrypt an archive and print its records as JSON lines
  lift HOLD --reason TEXT --key FILE         end a hold: its compliance device is removed

Every participant's device shows a hold while it is active. See docs/COMPLIANCE.md.`)
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	if c, ok := cmds[args[0]]; ok {
		return c(ctx, args[1:], stdout, stderr)
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage()
		return nil
	}
	fmt.Fprintf(stderr, "veil admin legal-hold: unknown command %q\n", args[0])
	usage()
	return errUsage
}

func printHold(w io.Writer, f *holdFlags, h *server.HoldInfo) error {
	if f.json {
		return writeJSON(w, h)
	}
	fmt.Fprintf(w, "hold %s on account %s: %s\n  reason: %s\n  requested by %s at %s\n  approved by %s (%d of %d needed)\n",
		h.ID, h.AccountID, h.State, h.Reason, h.RequestedBy, unix(h.RequestedAt), strings.Join(h.ApprovedBy, ", "), len(h.ApprovedBy), h.Needed)
	if h.DeviceID != 0 {
		fmt.Fprintf(w, "  compliance device %d, activated by %s at %s\n", h.DeviceID, h.ActivatedBy, unix(h.ActivatedAt))
	}
	if h.LiftedAt != 0 {
		fmt.Fprintf(w, "  lifted by %s at %s: %s\n", h.LiftedBy, unix(h.LiftedAt), h.LiftReason)
	}
	return nil
}

func unix(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }

func holdErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("no such hold (or account) in this database")
	}
	return err
}

// holdChange is request, approve and lift: one positional argument
// (parsed by parse), the administrator's key, the database; act does the
// change, and the hold is printed.
func holdChange[ID any](ctx context.Context, args []string, stdout, stderr io.Writer, name, posName, reasonHelp string,
	parse func(string) (ID, error), act func(*server.HoldAdmin, *legalhold.AdminKey, ID, string) (*server.HoldInfo, error)) (*server.HoldInfo, *holdFlags, error) {
	fs, f := newHoldFlags(name, stderr, true)
	var reason *string
	if reasonHelp != "" {
		reason = fs.String("reason", "", reasonHelp)
	}
	pos, err := parseAdmin(fs, args, 1, 1, posName)
	if err != nil {
		return nil, nil, err
	}
	id, err := parse(pos[0])
	if err != nil {
		return nil, nil, err
	}
	key, err := loadAdminKey(f.key)
	if err != nil {
		return nil, nil, err
	}
	t, done, err := f.tool(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	r := ""
	if reason != nil {
		r = *reason
	}
	h, err := act(t, key, id, r)
	if err != nil {
		return nil, nil, holdErr(err)
	}
	return h, f, printHold(stdout, f, h)
}

func runHoldRequest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	h, f, err := holdChange(ctx, args, stdout, stderr, "request", "ACCOUNT", "why (recorded with the hold and shown to administrators; required)", parseAccountArg,
		func(t *server.HoldAdmin, key *legalhold.AdminKey, id store.AccountID, reason string) (*server.HoldInfo, error) {
			return t.Request(ctx, key, id, reason)
		})
	if err == nil && !f.json {
		fmt.Fprintf(stdout, "next: another administrator runs 'veil admin legal-hold approve %s'\n", h.ID)
	}
	return err
}

func runHoldApprove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, _, err := holdChange(ctx, args, stdout, stderr, "approve", "HOLD", "", server.ParseHoldID,
		func(t *server.HoldAdmin, key *legalhold.AdminKey, id [16]byte, _ string) (*server.HoldInfo, error) {
			return t.Approve(ctx, key, id)
		})
	return err
}

func runHoldLift(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, _, err := holdChange(ctx, args, stdout, stderr, "lift", "HOLD", "why the hold ends (recorded; required)", server.ParseHoldID,
		func(t *server.HoldAdmin, key *legalhold.AdminKey, id [16]byte, reason string) (*server.HoldInfo, error) {
			return t.Lift(ctx, key, id, reason)
		})
	return err
}

func runHoldList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newHoldFlags("list", stderr, false)
	pos, err := parseAdmin(fs, args, 0, 1, "[ACCOUNT]")
	if err != nil {
		return err
	}
	var acct *store.AccountID
	if len(pos) == 1 {
		id, err := parseAccountArg(pos[0])
		if err != nil {
			return err
		}
		acct = &id
	}
	t, done, err := f.tool(ctx)
	if err != nil {
		return err
	}
	defer done()
	hs, err := t.List(ctx, acct)
	if err != nil {
		return err
	}
	if f.json {
		return writeJSON(stdout, hs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOLD\tACCOUNT\tSTATE\tAPPROVED BY\tDEVICE\tREASON")
	for _, h := range hs {
		dev := "-"
		if h.DeviceID != 0 {
			dev = fmt.Sprint(h.DeviceID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.AccountID, h.State, strings.Join(h.ApprovedBy, ","), dev, h.Reason)
	}
	return tw.Flush()
}

// runHoldRun is the compliance device: it registers (once) for an
// approved hold, then receives until the hold is lifted, archiving every
// message it stores to the organisation's age recipient.
func runHoldRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newHoldFlags("run", stderr, true)
	srv := fs.String("server", "", "the server's URL (default $VEIL_SERVER)")
	home := fs.String("home", "", "the compliance device's profile directory (created on first run; its key file device.key is inside: protect the directory)")
	dir := fs.String("archive", "", "archive directory (age-encrypted segments)")
	recip := fs.String("recipient", "", "the organisation's age recipient (age1…) the archive is encrypted to")
	once := fs.Bool("once", false, "archive what is waiting, then exit (default: run until the hold is lifted)")
	pos, err := parseAdmin(fs, args, 1, 1, "HOLD")
	if err != nil {
		return err
	}
	if *home == "" || *dir == "" || *recip == "" {
		return errors.New("--home, --archive and --recipient are required")
	}
	if *srv == "" {
		*srv = os.Getenv("VEIL_SERVER")
	}
	r, err := age.ParseX25519Recipient(*recip)
	if err != nil {
		return fmt.Errorf("--recipient: %w", err)
	}
	c, err := openCompliance(ctx, f, pos[0], *srv, *home, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	n := 0
	flush := func() error {
		k, err := archiveNew(ctx, c, *dir, r)
		n += k
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	for ev, err := range c.Receive(ctx, client.ReceiveOptions{Once: *once}) {
		if errors.Is(err, client.ErrDeviceRemoved) {
			if err := flush(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "the hold was lifted and the compliance device removed; archived %d messages in %s\n", n, *dir)
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Kind == client.EventMessage || ev.Kind == client.EventQueueEmpty {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "archived %d messages in %s\n", n, *dir)
	return nil
}

// openCompliance opens the compliance device's profile in home, or
// registers it for the hold with the administrator's key.
func openCompliance(ctx context.Context, f *holdFlags, hold, srv, home string, stderr io.Writer) (*client.Client, error) {
	keyPath := filepath.Join(home, "device.key")
	dk, err := os.ReadFile(keyPath)
	if err == nil {
		return client.Open(ctx, client.Config{Dir: home, Unlock: client.KeyFile(dk), Server: srv})
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, err := loadAdminKey(f.key)
	if err != nil {
		return nil, err
	}
	if srv == "" {
		return nil, errors.New("--server (or $VEIL_SERVER) is required to register the compliance device")
	}
	dk = make([]byte, 32)
	if _, err := rand.Read(dk); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	c, err := client.RegisterCompliance(ctx, client.Config{Dir: home, Unlock: client.KeyFile(dk), Server: srv}, hold, key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, dk, 0o600); err != nil {
		c.Close()
		return nil, err
	}
	fmt.Fprintf(stderr, "compliance device %d registered for account %s; every participant now sees the hold\n", c.Self().DeviceID, c.Self().AccountID)
	return c, nil
}

// archiveNew appends the messages stored since the archive's cursor.
func archiveNew(ctx context.Context, c *client.Client, dir string, r age.Recipient) (int, error) {
	n := 0
	for {
		cur, err := archive.Cursor(dir)
		if err != nil {
			return n, err
		}
		ms, err := c.MessagesAfter(ctx, cur, 500)
		if err != nil || len(ms) == 0 {
			return n, err
		}
		self := c.Self()
		recs := make([]archive.Record, 0, len(ms))
		for _, m := range ms {
			rec := archive.Record{ID: m.ID, Account: self.AccountID, Conversation: m.PeerAccount, Group: m.Group, Direction: "in",
				Sender: m.PeerAccount, SenderName: m.Peer, SenderDevice: m.SenderDevice, Body: m.Body,
				SentAt: m.SentAt.UnixMilli(), ReceivedAt: m.ReceivedAt.UnixMilli()}
			if m.Group != "" {
				rec.Conversation = "g:" + m.Group
			}
			if m.Outgoing {
				rec.Direction, rec.Sender, rec.SenderName, rec.PeerName = "out", self.AccountID, self.Username, m.Peer
			}
			recs = append(recs, rec)
		}
		if err := archive.Append(dir, recs, r); err != nil {
			return n, err
		}
		n += len(recs)
	}
}

func runHoldArchive(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs, _ := newAdminFlags("legal-hold archive", stderr)
	idFile := fs.String("identity", "", "the organisation's age identity file (AGE-SECRET-KEY-1…)")
	pos, err := parseAdmin(fs, args, 1, 1, "DIR")
	if err != nil {
		return err
	}
	b, err := os.ReadFile(*idFile)
	if err != nil {
		return fmt.Errorf("--identity: %w", err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("--identity: %w", err)
	}
	return archive.Read(pos[0], func(r archive.Record) error { return writeJSON(stdout, r) }, ids...)
}
