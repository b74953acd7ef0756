package devicestore_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// Alice and Bob both keep everything in device stores, reopened between
// messages: the ratchet state survives closing, in both directions, over
// several DH ratchet turns, and every received message is stored with its
// ratchet step.
func TestAliceBobWithReopen(t *testing.T) {
	alice := newDevice(t, "alice", 1001)
	bob := newDevice(t, "bob", 1002)
	b := bob.bundle(t, 1, true, false)

	update(t, alice.s, func(tx *devicestore.Tx) error {
		return protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).ProcessPreKeyBundle(t.Context(), bob.addr, b)
	})
	alice.reopen(t)

	first := alice.encrypt(t, bob.addr, "hello bob 0")
	if first.Type != protocol.PreKeyMessageType {
		t.Fatalf("first message type %d, want PreKey", first.Type)
	}
	bob.reopen(t)
	if pt, err := bob.receive(t, alice.addr, msgID(t), first); err != nil || pt != "hello bob 0" {
		t.Fatalf("Bob decrypts %q, %v", pt, err)
	}
	// The one-time prekey and one-time Kyber prekey are gone, in the same
	// commit as the message.
	if _, err := bob.s.LoadPreKey(t.Context(), 1); !errors.Is(err, protocol.ErrNoPreKey) {
		t.Errorf("one-time prekey after use: %v, want ErrNoPreKey", err)
	}
	if _, err := bob.s.LoadKyberPreKey(t.Context(), 1); !errors.Is(err, protocol.ErrNoKyberPreKey) {
		t.Errorf("one-time Kyber prekey after use: %v, want ErrNoKyberPreKey", err)
	}

	for round := 1; round <= 4; round++ {
		bob.reopen(t)
		// Two messages each way per round, the second out of order.
		m1 := bob.encrypt(t, alice.addr, fmt.Sprintf("bob %d a", round))
		m2 := bob.encrypt(t, alice.addr, fmt.Sprintf("bob %d b", round))
		alice.reopen(t)
		for _, c := range []struct {
			m    protocol.CiphertextMessage
			want string
		}{{m2, fmt.Sprintf("bob %d b", round)}, {m1, fmt.Sprintf("bob %d a", round)}} {
			if pt, err := alice.receive(t, bob.addr, msgID(t), c.m); err != nil || pt != c.want {
				t.Fatalf("round %d: Alice decrypts %q, %v; want %q", round, pt, err, c.want)
			}
		}
		m3 := alice.encrypt(t, bob.addr, fmt.Sprintf("alice %d", round))
		if m3.Type != protocol.SignalMessageType {
			t.Fatalf("round %d: Alice still sends PreKey messages after Bob answered", round)
		}
		alice.reopen(t)
		bob.reopen(t)
		if pt, err := bob.receive(t, alice.addr, msgID(t), m3); err != nil || pt != fmt.Sprintf("alice %d", round) {
			t.Fatalf("round %d: Bob decrypts %q, %v", round, pt, err)
		}
		// A replayed message is a duplicate and stores nothing.
		if _, err := bob.receive(t, alice.addr, msgID(t), m3); !errors.Is(err, protocol.ErrDuplicateMessage) {
			t.Fatalf("round %d: replay: %v, want ErrDuplicateMessage", round, err)
		}
	}

	// Each side stored exactly what it received, in order.
	convs, err := bob.s.Conversations(t.Context())
	if err != nil || len(convs) != 1 || convs[0].Peer != "alice" {
		t.Fatalf("Bob's conversations: %+v, %v", convs, err)
	}
	msgs, err := bob.s.Messages(t.Context(), convs[0].ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Body))
	}
	want := []string{"hello bob 0", "alice 1", "alice 2", "alice 3", "alice 4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Bob's messages %q, want %q", got, want)
	}
	// Identities were recorded on first use on both sides.
	for _, c := range []struct {
		d    *device
		peer *device
	}{{alice, bob}, {bob, alice}} {
		rec, err := c.d.s.IdentityRecord(t.Context(), c.peer.addr.Name)
		if err != nil || !rec.Key.Equal(c.peer.id.Public) || rec.Trust != devicestore.Trusted {
			t.Errorf("%s's record of %s: %+v, %v", c.d.addr.Name, c.peer.addr.Name, rec, err)
		}
	}
}

// snapshot is everything a failed Update must leave untouched.
type snapshot struct {
	session  []byte
	counts   devicestore.PreKeyCounts
	messages int
	identity bool
}

