package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/veil-e2ee/veil/protocol"
)

func setup(t tb, withPreKey bool) (alice, bob *device) {
	t.Helper()
	alice, bob = newDevice(t, "alice"), newDevice(t, "bob")
	if err := alice.cipher.ProcessPreKeyBundle(context.Background(), bob.addr, bob.bundle(t, withPreKey)); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func TestSessionRoundTrip(t *testing.T) {
	for _, withPreKey := range []bool{true, false} {
		alice, bob := setup(t, withPreKey)
		ct := mustEncrypt(t, alice, bob, "hello bob")
		if ct.Type != protocol.PreKeyMessageType {
			t.Fatalf("first message type %d, want PreKey", ct.Type)
		}
		ct2 := mustEncrypt(t, alice, bob, "second")
		if ct2.Type != protocol.PreKeyMessageType {
			t.Fatalf("unanswered session must keep sending PreKey messages")
		}
		mustDecrypt(t, bob, alice, ct, "hello bob")
		mustDecrypt(t, bob, alice, ct2, "second")
		reply := mustEncrypt(t, bob, alice, "hi alice")
		if reply.Type != protocol.SignalMessageType {
			t.Fatalf("reply type %d", reply.Type)
		}
		mustDecrypt(t, alice, bob, reply, "hi alice")
		ct3 := mustEncrypt(t, alice, bob, "third")
		if ct3.Type != protocol.SignalMessageType {
			t.Fatalf("after a reply, messages must be SignalMessages")
		}
		mustDecrypt(t, bob, alice, ct3, "third")
		// The one-time prekey is consumed.
		if withPreKey {
			if _, err := bob.store.LoadPreKey(context.Background(), 1); !errors.Is(err, protocol.ErrNoPreKey) {
				t.Fatalf("one-time prekey not removed: %v", err)
			}
		}
	}
}

func TestDuplicateRejectedWithoutStateChange(t *testing.T) {
	ctx := context.Background()
	alice, bob := setup(t, true)
	first := mustEncrypt(t, alice, bob, "m0")
	mustDecrypt(t, bob, alice, first, "m0")
	before, _ := bob.store.LoadSession(ctx, alice.addr)
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, first); !errors.Is(err, protocol.ErrDuplicateMessage) {
		t.Fatalf("replayed PreKey message: %v, want ErrDuplicateMessage", err)
	}
	after, _ := bob.store.LoadSession(ctx, alice.addr)
	if !bytes.Equal(before.Marshal(), after.Marshal()) {
		t.Fatal("a rejected duplicate changed the session")
	}
	reply := mustEncrypt(t, bob, alice, "r")
	mustDecrypt(t, alice, bob, reply, "r")
	m := mustEncrypt(t, alice, bob, "m1")
	mustDecrypt(t, bob, alice, m, "m1")
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, m); !errors.Is(err, protocol.ErrDuplicateMessage) {
		t.Fatalf("replayed SignalMessage: %v", err)
	}
}

func TestTamperingFailsAndLeavesStateUnchanged(t *testing.T) {
	ctx := context.Background()
	alice, bob := setup(t, true)
	mustDecrypt(t, bob, alice, mustEncrypt(t, alice, bob, "a"), "a")
	mustDecrypt(t, alice, bob, mustEncrypt(t, bob, alice, "b"), "b")
	ct := mustEncrypt(t, alice, bob, "secret payload")
	before, _ := bob.store.LoadSession(ctx, alice.addr)
	for i := range ct.Body {
		bad := protocol.CiphertextMessage{Type: ct.Type, Body: bytes.Clone(ct.Body)}
		bad.Body[i] ^= 0x01
		pt, err := bob.cipher.Decrypt(ctx, alice.addr, bad)
		if err == nil {
			t.Fatalf("flipping byte %d still decrypted to %q", i, pt)
		}
		if pt != nil {
			t.Fatalf("plaintext released on failure")
		}
	}
	after, _ := bob.store.LoadSession(ctx, alice.addr)
	if !bytes.Equal(before.Marshal(), after.Marshal()) {
		t.Fatal("failed decryptions changed the session")
	}
	mustDecrypt(t, bob, alice, ct, "secret payload")
}

