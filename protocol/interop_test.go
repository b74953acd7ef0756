package protocol_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/veil-e2ee/veil/interop"
	"github.com/veil-e2ee/veil/protocol"
	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// These tests run Veil's protocol against libsignal-client 0.90.0 in Node
// (interop/peer.mjs). They skip loudly when Node or interop/node_modules
// is missing, and fail instead when CI=true.

const (
	goName   = "9d0652a0-5a2c-4b8e-9f3e-0c2d1a7b6e01" // the Go device's account id
	nodeName = "3f1b2c4d-8e9f-4a0b-9c1d-2e3f4a5b6c7d" // the libsignal device's account id
)

func toProtocolBundle(t *testing.T, b interop.Bundle) *protocol.PreKeyBundle {
	t.Helper()
	ik, err := protocol.ParsePublicKey(b.IdentityKey)
	if err != nil {
		t.Fatal(err)
	}
	spk, err := protocol.ParsePublicKey(b.SignedPreKey)
	if err != nil {
		t.Fatal(err)
	}
	kpk, err := protocol.ParseKEMPublicKey(b.KyberPreKey)
	if err != nil {
		t.Fatal(err)
	}
	pb := &protocol.PreKeyBundle{
		RegistrationID: b.RegistrationID, DeviceID: b.DeviceID, IdentityKey: ik,
		SignedPreKeyID: b.SignedPreKeyID, SignedPreKey: spk, SignedPreKeySignature: b.SignedPreKeySignature,
		KyberPreKeyID: b.KyberPreKeyID, KyberPreKey: kpk, KyberPreKeySignature: b.KyberPreKeySignature,
	}
	if len(b.PreKey) > 0 {
		pk, err := protocol.ParsePublicKey(b.PreKey)
		if err != nil {
			t.Fatal(err)
		}
		pb.HasPreKey, pb.PreKeyID, pb.PreKey = true, b.PreKeyID, pk
	}
	return pb
}

func fromProtocolBundle(b *protocol.PreKeyBundle) interop.Bundle {
	ib := interop.Bundle{
		RegistrationID: b.RegistrationID, DeviceID: b.DeviceID, IdentityKey: b.IdentityKey.Bytes(),
		SignedPreKeyID: b.SignedPreKeyID, SignedPreKey: b.SignedPreKey.Bytes(), SignedPreKeySignature: b.SignedPreKeySignature,
		KyberPreKeyID: b.KyberPreKeyID, KyberPreKey: b.KyberPreKey.Bytes(), KyberPreKeySignature: b.KyberPreKeySignature,
	}
	if b.HasPreKey {
		ib.PreKeyID, ib.PreKey = b.PreKeyID, b.PreKey.Bytes()
	}
	return ib
}

// checkCanonical asserts that our strict decoder accepts a libsignal
// message and that our encoder reproduces it byte for byte.
func checkCanonical(t *testing.T, typ int, body []byte) {
	t.Helper()
	inner := body
	if typ == interop.MessageTypePreKey {
		m, err := wire.ParsePreKeySignalMessage(body)
		if err != nil {
			t.Fatalf("our decoder rejects libsignal's PreKeySignalMessage: %v", err)
		}
		if re := wire.AppendPreKeySignalMessage(nil, &m); !bytes.Equal(re, body) {
			t.Fatalf("PreKeySignalMessage re-encodes differently:\n lib %x\n our %x", body, re)
		}
		inner = m.Message
	}
	m, auth, err := wire.ParseSignalMessage(inner)
	if err != nil {
		t.Fatalf("our decoder rejects libsignal's SignalMessage: %v", err)
	}
	if re := wire.AppendSignalMessage(nil, &m); !bytes.Equal(re, auth) {
		t.Fatalf("SignalMessage re-encodes differently:\n lib %x\n our %x", auth, re)
	}
}

// conversation drives 1,000 messages each way between a Go device and a
// libsignal device, mixing same-chain runs, replies (DH ratchet steps),
// reordering, gaps filled later, and replayed duplicates.
type conversation struct {
	t      *testing.T
	rng    *mrand.Rand
	peer   *interop.Peer
	goDev  *device
	goAddr protocol.Address // how libsignal addresses the Go device
	lsAddr protocol.Address // how the Go device addresses libsignal

	sentGo, sentLS int // messages sent by each side
	gotGo, gotLS   int // messages delivered to each side (first time)
	heldForLS      []heldMsg
	heldForGo      []heldMsg
}

type heldMsg struct {
	m   interop.Message
	pt  string
	age int // deliveries this message has been held back for
}

func (c *conversation) goSends(n int) {
	c.t.Helper()
	var batch []heldMsg
	for i := 0; i < n; i++ {
		pt := fmt.Sprintf("go→ls #%d %x", c.sentGo, c.rng.Uint64())
		ct, err := c.goDev.cipher.Encrypt(context.Background(), c.lsAddr, []byte(pt))
		if err != nil {
			c.t.Fatalf("Go encrypt: %v", err)
		}
		c.sentGo++
		batch = append(batch, heldMsg{m: interop.Message{Type: int(ct.Type), Body: ct.Body}, pt: pt})
	}
	c.deliverToLS(batch)
}

