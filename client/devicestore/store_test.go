package devicestore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

func TestLocalIdentity(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	if _, err := s.IdentityKeyPair(ctx); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("IdentityKeyPair before set: %v, want ErrNotFound", err)
	}
	if _, err := s.LocalRegistrationID(ctx); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("LocalRegistrationID before set: %v, want ErrNotFound", err)
	}
	id, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetLocalIdentity(ctx, id, 4242) })
	err := s.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetLocalIdentity(ctx, id, 1) })
	if !errors.Is(err, devicestore.ErrExists) {
		t.Fatalf("second SetLocalIdentity: %v, want ErrExists", err)
	}
	s = reopen(t, s, dir)
	got, err := s.IdentityKeyPair(ctx)
	if err != nil || !got.Public.Equal(id.Public) || !bytes.Equal(got.Private.Bytes(), id.Private.Bytes()) {
		t.Fatalf("IdentityKeyPair = %v, %v", got.Public, err)
	}
	if reg, err := s.LocalRegistrationID(ctx); err != nil || reg != 4242 {
		t.Fatalf("LocalRegistrationID = %d, %v", reg, err)
	}
}

func TestIdentityTrust(t *testing.T) {
	ctx := t.Context()
	clock := time.UnixMilli(1_700_000_000_000)
	s, err := devicestore.Create(ctx, t.TempDir(), devicestore.Passphrase(testPass),
		devicestore.WithKDFParams(fastKDF), devicestore.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bob := protocol.Address{Name: "bob", DeviceID: 2}
	k1, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	k2, _ := protocol.GenerateIdentityKeyPair(rand.Reader)

	if ok, err := s.IsTrustedIdentity(ctx, bob, k1.Public, protocol.Sending); err != nil || !ok {
		t.Fatalf("unknown address trusted on first use = %v, %v", ok, err)
	}
	if _, ok, err := s.Identity(ctx, bob); ok || err != nil {
		t.Fatalf("Identity of unknown = %v, %v", ok, err)
	}
	if _, err := s.IdentityRecord(ctx, "bob"); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("IdentityRecord of unknown: %v", err)
	}
	err = s.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetVerified(ctx, "bob", k1.Public, true) })
	if !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("SetVerified of unknown: %v, want ErrNotFound", err)
	}

	save := func(k protocol.PublicKey) bool {
		t.Helper()
		var changed bool
		update(t, s, func(tx *devicestore.Tx) error {
			var err error
			changed, err = tx.SaveIdentity(ctx, bob, k)
			return err
		})
		return changed
	}
	record := func() devicestore.IdentityRecord {
		t.Helper()
		r, err := s.IdentityRecord(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if save(k1.Public) {
		t.Fatal("first save reported a change")
	}
	if r := record(); !r.Key.Equal(k1.Public) || r.Trust != devicestore.Trusted || !r.FirstSeen.Equal(clock) || r.Name != "bob" {
		t.Fatalf("after first save: %+v", r)
	}
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetVerified(ctx, "bob", k1.Public, true) })
	clock = clock.Add(time.Hour)
	if save(k1.Public) {
		t.Fatal("saving the same key reported a change")
	}
	if r := record(); r.Trust != devicestore.Verified || !r.FirstSeen.Equal(clock.Add(-time.Hour)) {
		t.Fatalf("saving the same key lost the verified mark or first-seen: %+v", r)
	}
	if ok, _ := s.IsTrustedIdentity(ctx, bob, k2.Public, protocol.Sending); ok {
		t.Fatal("a different key is trusted for sending")
	}
	// Receiving accepts a new key (Signal's rule); SaveIdentity then marks
	// it Changed.
	for _, k := range []protocol.PublicKey{k1.Public, k2.Public} {
		if ok, _ := s.IsTrustedIdentity(ctx, bob, k, protocol.Receiving); !ok {
			t.Fatal("a key is refused for receiving")
		}
	}
	if ok, _ := s.IsTrustedIdentity(ctx, bob, k1.Public, protocol.Sending); !ok {
		t.Fatal("the stored key is not trusted for sending")
	}
	err = s.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetVerified(ctx, "bob", k2.Public, true) })
	if !errors.Is(err, devicestore.ErrIdentityMismatch) {
		t.Fatalf("verifying a key that is not stored: %v, want ErrIdentityMismatch", err)
	}
	if !save(k2.Public) {
		t.Fatal("a new key was not reported as a change")
	}
	if r := record(); !r.Key.Equal(k2.Public) || r.Trust != devicestore.Changed || !r.FirstSeen.Equal(clock) {
		t.Fatalf("after the change: %+v (want Changed: verified mark cleared, first seen reset)", r)
	}
	if ok, _ := s.IsTrustedIdentity(ctx, bob, k1.Public, protocol.Sending); ok {
		t.Fatal("the old key is still trusted")
	}
	if ok, _ := s.IsTrustedIdentity(ctx, bob, k2.Public, protocol.Sending); ok {
		t.Fatal("a changed key is trusted for sending before the user accepted it")
	}
	// Un-verifying does not accept a changed key; saving it again keeps it Changed.
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetVerified(ctx, "bob", k2.Public, false) })
	if save(k2.Public) || record().Trust != devicestore.Changed {
		t.Fatal("a changed key lost its mark")
	}
	err = s.Update(ctx, func(tx *devicestore.Tx) error { return tx.AcceptIdentity(ctx, "bob", k1.Public) })
	if !errors.Is(err, devicestore.ErrIdentityMismatch) {
		t.Fatalf("accepting a key that is not stored: %v, want ErrIdentityMismatch", err)
	}
	update(t, s, func(tx *devicestore.Tx) error { return tx.AcceptIdentity(ctx, "bob", k2.Public) })
	if r := record(); r.Trust != devicestore.Trusted {
		t.Fatalf("after accepting: %v", r.Trust)
	}
	if ok, _ := s.IsTrustedIdentity(ctx, bob, k2.Public, protocol.Sending); !ok {
		t.Fatal("an accepted key is not trusted for sending")
	}
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetVerified(ctx, "bob", k2.Public, true) })
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetVerified(ctx, "bob", k2.Public, false) })
	if r := record(); r.Trust != devicestore.Trusted {
		t.Fatalf("unverify: %v", r.Trust)
	}
	// Identities are per account: another device of bob has the same one,
	// and presenting another key from it is a change for the account.
	dev3 := protocol.Address{Name: "bob", DeviceID: 3}
	if k, ok, _ := s.Identity(ctx, dev3); !ok || !k.Equal(k2.Public) {
		t.Fatal("another device of the account does not share its identity")
	}
	if ok, _ := s.IsTrustedIdentity(ctx, dev3, k1.Public, protocol.Sending); ok {
		t.Fatal("another device of the account may present another key")
	}
	if _, ok, _ := s.Identity(ctx, protocol.Address{Name: "carol", DeviceID: 2}); ok {
		t.Fatal("identity leaked to another account")
	}
	if fmt.Sprint(devicestore.Trusted, devicestore.Verified, devicestore.Changed) != "trusted verified changed" {
		t.Fatal("Trust.String")
	}
}