func TestOutOfOrderAndGaps(t *testing.T) {
	alice, bob := setup(t, true)
	mustDecrypt(t, bob, alice, mustEncrypt(t, alice, bob, "init"), "init")
	var cts []protocol.CiphertextMessage
	for i := 0; i < 50; i++ {
		cts = append(cts, mustEncrypt(t, alice, bob, string(rune('A'+i))))
	}
	// Deliver in reverse, skipping every 7th (never delivered).
	for i := len(cts) - 1; i >= 0; i-- {
		if i%7 == 0 {
			continue
		}
		mustDecrypt(t, bob, alice, cts[i], string(rune('A'+i)))
	}
	// Late arrivals of the gaps still decrypt.
	for i := 0; i < len(cts); i += 7 {
		mustDecrypt(t, bob, alice, cts[i], string(rune('A'+i)))
	}
}

func TestForwardJumpLimit(t *testing.T) {
	alice, bob := setup(t, false)
	mustDecrypt(t, bob, alice, mustEncrypt(t, alice, bob, "init"), "init")
	var last protocol.CiphertextMessage
	for i := 0; i < 25_002; i++ {
		last = mustEncrypt(t, alice, bob, "x")
	}
	if _, err := bob.cipher.Decrypt(context.Background(), alice.addr, last); !errors.Is(err, protocol.ErrDecryption) {
		t.Fatalf("jump beyond 25,000: %v, want ErrDecryption", err)
	}
}

func TestUntrustedIdentity(t *testing.T) {
	ctx := context.Background()
	alice, bob := setup(t, true)
	mustDecrypt(t, bob, alice, mustEncrypt(t, alice, bob, "a"), "a")
	// Bob reinstalls: new identity key under the same address.
	bob2 := newDevice(t, "bob")
	err := alice.cipher.ProcessPreKeyBundle(ctx, bob.addr, bob2.bundle(t, true))
	var ue *protocol.UntrustedIdentityError
	if !errors.As(err, &ue) || !errors.Is(err, protocol.ErrUntrustedIdentity) || !ue.Key.Equal(bob2.id.Public) {
		t.Fatalf("changed identity: %v, want *UntrustedIdentityError with the new key", err)
	}
	// Alice accepts the new key; the session can then be set up.
	if _, err := alice.store.SaveIdentity(ctx, bob.addr, ue.Key); err != nil {
		t.Fatal(err)
	}
	if err := alice.cipher.ProcessPreKeyBundle(ctx, bob.addr, bob2.bundle(t, true)); err != nil {
		t.Fatal(err)
	}
	mustDecrypt(t, bob2, alice, mustEncrypt(t, alice, bob2, "again"), "again")
}

func TestBadBundleSignature(t *testing.T) {
	alice, bob := newDevice(t, "alice"), newDevice(t, "bob")
	b := bob.bundle(t, true)
	b.SignedPreKeySignature = bytes.Clone(b.SignedPreKeySignature)
	b.SignedPreKeySignature[5] ^= 1
	if err := alice.cipher.ProcessPreKeyBundle(context.Background(), bob.addr, b); !errors.Is(err, protocol.ErrInvalidSignature) {
		t.Fatalf("got %v", err)
	}
	b = bob.bundle(t, true)
	b.KyberPreKeySignature = bytes.Clone(b.KyberPreKeySignature)
	b.KyberPreKeySignature[0] ^= 1
	if err := alice.cipher.ProcessPreKeyBundle(context.Background(), bob.addr, b); !errors.Is(err, protocol.ErrInvalidSignature) {
		t.Fatalf("got %v", err)
	}
}