func (c *conversation) lsSends(n int) {
	c.t.Helper()
	var pts [][]byte
	for i := 0; i < n; i++ {
		pts = append(pts, []byte(fmt.Sprintf("ls→go #%d %x", c.sentLS, c.rng.Uint64())))
		c.sentLS++
	}
	ms, err := c.peer.EncryptMany("node", c.goAddr.Name, c.goAddr.DeviceID, pts)
	if err != nil {
		c.t.Fatalf("libsignal encrypt: %v", err)
	}
	var batch []heldMsg
	for i, m := range ms {
		checkCanonical(c.t, m.Type, m.Body)
		batch = append(batch, heldMsg{m: m, pt: string(pts[i])})
	}
	c.deliverToGo(batch)
}

// shuffleAndHold reorders a batch and holds some messages back for one
// or two later deliveries, so they arrive after messages from newer
// chains. (A message may not be held much longer: libsignal keeps only
// the last 5 receiving chains, so a message that arrives more than a few
// DH ratchet steps late is undecryptable by design, in both stacks.)
func (c *conversation) shuffleAndHold(batch []heldMsg, held *[]heldMsg) []heldMsg {
	c.rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	var now, keep []heldMsg
	for _, h := range *held {
		h.age++
		if h.age >= 2 || c.rng.IntN(2) == 0 {
			now = append(now, h)
		} else {
			keep = append(keep, h)
		}
	}
	for _, h := range batch {
		if c.rng.IntN(8) == 0 {
			keep = append(keep, h)
		} else {
			now = append(now, h)
		}
	}
	*held = keep
	c.rng.Shuffle(len(now), func(i, j int) { now[i], now[j] = now[j], now[i] })
	return now
}

func (c *conversation) deliverToLS(batch []heldMsg) {
	c.t.Helper()
	now := c.shuffleAndHold(batch, &c.heldForLS)
	if len(now) == 0 {
		return
	}
	var ms []interop.Message
	for _, h := range now {
		ms = append(ms, h.m)
	}
	dup := now[c.rng.IntN(len(now))]
	ms = append(ms, dup.m) // a replay after the original
	res, err := c.peer.DecryptMany("node", c.goAddr.Name, c.goAddr.DeviceID, ms)
	if err != nil {
		c.t.Fatalf("libsignal decrypt: %v", err)
	}
	for i, r := range res[:len(now)] {
		if r.Err != nil {
			c.t.Fatalf("libsignal could not decrypt Go's %q: %v", now[i].pt, r.Err)
		}
		if string(r.Plaintext) != now[i].pt {
			c.t.Fatalf("libsignal decrypted %q, want %q", r.Plaintext, now[i].pt)
		}
		c.gotLS++
	}
	if last := res[len(now)]; last.Err == nil {
		c.t.Fatalf("libsignal accepted a replayed message %q", dup.pt)
	}
}

func (c *conversation) deliverToGo(batch []heldMsg) {
	c.t.Helper()
	now := c.shuffleAndHold(batch, &c.heldForGo)
	ctx := context.Background()
	for _, h := range now {
		pt, err := c.goDev.cipher.Decrypt(ctx, c.lsAddr, protocol.CiphertextMessage{Type: protocol.MessageType(h.m.Type), Body: h.m.Body})
		if err != nil {
			c.t.Fatalf("Go could not decrypt libsignal's %q: %v", h.pt, err)
		}
		if string(pt) != h.pt {
			c.t.Fatalf("Go decrypted %q, want %q", pt, h.pt)
		}
		c.gotGo++
	}
	if len(now) > 0 {
		dup := now[c.rng.IntN(len(now))]
		_, err := c.goDev.cipher.Decrypt(ctx, c.lsAddr, protocol.CiphertextMessage{Type: protocol.MessageType(dup.m.Type), Body: dup.m.Body})
		if !errors.Is(err, protocol.ErrDuplicateMessage) {
			c.t.Fatalf("Go accepted a replayed message: %v", err)
		}
	}
}

func (c *conversation) flush() {
	c.t.Helper()
	for len(c.heldForLS) > 0 || len(c.heldForGo) > 0 {
		ls, g := c.heldForLS, c.heldForGo
		c.heldForLS, c.heldForGo = nil, nil
		c.deliverToLS(ls)
		c.deliverToGo(g)
	}
}