func TestPreKeys(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	id, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	otks, _ := protocol.GeneratePreKeys(rand.Reader, 10, 3)
	spk, _ := protocol.GenerateSignedPreKey(rand.Reader, id, 5, time.UnixMilli(1_700_000_000_000))
	ky1, _ := protocol.GenerateKyberPreKey(rand.Reader, id, 20, false, time.Now())
	ky2, _ := protocol.GenerateKyberPreKey(rand.Reader, id, 21, true, time.Now())

	if _, err := s.LoadPreKey(ctx, 10); !errors.Is(err, protocol.ErrNoPreKey) || !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("missing prekey: %v", err)
	}
	if _, err := s.LoadSignedPreKey(ctx, 5); !errors.Is(err, protocol.ErrNoSignedPreKey) || !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("missing signed prekey: %v", err)
	}
	if _, err := s.LoadKyberPreKey(ctx, 20); !errors.Is(err, protocol.ErrNoKyberPreKey) || !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("missing Kyber prekey: %v", err)
	}
	update(t, s, func(tx *devicestore.Tx) error {
		for _, k := range otks {
			if err := tx.StorePreKey(ctx, k); err != nil {
				return err
			}
		}
		if err := tx.StoreSignedPreKey(ctx, spk); err != nil {
			return err
		}
		if err := tx.StoreKyberPreKey(ctx, ky1); err != nil {
			return err
		}
		return tx.StoreKyberPreKey(ctx, ky2)
	})
	s = reopen(t, s, dir)
	want := devicestore.PreKeyCounts{OneTime: 3, OneTimeKyber: 1, LastResortKyber: 1, Signed: 1, MaxPreKeyID: 12, MaxKyberPreKeyID: 21, MaxSignedPreKeyID: 5}
	if c, err := s.PreKeyCounts(ctx); err != nil || c != want {
		t.Fatalf("PreKeyCounts = %+v, %v; want %+v", c, err, want)
	}
	got, err := s.LoadPreKey(ctx, 11)
	if err != nil || got.ID != 11 || !got.KeyPair.Public.Equal(otks[1].KeyPair.Public) || !bytes.Equal(got.KeyPair.Private.Bytes(), otks[1].KeyPair.Private.Bytes()) {
		t.Fatalf("LoadPreKey = %+v, %v", got.ID, err)
	}
	gs, err := s.LoadSignedPreKey(ctx, 5)
	if err != nil || !bytes.Equal(gs.Marshal(), spk.Marshal()) {
		t.Fatalf("LoadSignedPreKey differs: %v", err)
	}
	gk, err := s.LoadKyberPreKey(ctx, 21)
	if err != nil || !bytes.Equal(gk.Marshal(), ky2.Marshal()) || !gk.LastResort {
		t.Fatalf("LoadKyberPreKey differs: %v", err)
	}
	base, _ := protocol.GenerateKeyPair(rand.Reader)
	update(t, s, func(tx *devicestore.Tx) error {
		if err := tx.RemovePreKey(ctx, 11); err != nil {
			return err
		}
		if err := tx.RemovePreKey(ctx, 999); err != nil { // gone already: fine
			return err
		}
		if err := tx.MarkKyberPreKeyUsed(ctx, 20, 5, base.Public); err != nil {
			return err
		}
		if err := tx.MarkKyberPreKeyUsed(ctx, 21, 5, base.Public); err != nil {
			return err
		}
		return tx.MarkKyberPreKeyUsed(ctx, 999, 5, base.Public) // unknown: fine
	})
	if _, err := s.LoadPreKey(ctx, 11); !errors.Is(err, protocol.ErrNoPreKey) {
		t.Fatalf("removed prekey: %v", err)
	}
	if _, err := s.LoadKyberPreKey(ctx, 20); !errors.Is(err, protocol.ErrNoKyberPreKey) {
		t.Fatalf("used one-time Kyber prekey still there: %v", err)
	}
	if _, err := s.LoadKyberPreKey(ctx, 21); err != nil {
		t.Fatalf("used last-resort Kyber prekey gone: %v", err)
	}
	err = s.Update(ctx, func(tx *devicestore.Tx) error { return tx.MarkKyberPreKeyUsed(ctx, 21, 5, base.Public) })
	if !errors.Is(err, devicestore.ErrKyberPreKeyReused) {
		t.Fatalf("same base key twice on a last-resort key: %v", err)
	}
	other, _ := protocol.GenerateKeyPair(rand.Reader)
	update(t, s, func(tx *devicestore.Tx) error { return tx.MarkKyberPreKeyUsed(ctx, 21, 5, other.Public) })
	update(t, s, func(tx *devicestore.Tx) error {
		if err := tx.RemoveSignedPreKey(ctx, 5); err != nil {
			return err
		}
		return tx.RemoveKyberPreKey(ctx, 21)
	})
	want = devicestore.PreKeyCounts{OneTime: 2, MaxPreKeyID: 12}
	if c, err := s.PreKeyCounts(ctx); err != nil || c != want {
		t.Fatalf("PreKeyCounts after removals = %+v, %v; want %+v", c, err, want)
	}
}