func snap(t *testing.T, d *device, peer protocol.Address) snapshot {
	t.Helper()
	var s snapshot
	rec, err := d.s.LoadSession(t.Context(), peer)
	if err != nil {
		t.Fatal(err)
	}
	if rec != nil {
		s.session = rec.Marshal()
	}
	if s.counts, err = d.s.PreKeyCounts(t.Context()); err != nil {
		t.Fatal(err)
	}
	convs, err := d.s.Conversations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range convs {
		ms, err := d.s.Messages(t.Context(), c.ID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		s.messages += len(ms)
	}
	_, s.identity, err = d.s.Identity(t.Context(), peer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a snapshot) equal(b snapshot) bool {
	return string(a.session) == string(b.session) && a.counts == b.counts && a.messages == b.messages && a.identity == b.identity
}

// A PreKey message is decrypted and the message stored in one Update; if
// anything after the decryption fails, the Update rolls back and the
// store is exactly as before — session absent, prekeys still there, no
// message — and the same envelope decrypts fine on the next attempt.
func TestUpdateRollbackLeavesNoTrace(t *testing.T) {
	alice := newDevice(t, "alice", 1001)
	bob := newDevice(t, "bob", 1002)
	b := bob.bundle(t, 7, true, false)
	update(t, alice.s, func(tx *devicestore.Tx) error {
		return protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).ProcessPreKeyBundle(t.Context(), bob.addr, b)
	})
	ct := alice.encrypt(t, bob.addr, "first")
	id := msgID(t)

	before := snap(t, bob, alice.addr)
	if before.session != nil || before.counts.OneTime != 1 || before.counts.OneTimeKyber != 1 || before.identity {
		t.Fatalf("unexpected starting state %+v", before)
	}
	boom := errors.New("crash before commit")
	err := bob.s.Update(t.Context(), func(tx *devicestore.Tx) error {
		pt, err := protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).Decrypt(t.Context(), alice.addr, ct)
		if err != nil || string(pt) != "first" {
			t.Fatalf("decrypt inside Update: %q, %v", pt, err)
		}
		conv, err := tx.Conversation(t.Context(), "alice")
		if err != nil {
			return err
		}
		if _, err := tx.InsertMessage(t.Context(), devicestore.Message{ConversationID: conv, Sender: "alice", SenderDevice: 1, MessageID: id, Body: pt}); err != nil {
			return err
		}
		// Inside the transaction the changes are visible…
		if rec, err := tx.LoadSession(t.Context(), alice.addr); err != nil || rec == nil {
			t.Fatalf("session inside the tx: %v, %v", rec, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	// …and after the rollback none of them is.
	if after := snap(t, bob, alice.addr); !after.equal(before) {
		t.Fatalf("state after rollback %+v, want %+v", after, before)
	}
	bob.reopen(t)
	if after := snap(t, bob, alice.addr); !after.equal(before) {
		t.Fatalf("state after rollback and reopen %+v, want %+v", after, before)
	}

	// A panic in fn rolls back too.
	func() {
		defer func() { recover() }()
		bob.s.Update(t.Context(), func(tx *devicestore.Tx) error {
			protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).Decrypt(t.Context(), alice.addr, ct)
			panic("boom")
		})
	}()
	if after := snap(t, bob, alice.addr); !after.equal(before) {
		t.Fatalf("state after panic %+v, want %+v", after, before)
	}

	// The redelivered envelope now decrypts and commits.
	if pt, err := bob.receive(t, alice.addr, id, ct); err != nil || pt != "first" {
		t.Fatalf("redelivery: %q, %v", pt, err)
	}
	after := snap(t, bob, alice.addr)
	if after.session == nil || after.counts.OneTime != 0 || after.counts.OneTimeKyber != 0 || after.messages != 1 || !after.identity {
		t.Fatalf("state after commit %+v", after)
	}
	// A crash after commit but before the ack redelivers it again: the
	// SDK sees it is stored and decrypting it is a harmless duplicate.
	if has, err := bob.s.HasMessage(t.Context(), "alice", id); err != nil || !has {
		t.Fatalf("HasMessage = %v, %v", has, err)
	}
	if _, err := bob.receive(t, alice.addr, id, ct); !errors.Is(err, protocol.ErrDuplicateMessage) {
		t.Fatalf("second redelivery: %v, want ErrDuplicateMessage", err)
	}
}

// A last-resort Kyber prekey survives use; a replay of the PreKey message
// after the session is gone is refused.
func TestLastResortKyberKept(t *testing.T) {
	alice := newDevice(t, "alice", 1001)
	bob := newDevice(t, "bob", 1002)
	b := bob.bundle(t, 3, false, true)
	update(t, alice.s, func(tx *devicestore.Tx) error {
		return protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).ProcessPreKeyBundle(t.Context(), bob.addr, b)
	})
	ct := alice.encrypt(t, bob.addr, "via last resort")
	if pt, err := bob.receive(t, alice.addr, msgID(t), ct); err != nil || pt != "via last resort" {
		t.Fatalf("decrypt: %q, %v", pt, err)
	}
	rec, err := bob.s.LoadKyberPreKey(t.Context(), 3)
	if err != nil || !rec.LastResort {
		t.Fatalf("last-resort key after use: %+v, %v", rec.LastResort, err)
	}
	update(t, bob.s, func(tx *devicestore.Tx) error { return tx.DeleteSession(t.Context(), alice.addr) })
	_, err = bob.receive(t, alice.addr, msgID(t), ct)
	if !errors.Is(err, devicestore.ErrKyberPreKeyReused) {
		t.Fatalf("replay after losing the session: %v, want ErrKyberPreKeyReused", err)
	}
	if rec, _ := bob.s.LoadSession(t.Context(), alice.addr); rec != nil {
		t.Fatal("the refused replay left a session behind")
	}
}
