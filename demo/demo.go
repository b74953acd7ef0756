// Package demo runs Veil end to end on one machine: a real server on
// SQLite, and two clients that register, set up PQXDH sessions from the
// server's prekey bundles, exchange end-to-end encrypted messages over
// loopback HTTP and WebSocket, compare safety numbers, and finally search
// the server's database files for the plaintexts they sent (none found).
//
// The clients keep their keys, sessions and messages in encrypted device
// stores (client/devicestore); the plaintext search covers those files too.
//
// It is what `veil demo` runs.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/protocol"
	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// Options configure Run.
type Options struct {
	// Out receives the narration.
	Out io.Writer
	// DataDir holds the server's database; empty means a temporary
	// directory that is removed afterwards.
	DataDir string
}

// conversation is what the demo says.
var conversation = []struct{ from, text string }{
	{"alice", "Hi Bob! This message is encrypted on my device; the server only relays ciphertext."},
	{"alice", "It was set up with PQXDH: X25519 plus Kyber1024, so it resists a future quantum computer."},
	{"bob", "Hi Alice, got both. My reply moves the Double Ratchet forward: new keys for every message."},
	{"alice", "Then let's compare safety numbers to be sure nobody is in the middle."},
}

// Run starts the server, runs the conversation and checks the result.
func Run(ctx context.Context, o Options) error {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	dir := o.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "veil-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "server"), 0o700); err != nil {
		return err
	}
	dbPath := filepath.Join(dir, "server", "veil.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("demo: opening the database: %w", err)
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
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	base := "http://" + l.Addr().String()
	fmt.Fprintf(out, "server   listening on %s, SQLite database %s\n", base, dbPath)

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	suffix := fmt.Sprintf("%04d", time.Now().UnixNano()%10000)
	users := map[string]*client{}
	for _, name := range []string{"alice", "bob"} {
		// Each device's store is locked with a passphrase (Argon2id); the
		// demo draws one at random and forgets it at the end.
		pass := make([]byte, 18)
		if _, err := rand.Read(pass); err != nil {
			return err
		}
		c, err := newClient(ctx, name+"_"+suffix, base, filepath.Join(dir, name), fmt.Sprintf("%x", pass))
		if err != nil {
			return fmt.Errorf("demo: creating %s's device store: %w", name, err)
		}
		defer c.db.Close()
		if err := c.register(ctx); err != nil {
			return fmt.Errorf("demo: registering %s: %w", name, err)
		}
		users[name] = c
		fmt.Fprintf(out, "%-8s registered as %s (account %s, device %d); private keys stay in %s, encrypted\n",
			name, c.name, c.account, c.device, filepath.Join(dir, name))
	}
	alice, bob := users["alice"], users["bob"]

	// Each looks the other up by username.
	bobInfo, err := alice.lookup(ctx, bob.name)
	if err != nil {
		return err
	}
	aliceInfo, err := bob.lookup(ctx, alice.name)
	if err != nil {
		return err
	}
	peer := map[string]contact{"alice": bobInfo, "bob": aliceInfo}

	for _, m := range conversation {
		from := users[m.from]
		to, toName := bob, "bob"
		if m.from == "bob" {
			to, toName = alice, "alice"
		}
		if err := from.send(ctx, peer[m.from].AccountID, []uint32{1}, m.text); err != nil {
			return fmt.Errorf("demo: %s sending: %w", m.from, err)
		}
		got, err := to.receive(ctx, 1)
		if err != nil {
			return fmt.Errorf("demo: %s receiving: %w", toName, err)
		}
		kind := "SignalMessage"
		if got[0].Type == protocol.PreKeyMessageType {
			kind = "PreKeySignalMessage"
		}
		if got[0].Text != m.text {
			return fmt.Errorf("demo: %s decrypted %q, want %q", toName, got[0].Text, m.text)
		}
		fmt.Fprintf(out, "%-8s → %-5s %4d-byte %s, decrypted: %q\n", m.from, toName, got[0].Bytes, kind, got[0].Text)
	}

	// Safety numbers: each side computes it from what it trusts.
	aliceIDs, bobIDs := []byte(alice.account), []byte(bob.account)
	bobKey, _, err := alice.db.Identity(ctx, protocol.Address{Name: bob.account, DeviceID: 1})
	if err != nil {
		return err
	}
	aliceKey, _, err := bob.db.Identity(ctx, protocol.Address{Name: alice.account, DeviceID: 1})
	if err != nil {
		return err
	}
	sa, err := protocol.NewSafetyNumber(aliceIDs, alice.id.Public, bobIDs, bobKey)
	if err != nil {
		return err
	}
	sb, err := protocol.NewSafetyNumber(bobIDs, bob.id.Public, aliceIDs, aliceKey)
	if err != nil {
		return err
	}
	match, err := sa.MatchesScanned(sb.Scannable)
	if err != nil || !match || sa.Displayable != sb.Displayable {
		return errors.New("demo: safety numbers differ")
	}
	fmt.Fprintf(out, "safety number (both sides): %s\n", group(sa.Displayable))

	// What each device stored: every message it received, in its
	// encrypted database.
	want := map[string]int{}
	for _, m := range conversation {
		if m.from == "alice" {
			want["bob"]++
		} else {
			want["alice"]++
		}
	}
	for _, who := range []string{"alice", "bob"} {
		n, err := users[who].storedMessages(ctx)
		if err != nil {
			return err
		}
		if n != want[who] {
			return fmt.Errorf("demo: %s's device store holds %d messages, want %d", who, n, want[who])
		}
		fmt.Fprintf(out, "%-8s device store: %d received message(s), each committed with its ratchet state before the ack\n", who, n)
	}

	// The server's files hold ciphertext only, and the devices' databases
	// are encrypted at rest (their WAL too: they are scanned while open).
	for _, who := range []string{"alice", "bob"} {
		found, err := scanForPlaintext(filepath.Join(dir, who), conversation)
		if err != nil {
			return err
		}
		if found != "" {
			return fmt.Errorf("demo: plaintext %q found in %s's device store", found, who)
		}
	}
	srv.Shutdown(ctx)
	st.Close()
	found, err := scanForPlaintext(filepath.Join(dir, "server"), conversation)
	if err != nil {
		return err
	}
	if found != "" {
		return fmt.Errorf("demo: plaintext %q found in the server's files", found)
	}
	fmt.Fprintf(out, "files    server database and both device stores searched for every plaintext sent: none found\n")
	return nil
}

func group(digits string) string {
	var parts []string
	for i := 0; i+5 <= len(digits); i += 5 {
		parts = append(parts, digits[i:i+5])
	}
	return strings.Join(parts, " ")
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