func TestSessions(t *testing.T) {
	alice := newDevice(t, "alice", 1)
	bob := newDevice(t, "bob", 2)
	ctx := t.Context()
	addr := protocol.Address{Name: "bob", DeviceID: 1}
	if rec, err := alice.s.LoadSession(ctx, addr); rec != nil || err != nil {
		t.Fatalf("LoadSession of unknown = %v, %v; want nil, nil", rec, err)
	}
	b := bob.bundle(t, 1, true, false)
	update(t, alice.s, func(tx *devicestore.Tx) error {
		return protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).ProcessPreKeyBundle(ctx, addr, b)
	})
	rec, err := alice.s.LoadSession(ctx, addr)
	if err != nil || rec == nil || !rec.HasCurrentState() {
		t.Fatalf("LoadSession after bundle = %v, %v", rec, err)
	}
	if reg, ok := rec.RemoteRegistrationID(); !ok || reg != 2 {
		t.Fatalf("remote registration id %d %v", reg, ok)
	}
	// Stored as given, reloaded byte for byte.
	rec.ArchiveCurrentState()
	other := protocol.Address{Name: "bob", DeviceID: 3}
	update(t, alice.s, func(tx *devicestore.Tx) error { return tx.StoreSession(ctx, other, rec) })
	alice.reopen(t)
	got, err := alice.s.LoadSession(ctx, other)
	if err != nil || !bytes.Equal(got.Marshal(), rec.Marshal()) || got.ArchivedStates() != 1 {
		t.Fatalf("reloaded session differs: %v", err)
	}
	if ids, err := alice.s.SessionDevices(ctx, "bob"); err != nil || fmt.Sprint(ids) != "[1 3]" {
		t.Fatalf("SessionDevices = %v, %v", ids, err)
	}
	update(t, alice.s, func(tx *devicestore.Tx) error { return tx.DeleteSession(ctx, other) })
	if ids, err := alice.s.SessionDevices(ctx, "bob"); err != nil || fmt.Sprint(ids) != "[1]" {
		t.Fatalf("SessionDevices after delete = %v, %v", ids, err)
	}
	if ids, err := alice.s.SessionDevices(ctx, "carol"); err != nil || len(ids) != 0 {
		t.Fatalf("SessionDevices of a stranger = %v, %v", ids, err)
	}
}

