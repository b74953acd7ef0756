package sqlite_test

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

// readAll returns the database file and its WAL (if any).
func readAll(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range []string{"veil.db", "veil.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TestFilesHoldOnlyWhatTheyMust writes envelopes whose content carries a
// marker and checks the files byte by byte: the marker appears exactly
// once per queued envelope (only as envelope content: no index or other
// column copies it), the raw credential and the message ids never appear
// once delivered, and acknowledged content is gone from both files.
func TestFilesHoldOnlyWhatTheyMust(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	credential := []byte("RAW-CREDENTIAL-MARKER-7f3a9c")
	credHash := sha256.Sum256(credential)
	alice, bob := storetest.ID(1), storetest.ID(2)
	for i, id := range []store.AccountID{alice, bob} {
		if _, err := s.CreateAccount(ctx, store.NewAccount{ID: id, Username: []string{"alice", "bob"}[i], IdentityKey: []byte("ik"),
			RegistrationID: 1001, CredentialHash: credHash[:], PreKeys: storetest.Upload(1, 1, 1), Now: storetest.Epoch}); err != nil {
			t.Fatal(err)
		}
	}
	marker := []byte("ENVELOPE-PLAINTEXT-MARKER-41d2")
	msgID := [16]byte{}
	copy(msgID[:], "MSGID-MARKER-01!")
	const n = 5
	var seqs []int64
	for i := range n {
		id := msgID
		id[15] = byte('a' + i)
		content := append(append([]byte{byte(i)}, marker...), byte(i))
		r, err := s.Deliver(ctx, store.Send{MessageID: id, Recipient: bob, Now: storetest.Epoch, // sealed: no sender
			Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: 1001, Type: 6, Content: content}}})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seqs[0])
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	files := readAll(t, dir)
	if got := bytes.Count(files, marker); got != n {
		t.Fatalf("marker found %d times in the files, want %d (once per envelope content)", got, n)
	}
	if bytes.Contains(files, credential) {
		t.Fatal("the raw credential is in the database files")
	}
	if !bytes.Contains(files, credHash[:]) {
		t.Fatal("the credential hash is missing: the scan is not reading the files")
	}

	for _, sq := range seqs {
		if err := s.Ack(ctx, bob, 1, sq); err != nil {
			t.Fatal(err)
		}
	}
	// The periodic sweep is what makes deletions final on disk.
	if _, err := s.Sweep(ctx, storetest.Epoch.Add(-time.Hour), storetest.Epoch.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	files = readAll(t, dir)
	if bytes.Contains(files, marker) {
		t.Fatal("acknowledged envelope content is still in the database files")
	}
	if bytes.Contains(files, msgID[:14]) {
		t.Fatal("a delivered message id is still in the database files (only its hash should be)")
	}
	// The dedup record is still there, as a hash.
	id := msgID
	id[15] = 'a'
	r, err := s.Deliver(ctx, store.Send{MessageID: id, Recipient: bob, Now: storetest.Epoch,
		Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: 1001, Content: []byte("x")}}})
	if err != nil || !r.Duplicate {
		t.Fatalf("repeat after delivery = %+v, %v; want Duplicate", r, err)
	}
}
