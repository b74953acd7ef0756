package sqlite_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// An account registers, a sealed envelope is delivered to its device,
// read back and acknowledged.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "veil-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "veil.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	now := time.Date(2026, 11, 25, 9, 30, 15, 0, time.UTC)
	bob := store.AccountID{0x01}
	key := func(s string) *store.SignedPreKey {
		return &store.SignedPreKey{KeyID: 1, PublicKey: []byte(s), Signature: []byte("sig")}
	}
	if _, err := s.CreateAccount(ctx, store.NewAccount{ID: bob, Username: "bob", IdentityKey: []byte("bob's public identity key"),
		RegistrationID: 42, CredentialHash: []byte("hash of bob's credential"),
		PreKeys: store.PreKeyUpload{SignedPreKey: key("spk"), LastResortKEM: key("kem")}, Now: now}); err != nil {
		log.Fatal(err)
	}
	res, err := s.Deliver(ctx, store.Send{MessageID: [16]byte{7}, Recipient: bob, Now: now,
		Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: 42, Type: 6, Content: []byte("ciphertext")}}})
	if err != nil {
		log.Fatal(err)
	}
	envs, err := s.Pending(ctx, bob, 1, 0, 10)
	if err != nil {
		log.Fatal(err)
	}
	e := envs[0]
	fmt.Printf("seq %d, %q, sealed %v, received %s\n", e.Seq, e.Content, e.Sender == store.AccountID{}, e.ReceivedAt.Format(time.TimeOnly))
	if err := s.Ack(ctx, bob, 1, res.Seqs[0]); err != nil {
		log.Fatal(err)
	}
	again, _ := s.Deliver(ctx, store.Send{MessageID: [16]byte{7}, Recipient: bob, Now: now,
		Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: 42, Type: 6, Content: []byte("ciphertext")}}})
	depth, _ := s.QueueDepth(ctx, bob, 1)
	fmt.Printf("repeat is duplicate: %v, queue depth %d\n", again.Duplicate, depth)
	// Output:
	// seq 1, "ciphertext", sealed true, received 09:30:00
	// repeat is duplicate: true, queue depth 0
}