func TestAccountAndContacts(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	if _, err := s.Account(ctx); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("Account before set: %v", err)
	}
	cred := bytes.Repeat([]byte{0xC7}, 32)
	acct := devicestore.Account{AccountID: "0f8e0000-0000-4000-8000-000000000001", DeviceID: 1, Username: "alice", ServerURL: "https://veil.example", Credential: cred}
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetAccount(ctx, acct) })
	if err := s.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetAccount(ctx, acct) }); !errors.Is(err, devicestore.ErrExists) {
		t.Fatalf("second SetAccount: %v", err)
	}
	s = reopen(t, s, dir)
	got, err := s.Account(ctx)
	if err != nil || got.AccountID != acct.AccountID || got.DeviceID != 1 || got.Username != "alice" || got.ServerURL != acct.ServerURL || !bytes.Equal(got.Credential, cred) || got.CreatedAt.IsZero() {
		t.Fatalf("Account = %v, %v", got, err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(f, got); bytes.Contains([]byte(out), []byte{0xC7, 0xC7}) || bytes.Contains([]byte(out), []byte("199")) || !bytes.Contains([]byte(out), []byte("redacted")) {
			t.Errorf("%s of Account shows the credential: %s", f, out)
		}
	}

	if _, err := s.Contact(ctx, "nobody"); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("missing contact: %v", err)
	}
	update(t, s, func(tx *devicestore.Tx) error {
		if err := tx.PutContact(ctx, devicestore.Contact{AccountID: "b", Username: "bob", DisplayName: "Bob"}); err != nil {
			return err
		}
		if err := tx.PutContact(ctx, devicestore.Contact{AccountID: "c", Username: "carol"}); err != nil {
			return err
		}
		return tx.PutContact(ctx, devicestore.Contact{AccountID: "b", Username: "bob", DisplayName: "Robert"})
	})
	c, err := s.ContactByUsername(ctx, "bob")
	if err != nil || c.AccountID != "b" || c.DisplayName != "Robert" {
		t.Fatalf("ContactByUsername = %+v, %v", c, err)
	}
	if _, err := s.ContactByUsername(ctx, "dave"); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("missing username: %v", err)
	}
	all, err := s.Contacts(ctx)
	if err != nil || len(all) != 2 || all[0].Username != "bob" || all[1].Username != "carol" {
		t.Fatalf("Contacts = %+v, %v", all, err)
	}
	if c, err := s.Contact(ctx, "c"); err != nil || c.Username != "carol" {
		t.Fatalf("Contact = %+v, %v", c, err)
	}
}

