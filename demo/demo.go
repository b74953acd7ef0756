// Package demo runs Veil end to end on one machine: a real server on
// SQLite on a loopback port, and two people, alice and bob, each with a
// device built on the client SDK (package client) and its encrypted
// device store. They register, exchange messages both ways, and compare
// safety numbers. For every message the demo shows what the sender
// wrote, what the server's database holds at that moment (sizes and
// ciphertext) and what the recipient read; at the end it searches the
// server's files and both device stores for every plaintext (none found).
//
// It is what `veil demo` runs.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql "sqlite3": a read-only look at the server's file

	"github.com/veil-e2ee/veil/client"
	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// Options configure Run.
type Options struct {
	// Out receives the narration.
	Out io.Writer
	// Keep, when set, is where the server's database and both device
	// stores are kept for inspection (with each device's passphrase in a
	// file beside its store). Empty means a temporary directory that is
	// removed afterwards.
	Keep string
}

// conversation is what the demo says.
var conversation = []struct{ from, text string }{
	{"alice", "Hi Bob! This is encrypted on my device; the server only relays ciphertext."},
	{"alice", "The session was set up with PQXDH: X25519 plus Kyber1024, against future quantum computers."},
	{"bob", "Hi Alice, got both. My reply turns the Double Ratchet: new keys for every message."},
	{"alice", "Then let's compare safety numbers to be sure nobody is in the middle."},
	{"bob", "Done: they match, so I marked you verified."},
}

// Run starts the server, runs the conversation and checks the result.
func Run(ctx context.Context, o Options) error {
	start := time.Now()
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	dir := o.Keep
	if dir != "" {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			return fmt.Errorf("demo: %s is not empty; --keep needs a new or empty directory", dir)
		}
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "veil-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if err := os.MkdirAll(filepath.Join(dir, "server"), 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	// The server, exactly as `veil server` runs it, on a loopback port.
	dbPath := filepath.Join(dir, "server", "veil.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("demo: opening the server database: %w", err)
	}
	defer st.Close()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	srv, err := server.New(server.Config{Store: st, Secret: secret})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv.Start(l)
	stopServer := sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		st.Close()
	})
	defer stopServer()
	base := "http://" + l.Addr().String()
	fmt.Fprintf(out, "server  %s, SQLite database %s\n", base, dbPath)
	look, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro")
	if err != nil {
		return err
	}
	defer look.Close()

	// Two people, each with a device whose store is locked by a passphrase
	// (Argon2id at the default cost). They register at the same time.
	suffix := fmt.Sprintf("%04d", time.Now().UnixNano()%10000)
	names := []string{"alice", "bob"}
	devices := make([]*client.Client, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			devices[i], errs[i] = newDevice(ctx, dir, name, name+"_"+suffix, base, o.Keep != "")
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("demo: registering: %w", err)
	}
	for _, d := range devices {
		defer d.Close()
		s := d.Self()
		fmt.Fprintf(out, "%-7s registered as %s (account %s); keys and messages stay in %s, encrypted\n",
			strings.TrimSuffix(s.Username, "_"+suffix), s.Username, s.AccountID, filepath.Join(dir, strings.TrimSuffix(s.Username, "_"+suffix)))
	}
	alice, bob := devices[0], devices[1]
	who := map[string]*client.Client{"alice": alice, "bob": bob}
	other := map[string]string{"alice": "bob", "bob": "alice"}

	const col = 34
	fmt.Fprintf(out, "\n%-*s │ %-*s │ %s\n", col, "alice's screen", col+6, "server database (envelopes table)", "bob's screen")
	fmt.Fprintf(out, "%s┼%s┼%s\n", strings.Repeat("─", col+1), strings.Repeat("─", col+8), strings.Repeat("─", col+1))
	for _, m := range conversation {
		from, to := who[m.from], who[other[m.from]]
		if _, err := from.Send(ctx, to.Self().Username, m.text); err != nil {
			return fmt.Errorf("demo: %s sending: %w", m.from, err)
		}
		row, err := queued(ctx, look, to.Self().AccountID)
		if err != nil {
			return err
		}
		got, err := receive(ctx, to)
		if err != nil {
			return fmt.Errorf("demo: %s receiving: %w", other[m.from], err)
		}
		if got != m.text {
			return fmt.Errorf("demo: %s read %q, want %q", other[m.from], got, m.text)
		}
		left, right := "> "+m.text, "< "+got
		if m.from == "bob" {
			left, right = "< "+got, "> "+m.text
		}
		for i, cell := range row {
			l, r := "", ""
			if i == 0 {
				l, r = clip(left, col), clip(right, col)
			}
			fmt.Fprintln(out, strings.TrimRight(fmt.Sprintf("%-*s │ %-*s │ %s", col, l, col+6, cell, r), " "))
		}
	}

	// Safety numbers: each side computes it from the keys it holds.
	sa, err := alice.SafetyNumber(ctx, bob.Self().Username)
	if err != nil {
		return err
	}
	sb, err := bob.SafetyNumber(ctx, alice.Self().Username)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nsafety number on alice's device: %s\nsafety number on bob's device:   %s\n", sa, sb)
	if err := alice.Verify(ctx, bob.Self().Username, sb.Digits); err != nil {
		return fmt.Errorf("demo: safety numbers differ: %w", err)
	}
	if err := bob.Verify(ctx, alice.Self().Username, sa.Digits); err != nil {
		return fmt.Errorf("demo: safety numbers differ: %w", err)
	}
	fmt.Fprintln(out, "they match: each marks the other verified")

	// Each device holds the whole conversation, sent and received.
	for _, name := range names {
		ms, err := who[name].Messages(ctx, who[other[name]].Self().Username, 0, 100)
		if err != nil {
			return err
		}
		if len(ms) != len(conversation) {
			return fmt.Errorf("demo: %s's device holds %d messages, want %d", name, len(ms), len(conversation))
		}
	}

	// Nothing readable anywhere: the device stores are scanned while open
	// (their write-ahead logs too) and the server's files after shutdown.
	for _, name := range names {
		if found, err := scanForPlaintext(filepath.Join(dir, name), conversation); err != nil || found != "" {
			return errors.Join(err, fmtFound(found, name+"'s device store"))
		}
	}
	stopServer()
	if found, err := scanForPlaintext(filepath.Join(dir, "server"), conversation); err != nil || found != "" {
		return errors.Join(err, fmtFound(found, "the server's files"))
	}
	fmt.Fprintf(out, "\nevery message pads to a multiple of 80 bytes before encryption, so sizes say little about the text\n")
	fmt.Fprintf(out, "once each has the other's profile key (it rides inside the first messages), messages go sealed: the server stores no sender\n")
	fmt.Fprintf(out, "searched the server's database files and both device stores for every plaintext: none found\n")
	if o.Keep != "" {
		fmt.Fprintf(out, "kept in %s; to read alice's device, for example:\n  veil messages --home %s --passphrase-file %s %s\n",
			dir, filepath.Join(dir, "alice"), filepath.Join(dir, "alice.passphrase"), bob.Self().Username)
	}
	fmt.Fprintf(out, "done in %.1f s\n", time.Since(start).Seconds())
	return nil
}

