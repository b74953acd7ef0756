package devicestore

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ncruces/go-sqlite3/driver"
	"golang.org/x/crypto/argon2"

	"github.com/veil-e2ee/veil/protocol"
)

// secrets are byte strings that must not appear in any file of a store.
type secrets map[string][]byte

// scan reports which secrets occur in which of the store's files, and
// how many bytes it read.
func scan(t *testing.T, dir string, want secrets) (found []string, read int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		read += len(b)
		for name, s := range want {
			if bytes.Contains(b, s) {
				found = append(found, fmt.Sprintf("%s in %s", name, e.Name()))
			}
		}
	}
	return found, read
}

// TestNoPlaintextOnDisk writes messages with unique markers, our identity
// private key, prekeys and the account credential, then greps every file
// of the store — database, WAL (before any checkpoint), shared-memory
// index and header — for them and for every key derived from the
// passphrase. Then it closes the store and greps again. A control run
// writes the same data to an unencrypted SQLite database and must find
// it, so the scan itself is shown to work.
func TestNoPlaintextOnDisk(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	const pass = "plaintext-test passphrase 7f3a"
	s, err := Create(ctx, dir, Passphrase(pass), WithKDFParams(KDFParams{Time: 1, Memory: 64, Threads: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	id, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	otks, _ := protocol.GeneratePreKeys(rand.Reader, 1, 5)
	cred := make([]byte, 32)
	rand.Read(cred)
	want := secrets{
		"identity private key": id.Private.Bytes(),
		"prekey private key":   otks[3].KeyPair.Private.Bytes(),
		"credential":           cred,
		"passphrase":           []byte(pass),
	}
	var markers []string
	for i := range 50 {
		m := fmt.Sprintf("MARKER-%s-%d", hex.EncodeToString(cred[:6]), i)
		markers = append(markers, m)
		want[fmt.Sprintf("marker %d", i)] = []byte(m)
	}
	// Every key the passphrase yields, in binary and hex.
	hb, _ := os.ReadFile(filepath.Join(dir, HeaderFile))
	h, err := parseHeader(hb)
	if err != nil {
		t.Fatal(err)
	}
	k, err := deriveKeys(h, Passphrase(pass))
	if err != nil {
		t.Fatal(err)
	}
	master := argon2.IDKey([]byte(pass), h.salt[:], h.kdf.Time, h.kdf.Memory, h.kdf.Threads, keySize)
	for name, key := range map[string][]byte{"page key": k.page[:], "check key": k.check[:], "master key": master} {
		want[name] = bytes.Clone(key)
		want[name+" (hex)"] = []byte(hex.EncodeToString(key))
		want[name+" (HEX)"] = []byte(strings.ToUpper(hex.EncodeToString(key)))
	}

	write := func(st *Store) {
		err := st.Update(ctx, func(tx *Tx) error {
			if err := tx.SetLocalIdentity(ctx, id, 77); err != nil {
				return err
			}
			for _, p := range otks {
				if err := tx.StorePreKey(ctx, p); err != nil {
					return err
				}
			}
			if err := tx.SetAccount(ctx, Account{AccountID: "a", DeviceID: 1, Username: "alice", Credential: cred}); err != nil {
				return err
			}
			conv, err := tx.Conversation(ctx, "bob")
			if err != nil {
				return err
			}
			for i, m := range markers {
				if _, err := tx.InsertMessage(ctx, Message{ConversationID: conv, Sender: "bob", SenderDevice: 1,
					MessageID: []byte(fmt.Sprint(i)), Body: []byte(m)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	write(s)

	// Still open, never checkpointed: the data is in the WAL.
	wal, err := os.Stat(filepath.Join(dir, DatabaseFile+"-wal"))
	if err != nil || wal.Size() == 0 {
		t.Fatalf("expected a non-empty WAL before checkpoint: %v", err)
	}
	found, read := scan(t, dir, want)
	if len(found) > 0 {
		t.Errorf("open store, WAL of %d bytes: found %v", wal.Size(), found)
	}
	// And the data is really there, readable through the store.
	if a, err := s.Account(ctx); err != nil || !bytes.Equal(a.Credential, cred) {
		t.Fatalf("Account = %v, %v", a, err)
	}
	t.Logf("open store: scanned %d bytes (WAL %d), nothing found", read, wal.Size())

	// After a checkpoint the pages are in the database file (and the WAL
	// is truncated): still nothing.
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if wal, err := os.Stat(filepath.Join(dir, DatabaseFile+"-wal")); err != nil || wal.Size() != 0 {
		t.Fatalf("WAL after a TRUNCATE checkpoint: %v, %v", wal, err)
	}
	if found, _ := scan(t, dir, want); len(found) > 0 {
		t.Errorf("checkpointed store: found %v", found)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if found, read := scan(t, dir, want); len(found) > 0 {
		t.Errorf("closed store: found %v", found)
	} else {
		t.Logf("closed store: scanned %d bytes, nothing found", read)
	}

	// Control: the same data in an unencrypted database is found.
	plainDir := t.TempDir()
	db, err := driver.Open("file:"+filepath.Join(plainDir, "plain.db")+"?_pragma=journal_mode(wal)", initConn)
	if err != nil {
		t.Fatal(err)
	}
	plain := &Store{w: db, r: db, reader: reader{q: db}, now: s.now}
	if err := plain.migrate(ctx); err != nil {
		t.Fatal(err)
	}
	write(plain)
	found, _ = scan(t, plainDir, want)
	for _, name := range []string{"marker 0 in plain.db-wal", "credential in plain.db-wal", "identity private key in plain.db-wal"} {
		if !slices.Contains(found, name) {
			t.Errorf("control: %q not found in the unencrypted database (found %v)", name, found)
		}
	}
	db.Close()
}