func TestMessagesAndOutbox(t *testing.T) {
	ctx := t.Context()
	clock := time.UnixMilli(1_700_000_000_000)
	s, err := devicestore.Create(ctx, t.TempDir(), devicestore.Passphrase(testPass),
		devicestore.WithKDFParams(fastKDF), devicestore.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id1, id2 := msgID(t), msgID(t)
	var conv, conv2, local int64
	update(t, s, func(tx *devicestore.Tx) error {
		var err error
		if conv, err = tx.Conversation(ctx, "bob"); err != nil {
			return err
		}
		if again, err := tx.Conversation(ctx, "bob"); err != nil || again != conv {
			return fmt.Errorf("second Conversation = %d, %v; want %d", again, err, conv)
		}
		if local, err = tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: "bob", SenderDevice: 2, MessageID: id1, Body: []byte("one"), SentAt: clock.Add(-time.Second)}); err != nil {
			return err
		}
		if _, err = tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: "me", SenderDevice: 1, Outgoing: true, MessageID: id2, Body: []byte("two"), SentAt: clock}); err != nil {
			return err
		}
		// The same message id from another sender is another message.
		_, err = tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: "mallory", SenderDevice: 1, MessageID: id1, Body: []byte("three"), SentAt: clock})
		if err != nil {
			return err
		}
		clock = clock.Add(time.Minute)
		conv2, err = tx.Conversation(ctx, "carol")
		return err
	})
	err = s.Update(ctx, func(tx *devicestore.Tx) error {
		_, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: "bob", SenderDevice: 2, MessageID: id1, Body: []byte("again")})
		return err
	})
	if !errors.Is(err, devicestore.ErrDuplicate) {
		t.Fatalf("duplicate message: %v, want ErrDuplicate", err)
	}
	if err := s.Update(ctx, func(tx *devicestore.Tx) error {
		_, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: "bob"})
		return err
	}); err == nil {
		t.Fatal("a message without a message id was stored")
	}
	if has, err := s.HasMessage(ctx, "bob", id1); err != nil || !has {
		t.Fatalf("HasMessage = %v, %v", has, err)
	}
	if has, err := s.HasMessage(ctx, "bob", id2); err != nil || has {
		t.Fatalf("HasMessage of another sender's id = %v, %v", has, err)
	}
	m, err := s.Message(ctx, local)
	if err != nil || string(m.Body) != "one" || m.Sender != "bob" || m.SenderDevice != 2 || m.Outgoing || !bytes.Equal(m.MessageID, id1) ||
		!m.SentAt.Equal(time.UnixMilli(1_700_000_000_000).Add(-time.Second)) || !m.ReceivedAt.Equal(time.UnixMilli(1_700_000_000_000)) {
		t.Fatalf("Message = %+v, %v", m, err)
	}
	if _, err := s.Message(ctx, 9999); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("missing message: %v", err)
	}
	page1, err := s.Messages(ctx, conv, 0, 2)
	if err != nil || len(page1) != 2 || string(page1[0].Body) != "one" || string(page1[1].Body) != "two" || !page1[1].Outgoing {
		t.Fatalf("Messages page 1 = %+v, %v", page1, err)
	}
	page2, err := s.Messages(ctx, conv, page1[1].ID, 2)
	if err != nil || len(page2) != 1 || string(page2[0].Body) != "three" {
		t.Fatalf("Messages page 2 = %+v, %v", page2, err)
	}
	convs, err := s.Conversations(ctx)
	if err != nil || len(convs) != 2 || convs[0].ID != conv2 || convs[1].ID != conv {
		t.Fatalf("Conversations (most recent first) = %+v, %v", convs, err)
	}

	// Outbox.
	o1, o2 := msgID(t), msgID(t)
	update(t, s, func(tx *devicestore.Tx) error {
		if _, err := tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: o1, Recipient: "bob", LocalMessageID: local, Payload: []byte("p1")}); err != nil {
			return err
		}
		_, err := tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: o2, Recipient: "carol", Payload: []byte("p2"), NextAttemptAt: clock.Add(time.Hour)})
		return err
	})
	if err := s.Update(ctx, func(tx *devicestore.Tx) error {
		_, err := tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: o1, Recipient: "bob", Payload: []byte("x")})
		return err
	}); !errors.Is(err, devicestore.ErrDuplicate) {
		t.Fatalf("duplicate enqueue: %v", err)
	}
	due, err := s.Outbox(ctx, clock, 10)
	if err != nil || len(due) != 1 || !bytes.Equal(due[0].MessageID, o1) || due[0].LocalMessageID != local || string(due[0].Payload) != "p1" || due[0].Attempts != 0 {
		t.Fatalf("Outbox due now = %+v, %v", due, err)
	}
	update(t, s, func(tx *devicestore.Tx) error {
		return tx.RecordAttempt(ctx, o1, clock.Add(2*time.Hour), "network: timeout")
	})
	later, err := s.Outbox(ctx, clock.Add(3*time.Hour), 10)
	if err != nil || len(later) != 2 || later[0].Attempts != 1 || later[1].LocalMessageID != 0 {
		t.Fatalf("Outbox later = %+v, %v", later, err)
	}
	update(t, s, func(tx *devicestore.Tx) error { return tx.Dequeue(ctx, o1) })
	if err := s.Update(ctx, func(tx *devicestore.Tx) error { return tx.Dequeue(ctx, o1) }); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("dequeue twice: %v", err)
	}
	if err := s.Update(ctx, func(tx *devicestore.Tx) error { return tx.RecordAttempt(ctx, o1, clock, "") }); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("attempt on a dequeued send: %v", err)
	}
	if left, _ := s.Outbox(ctx, clock.Add(3*time.Hour), 10); len(left) != 1 || !bytes.Equal(left[0].MessageID, o2) {
		t.Fatalf("Outbox after dequeue = %+v", left)
	}
}