func fmtFound(found, where string) error {
	if found == "" {
		return nil
	}
	return fmt.Errorf("demo: plaintext %q found in %s", found, where)
}

// newDevice registers a person with a random passphrase (kept in a file
// beside the store when keep is set, so a person can open it).
func newDevice(ctx context.Context, dir, name, username, server string, keep bool) (*client.Client, error) {
	pass := make([]byte, 18)
	if _, err := rand.Read(pass); err != nil {
		return nil, err
	}
	p := hex.EncodeToString(pass)
	if keep {
		if err := os.WriteFile(filepath.Join(dir, name+".passphrase"), []byte(p+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	return client.Register(ctx, client.Config{Dir: filepath.Join(dir, name), Unlock: client.Passphrase(p), Server: server}, username)
}

// queued describes the envelope the server holds for a recipient right
// now, as the database stores it.
func queued(ctx context.Context, db *sql.DB, account string) ([]string, error) {
	id, err := uuidBytes(account)
	if err != nil {
		return nil, err
	}
	var (
		dev, typ, size int
		head           []byte
		hasSender      bool
	)
	err = db.QueryRowContext(ctx, `SELECT device_id, type, length(content), substr(content, 1, 14), sender_id IS NOT NULL
		FROM envelopes WHERE account_id = ? ORDER BY id DESC LIMIT 1`, id).Scan(&dev, &typ, &size, &head, &hasSender)
	if err != nil {
		return nil, fmt.Errorf("demo: reading the server's envelope: %w", err)
	}
	kind := map[int]string{2: "Signal", 3: "PreKey", 6: "sealed"}[typ]
	if hasSender {
		kind += ", sender known"
	} else {
		kind += ", no sender"
	}
	return []string{
		fmt.Sprintf("device %d: %d B, %s", dev, size, kind),
		fmt.Sprintf("%x…", head),
	}, nil
}

func receive(ctx context.Context, c *client.Client) (string, error) {
	var got []string
	for ev, err := range c.Receive(ctx, client.ReceiveOptions{Once: true}) {
		if err != nil {
			return "", err
		}
		if ev.Kind == client.EventMessage {
			got = append(got, ev.Message.Body)
		}
	}
	if len(got) != 1 {
		return "", fmt.Errorf("received %d messages, want 1", len(got))
	}
	return got[0], nil
}

func uuidBytes(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("demo: account id %q", s)
	}
	return b, nil
}

// clip shortens s to n characters.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// scanForPlaintext reads every file in dir and reports the first message
// text (or a 16-byte piece of one) found in any of them.
func scanForPlaintext(dir string, msgs []struct{ from, text string }) (string, error) {
	var found string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			for i := 0; i+16 <= len(m.text); i += 8 {
				if bytes.Contains(data, []byte(m.text[i:i+16])) {
					found = m.text[i : i+16]
					return nil
				}
			}
		}
		return nil
	})
	return found, err
}