func TestSessionRecordSurvivesSerialization(t *testing.T) {
	ctx := context.Background()
	alice, bob := setup(t, true)
	mustDecrypt(t, bob, alice, mustEncrypt(t, alice, bob, "a"), "a")
	skipped := mustEncrypt(t, bob, alice, "late")
	mustDecrypt(t, alice, bob, mustEncrypt(t, bob, alice, "b"), "b")
	rec, _ := alice.store.LoadSession(ctx, bob.addr)
	b := rec.Marshal()
	rec2, err := protocol.ParseSessionRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec2.Marshal(), b) {
		t.Fatal("record does not round-trip")
	}
	alice.store.StoreSession(ctx, bob.addr, rec2)
	mustDecrypt(t, alice, bob, skipped, "late")
	mustDecrypt(t, bob, alice, mustEncrypt(t, alice, bob, "c"), "c")
}

func TestArchivedSessionStillDecrypts(t *testing.T) {
	ctx := context.Background()
	alice, bob := setup(t, true)
	mustDecrypt(t, bob, alice, mustEncrypt(t, alice, bob, "a"), "a")
	mustDecrypt(t, alice, bob, mustEncrypt(t, bob, alice, "b"), "b")
	late := mustEncrypt(t, alice, bob, "sent under the old session")
	// Alice starts a fresh session (e.g. after a reset); Bob processes it.
	if err := alice.cipher.ProcessPreKeyBundle(ctx, bob.addr, bob.bundle(t, true)); err != nil {
		t.Fatal(err)
	}
	mustDecrypt(t, bob, alice, mustEncrypt(t, alice, bob, "new"), "new")
	rec, _ := bob.store.LoadSession(ctx, alice.addr)
	if rec.ArchivedStates() != 1 {
		t.Fatalf("archived states %d, want 1", rec.ArchivedStates())
	}
	mustDecrypt(t, bob, alice, late, "sent under the old session")
}

func TestSafetyNumbersAgree(t *testing.T) {
	a, b := newDevice(t, "alice"), newDevice(t, "bob")
	aid, bid := []byte("alice-uuid-bytes"), []byte("bob-uuid-bytes!!")
	fa, err := protocol.NewSafetyNumber(aid, a.id.Public, bid, b.id.Public)
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := protocol.NewSafetyNumber(bid, b.id.Public, aid, a.id.Public)
	if len(fa.Displayable) != 60 || fa.Displayable != fb.Displayable {
		t.Fatalf("displayable %q vs %q", fa.Displayable, fb.Displayable)
	}
	if ok, err := fa.MatchesScanned(fb.Scannable); !ok || err != nil {
		t.Fatalf("scannable mismatch: %v", err)
	}
	c := newDevice(t, "mallory")
	fc, _ := protocol.NewSafetyNumber(bid, b.id.Public, aid, c.id.Public)
	if ok, _ := fa.MatchesScanned(fc.Scannable); ok {
		t.Fatal("a different key matched")
	}
}

// A PreKey message that used the last-resort Kyber key and no one-time
// prekey is replayed after its session is gone: it must not start a
// second session.
func TestLastResortReplayRefused(t *testing.T) {
	ctx := context.Background()
	alice, bob := newDevice(t, "alice"), newDevice(t, "bob")
	b := bob.bundle(t, false)
	kpk, _ := bob.store.LoadKyberPreKey(ctx, b.KyberPreKeyID)
	kpk.LastResort = true
	bob.store.StoreKyberPreKey(ctx, kpk)
	if err := alice.cipher.ProcessPreKeyBundle(ctx, bob.addr, b); err != nil {
		t.Fatal(err)
	}
	first := mustEncrypt(t, alice, bob, "once")
	mustDecrypt(t, bob, alice, first, "once")
	// Bob loses the session (e.g. it was archived out or reset).
	bob.store.StoreSession(ctx, alice.addr, protocol.NewSessionRecord())
	_, err := bob.cipher.Decrypt(ctx, alice.addr, first)
	if !errors.Is(err, protocol.ErrPreKeyReplayed) || !errors.Is(err, protocol.ErrDuplicateMessage) {
		t.Fatalf("replayed PreKey message on the last-resort key: %v", err)
	}
	if _, err := bob.store.LoadKyberPreKey(ctx, b.KyberPreKeyID); err != nil {
		t.Fatalf("the last-resort key must be kept: %v", err)
	}
}