func TestTxAfterUpdateAndClosedStore(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	var leaked *devicestore.Tx
	update(t, s, func(tx *devicestore.Tx) error { leaked = tx; return nil })
	if err := leaked.StorePreKey(ctx, protocol.PreKeyRecord{ID: 1}); !errors.Is(err, devicestore.ErrTxDone) {
		t.Fatalf("Tx used after Update: %v, want ErrTxDone", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	ran := false
	if err := s.Update(canceled, func(*devicestore.Tx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("Update with a canceled context: %v (fn ran: %v), want context.Canceled", err, ran)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Account(ctx); !errors.Is(err, devicestore.ErrClosed) {
		t.Fatalf("read after Close: %v, want ErrClosed", err)
	}
	if err := s.Update(ctx, func(*devicestore.Tx) error { return nil }); !errors.Is(err, devicestore.ErrClosed) {
		t.Fatalf("Update after Close: %v, want ErrClosed", err)
	}
}

// Readers keep reading committed state while a writer commits: every read
// succeeds and sees a count that never goes backwards.
func TestConcurrentReadersWithWriter(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	var conv int64
	update(t, s, func(tx *devicestore.Tx) error {
		var err error
		conv, err = tx.Conversation(ctx, "bob")
		return err
	})
	const writes = 60
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				ms, err := s.Messages(ctx, conv, 0, 1000)
				if err != nil {
					errs <- err
					return
				}
				if len(ms)%2 != 0 {
					errs <- fmt.Errorf("reader saw half a transaction (%d messages)", len(ms))
					return
				}
				if len(ms) < last {
					errs <- fmt.Errorf("reader saw %d messages after %d", len(ms), last)
					return
				}
				last = len(ms)
			}
		}()
	}
	for i := 0; i < writes; i++ {
		update(t, s, func(tx *devicestore.Tx) error {
			// Two rows per transaction: readers never see one without the other.
			for j := 0; j < 2; j++ {
				if _, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: "bob", SenderDevice: 1, MessageID: msgID(t), Body: []byte("x")}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ms, _ := s.Messages(ctx, conv, 0, 1000); len(ms) != 2*writes {
		t.Fatalf("%d messages, want %d", len(ms), 2*writes)
	}
}