// run alternates runs of 1–30 messages from each side, starting with
// first, until both have sent total.
func (c *conversation) run(goFirst bool, total int) {
	c.t.Helper()
	turnGo := goFirst
	for c.sentGo < total || c.sentLS < total {
		n := 1 + c.rng.IntN(30)
		if c.rng.IntN(3) == 0 {
			n = 1 // ping-pong: a DH ratchet step on every message
		}
		if turnGo && c.sentGo < total {
			c.goSends(min(n, total-c.sentGo))
		} else if !turnGo && c.sentLS < total {
			c.lsSends(min(n, total-c.sentLS))
		}
		turnGo = !turnGo
	}
	c.flush()
	if c.gotGo != total || c.gotLS != total {
		c.t.Fatalf("delivered %d to Go and %d to libsignal, want %d each", c.gotGo, c.gotLS, total)
	}
}

func newConversation(t *testing.T, peer *interop.Peer, seed uint64) *conversation {
	c := &conversation{
		t: t, rng: mrand.New(mrand.NewPCG(seed, seed^0x5eed)), peer: peer,
		goAddr: protocol.Address{Name: goName, DeviceID: 1},
		lsAddr: protocol.Address{Name: nodeName, DeviceID: 1},
	}
	c.goDev = newDevice(t, goName)
	return c
}

func TestInteropGoInitiates(t *testing.T) {
	if testing.Short() {
		t.Skip("interop: skipped in -short mode")
	}
	peer := interop.Start(t)
	c := newConversation(t, peer, 1)
	if _, err := peer.Create("node", 4242); err != nil {
		t.Fatal(err)
	}
	b, _, err := peer.BundleWith("node", interop.BundleOptions{DeviceID: 1, PreKeyID: 7, SignedPreKeyID: 8, KyberPreKeyID: 9, WithPreKey: true, KyberOneTime: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.goDev.cipher.ProcessPreKeyBundle(context.Background(), c.lsAddr, toProtocolBundle(t, b)); err != nil {
		t.Fatal(err)
	}
	c.run(true, 1000)
}

func TestInteropLibsignalInitiates(t *testing.T) {
	if testing.Short() {
		t.Skip("interop: skipped in -short mode")
	}
	peer := interop.Start(t)
	c := newConversation(t, peer, 2)
	if _, err := peer.Create("node", 4243); err != nil {
		t.Fatal(err)
	}
	for _, withPreKey := range []bool{false, true} {
		b := fromProtocolBundle(c.goDev.bundle(t, withPreKey))
		if err := peer.ProcessBundle("node", c.goAddr.Name, c.goAddr.DeviceID, b); err != nil {
			t.Fatal(err)
		}
		// The second bundle replaces the first session: libsignal archives
		// it and so must we, after its first message arrives.
	}
	c.run(false, 1000)
	// libsignal's first PreKey message consumed our one-time prekey.
	if _, err := c.goDev.store.LoadPreKey(context.Background(), 2); !errors.Is(err, protocol.ErrNoPreKey) {
		t.Fatalf("one-time prekey not consumed: %v", err)
	}
}

func TestInteropSafetyNumbersAndSignatures(t *testing.T) {
	peer := interop.Start(t)
	a, err := protocol.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	node, err := peer.Create("node", 1)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, err := protocol.ParsePublicKey(node.IdentityKey)
	if err != nil {
		t.Fatal(err)
	}
	ida, idb := []byte(goName)[:16], []byte(nodeName)[:16]
	ours, err := protocol.NewSafetyNumber(ida, a.Public, idb, nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	disp, scan, err := peer.Fingerprint(interop.FingerprintInput{LocalID: ida, LocalKey: a.Public.Bytes(), RemoteID: idb, RemoteKey: node.IdentityKey})
	if err != nil {
		t.Fatal(err)
	}
	if disp != ours.Displayable || !bytes.Equal(scan, ours.Scannable) {
		t.Fatalf("safety numbers differ:\n libsignal %s %x\n veil      %s %x", disp, scan, ours.Displayable, ours.Scannable)
	}
	// The other side's view matches when scanned.
	_, theirScan, err := peer.Fingerprint(interop.FingerprintInput{LocalID: idb, LocalKey: node.IdentityKey, RemoteID: ida, RemoteKey: a.Public.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ours.MatchesScanned(theirScan); !ok || err != nil {
		t.Fatalf("libsignal's scannable does not match ours: %v", err)
	}
	if ok, err := peer.FingerprintCompare(theirScan, ours.Scannable); !ok || err != nil {
		t.Fatalf("libsignal does not match our scannable: %v", err)
	}

	// XEdDSA both ways.
	msg := []byte("signed prekey bytes")
	sig, err := a.Sign(rand.Reader, msg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := peer.Verify(a.Public.Bytes(), msg, sig); !ok || err != nil {
		t.Fatalf("libsignal rejects our XEdDSA signature: %v", err)
	}
	lsig, err := peer.Sign("node", msg)
	if err != nil {
		t.Fatal(err)
	}
	if !nodeKey.VerifySignature(msg, lsig) {
		t.Fatal("we reject libsignal's XEdDSA signature")
	}
	lsig[10] ^= 1
	if nodeKey.VerifySignature(msg, lsig) {
		t.Fatal("we accept a corrupted libsignal signature")
	}
}
