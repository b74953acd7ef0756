package protocol_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/interop"
	"github.com/veil-e2ee/veil/protocol"
)

// Sealed sender against libsignal 0.90.0 (interop/peer.mjs).

const sealedGroup = "d1d1d1d1-7000-11eb-b32a-33b8a8a487a6" // a distribution id

// lsMultiSender sets up, inside the peer, a sender device (named by its
// ACI) with sessions to devices[name] devices of each recipient name and a
// certificate, and returns the sender's certificate options.
func lsMultiSender(t *testing.T, p *interop.Peer, sender string, recipients map[string][]uint32) interop.SenderCert {
	t.Helper()
	id, err := p.Create(sender, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := uint32(1)
	for name, devs := range recipients {
		for _, d := range devs {
			dev := fmt.Sprintf("%s.%d", name, d)
			if _, err := p.Create(dev, 0); err != nil {
				t.Fatal(err)
			}
			b, err := p.Bundle(dev, d, n, n, n, true)
			if err != nil {
				t.Fatal(err)
			}
			n++
			if err := p.ProcessBundle(sender, name, d, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	cert, err := p.SenderCertificate(interop.SenderCertOptions{
		SenderUUID: sender, SenderDeviceID: 1, SenderKey: id.IdentityKey,
		ExpirationMillis: time.Now().Add(time.Hour).UnixMilli(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestSealedV2ServerSplitInterop: a v2 message libsignal sends is split by
// ParseMultiRecipient + MessageFor into exactly the bytes libsignal's own
// server API produces, with the same devices and registration ids.
func TestSealedV2ServerSplitInterop(t *testing.T) {
	p := interop.Start(t)
	sender := newACI(t)
	r1, r2, r3 := newACI(t), newACI(t), newACI(t)
	recipients := map[string][]uint32{r1: {1}, r2: {1, 2, 3}, r3: {7}}
	cert := lsMultiSender(t, p, sender, recipients)
	var addrs []interop.Address
	for _, r := range []string{r1, r2, r3} {
		for _, d := range recipients[r] {
			addrs = append(addrs, interop.Address{Name: r, DeviceID: d})
		}
	}
	if _, err := p.GroupDistribution(sender, interop.Address{Name: sender, DeviceID: 1}, sealedGroup); err != nil {
		t.Fatal(err)
	}
	body, err := p.SealedEncryptMulti(sender, interop.SealedMultiInput{
		Self: interop.Address{Name: sender, DeviceID: 1}, DistributionID: sealedGroup,
		Recipients: addrs, SenderCertificate: cert.Certificate, Plaintext: []byte("to the group"),
		ContentHint: 1, GroupID: []byte("group-id"),
	})
	if err != nil {
		t.Fatal(err)
	}
	split, err := p.SealedMultiSplit(body)
	if err != nil {
		t.Fatal(err)
	}
	m, err := protocol.ParseMultiRecipient(body)
	if err != nil {
		t.Fatalf("ParseMultiRecipient of libsignal's message (version %#x): %v", body[0], err)
	}
	if len(m.Recipients) != len(split) {
		t.Fatalf("%d recipients, libsignal has %d", len(m.Recipients), len(split))
	}
	for i, r := range m.Recipients {
		name := r.String()
		want, ok := split[name]
		if !ok {
			t.Fatalf("recipient %s not in libsignal's split", name)
		}
		if r.Kind != protocol.ACI {
			t.Errorf("%s: kind %d, want ACI", name, r.Kind)
		}
		if len(r.Devices) != len(want.DeviceIDs) {
			t.Fatalf("%s: %d devices, libsignal %d", name, len(r.Devices), len(want.DeviceIDs))
		}
		for j, d := range r.Devices {
			if d.DeviceID != want.DeviceIDs[j] || d.RegistrationID != want.RegistrationIDs[j] {
				t.Errorf("%s device %d: %d/%d, libsignal %d/%d", name, j, d.DeviceID, d.RegistrationID, want.DeviceIDs[j], want.RegistrationIDs[j])
			}
		}
		got := m.MessageFor(i)
		if !bytes.Equal(got, want.Body) {
			t.Errorf("%s: MessageFor differs from libsignal's\n got %s\nwant %s", name, hex.EncodeToString(got), hex.EncodeToString(want.Body))
		}
		if len(got) != m.ReceivedSize() {
			t.Errorf("ReceivedSize %d, message %d bytes", m.ReceivedSize(), len(got))
		}
		// What the server hands out still opens at the device, in libsignal.
		u, err := p.SealedDecryptToUSMC(fmt.Sprintf("%s.%d", name, r.Devices[0].DeviceID), got)
		if err != nil {
			t.Errorf("%s: libsignal cannot open MessageFor: %v", name, err)
		} else if u.SenderUUID != sender || u.MsgType != interop.MessageTypeSenderKey {
			t.Errorf("%s: opened USMC from %s type %d", name, u.SenderUUID, u.MsgType)
		}
	}
}

// newACI returns a random version-4 UUID string.
func newACI(t *testing.T) string {
	t.Helper()
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		t.Fatal(err)
	}
	u[6] = u[6]&0x0F | 0x40
	u[8] = u[8]&0x3F | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// TestSenderCertificateFromLibsignal: certificates libsignal issues parse
// and validate in Go, with the same fields, and fail the same checks.
func TestSenderCertificateFromLibsignal(t *testing.T) {
	p := interop.Start(t)
	alice := newDevice(t, newACI(t))
	now := time.Now()
	exp := now.Add(time.Hour).UnixMilli()
	lc, err := p.SenderCertificate(interop.SenderCertOptions{
		ServerKeyID: 0x1234, SenderUUID: alice.addr.Name, SenderE164: "+15550001111", SenderDeviceID: 3,
		SenderKey: alice.id.Public.Bytes(), ExpirationMillis: exp,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocol.ParseSenderCertificate(lc.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if c.SenderUUID != alice.addr.Name || c.SenderE164 != "+15550001111" || c.DeviceID != 3 ||
		!c.IdentityKey.Equal(alice.id.Public) || c.Expiration.UnixMilli() != exp || c.Signer.KeyID != 0x1234 {
		t.Fatalf("parsed %+v", c)
	}
	if !bytes.Equal(c.Signer.Serialize(), lc.ServerCertificate) {
		t.Error("embedded server certificate differs from libsignal's")
	}
	root, err := protocol.ParsePublicKey(lc.TrustRoot)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(root, now); err != nil {
		t.Fatalf("libsignal's certificate does not validate: %v", err)
	}
	if err := c.Validate(root, time.UnixMilli(exp+1)); !errors.Is(err, protocol.ErrCertificateExpired) {
		t.Errorf("expired: %v", err)
	}
	if err := c.Validate(root, now, 0x1234); !errors.Is(err, protocol.ErrRevokedCertificate) {
		t.Errorf("revoked: %v", err)
	}
	if err := c.Validate(alice.id.Public, now); !errors.Is(err, protocol.ErrInvalidCertificate) {
		t.Errorf("wrong trust root: %v", err)
	}

	// Go issues a certificate with the same keys: libsignal's server
	// certificate bytes and ours are the same encoding, and the sender
	// certificate differs only by its (randomized) signature and e164.
	rootPriv, err := protocol.ParsePrivateKey(lc.TrustRootPrivate)
	if err != nil {
		t.Fatal(err)
	}
	serverPriv, err := protocol.ParsePrivateKey(lc.ServerPrivate)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := protocol.NewServerCertificate(protocol.NewKeyPair(rootPriv), 0x1234, serverPriv.PublicKey(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc) != len(lc.ServerCertificate) || !bytes.Equal(sc[:len(sc)-64], lc.ServerCertificate[:len(sc)-64]) {
		t.Errorf("server certificate encodings differ:\n go %x\nlib %x", sc, lc.ServerCertificate)
	}
	lc2, err := p.SenderCertificate(interop.SenderCertOptions{
		TrustRootPrivate: lc.TrustRootPrivate, ServerPrivate: lc.ServerPrivate, ServerKeyID: 0x1234,
		SenderUUID: alice.addr.Name, SenderDeviceID: 3, SenderKey: alice.id.Public.Bytes(), ExpirationMillis: exp,
	})
	if err != nil {
		t.Fatal(err)
	}
	lsc, _ := protocol.ParseSenderCertificate(lc2.Certificate)
	gc, err := protocol.IssueSenderCertificate(protocol.NewKeyPair(serverPriv), lsc.Signer.Serialize(), alice.addr.Name, 3, alice.id.Public, time.UnixMilli(exp), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(gc) != len(lc2.Certificate) || !bytes.Equal(gc[:len(gc)-64], lc2.Certificate[:len(gc)-64]) {
		t.Errorf("sender certificate encodings differ:\n go %x\nlib %x", gc, lc2.Certificate)
	}
}

// sealedLink sets up a Go device and a libsignal device ("ls", named by
// its ACI inside the peer) with sessions both ways, and certificates for
// both: the Go device's issued by Go, libsignal's by libsignal.
type sealedLink struct {
	p      *interop.Peer
	goDev  *device
	lsName string // libsignal's ACI and its device label in the peer
	lsAddr protocol.Address
	lsID   protocol.PublicKey
	goCS   *certSet           // Go's trust root and server key
	goCert []byte             // Go device's certificate from goCS
	lsCert interop.SenderCert // libsignal device's certificate
	lsRoot protocol.PublicKey
}

func newSealedLink(t *testing.T, p *interop.Peer) *sealedLink {
	t.Helper()
	l := &sealedLink{p: p, goDev: newDevice(t, newACI(t)), lsName: newACI(t)}
	l.lsAddr = protocol.Address{Name: l.lsName, DeviceID: 1}
	id, err := p.Create(l.lsName, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.lsID, err = protocol.ParsePublicKey(id.IdentityKey); err != nil {
		t.Fatal(err)
	}
	// libsignal → Go session.
	if err := p.ProcessBundle(l.lsName, l.goDev.addr.Name, 1, fromProtocolBundle(l.goDev.bundle(t, true))); err != nil {
		t.Fatal(err)
	}
	// Go → libsignal session.
	lb, err := p.Bundle(l.lsName, 1, 1, 1, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.goDev.cipher.ProcessPreKeyBundle(context.Background(), l.lsAddr, toProtocolBundle(t, lb)); err != nil {
		t.Fatal(err)
	}
	l.goCS = newCertSet(t, 42)
	l.goCert = l.goCS.issue(t, l.goDev, time.Now().Add(time.Hour))
	if l.lsCert, err = p.SenderCertificate(interop.SenderCertOptions{
		SenderUUID: l.lsName, SenderE164: "+15550002222", SenderDeviceID: 1, SenderKey: id.IdentityKey,
		ExpirationMillis: time.Now().Add(time.Hour).UnixMilli(),
	}); err != nil {
		t.Fatal(err)
	}
	if l.lsRoot, err = protocol.ParsePublicKey(l.lsCert.TrustRoot); err != nil {
		t.Fatal(err)
	}
	return l
}

// lsOpen has libsignal open a sealed 1:1 message with the Go trust root.
func (l *sealedLink) lsOpen(body []byte, at time.Time) (interop.SealedResult, error) {
	return l.p.SealedDecrypt(l.lsName, interop.SealedDecryptInput{
		Body: body, TrustRoot: l.goCS.root.Public.Bytes(), TimestampMillis: at.UnixMilli(),
		LocalUUID: l.lsName, LocalDeviceID: 1,
	})
}

// TestSealedV1Interop: sealed 1:1 messages both ways, PreKey then Signal
// messages, each side validating the other's certificates.
func TestSealedV1Interop(t *testing.T) {
	p := interop.Start(t)
	l := newSealedLink(t, p)
	ctx := context.Background()
	for i := range 4 {
		// libsignal → Go.
		msg := fmt.Sprintf("from libsignal #%d", i)
		body, err := p.SealedEncrypt(l.lsName, l.goDev.addr.Name, 1, l.lsCert.Certificate, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		r, err := l.goDev.cipher.SealedDecrypt(ctx, body, l.lsRoot, time.Now(), l.goDev.addr)
		if err != nil {
			t.Fatalf("#%d: Go cannot open libsignal's sealed message: %v", i, err)
		}
		if string(r.Plaintext) != msg || r.Sender != l.lsAddr || r.SenderE164 != "+15550002222" {
			t.Fatalf("#%d: %q from %v (%q)", i, r.Plaintext, r.Sender, r.SenderE164)
		}
		// USMC re-encodes byte for byte.
		if re, err := r.Content.Serialize(); err != nil {
			t.Fatal(err)
		} else if u, err := l.goDev.cipher.Unseal(ctx, body); err != nil || !bytes.Equal(re, mustSerialize(t, u)) {
			t.Fatalf("#%d: content does not re-encode: %v", i, err)
		}

		// Go → libsignal.
		msg = fmt.Sprintf("from Go #%d", i)
		body, err = l.goDev.cipher.SealedEncrypt(ctx, l.lsAddr, l.goCert, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		lr, err := l.lsOpen(body, time.Now())
		if err != nil {
			t.Fatalf("#%d: libsignal cannot open Go's sealed message: %v", i, err)
		}
		if string(lr.Plaintext) != msg || lr.SenderUUID != l.goDev.addr.Name || lr.SenderDeviceID != 1 {
			t.Fatalf("#%d: libsignal got %q from %s.%d", i, lr.Plaintext, lr.SenderUUID, lr.SenderDeviceID)
		}
	}
}

func mustSerialize(t *testing.T, u *protocol.UnidentifiedContent) []byte {
	t.Helper()
	b, err := u.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSealedRejectionsInterop: what Go's SealedDecrypt refuses, libsignal
// refuses too, for messages Go seals: an expired certificate, a
// certificate whose identity key did not seal the message, a revoked
// server key id, a certificate under another trust root, a self-send and
// a flipped byte.
func TestSealedRejectionsInterop(t *testing.T) {
	p := interop.Start(t)
	l := newSealedLink(t, p)
	ctx := context.Background()
	now := time.Now()
	// A Go device that plays libsignal's part, to see Go reject the same
	// messages.
	twin := newDevice(t, newACI(t))
	link(t, l.goDev, twin, false)

	mallory := newDevice(t, l.goDev.addr.Name)
	rev := newCertSet(t, 0xDEADC357)
	other := newCertSet(t, 42)
	// selfCert names the recipient as the sender, with the Go device's
	// identity key (which seals the message).
	selfCert := func(to protocol.Address) []byte {
		c, err := protocol.IssueSenderCertificate(l.goCS.server, l.goCS.serverCert, to.Name, to.DeviceID, l.goDev.id.Public, now.Add(time.Hour), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name string
		cert func(to protocol.Address) []byte
		want error
		code string // libsignal's error code, when it has a specific one
	}{
		{"expired", func(protocol.Address) []byte { return l.goCS.issue(t, l.goDev, now.Add(-time.Minute)) }, protocol.ErrCertificateExpired, ""},
		{"identity key ≠ sealing key", func(protocol.Address) []byte { return l.goCS.issue(t, mallory, now.Add(time.Hour)) }, protocol.ErrDecryption, ""},
		{"revoked server key", func(protocol.Address) []byte { return rev.issue(t, l.goDev, now.Add(time.Hour)) }, protocol.ErrRevokedCertificate, ""},
		{"other trust root", func(protocol.Address) []byte { return other.issue(t, l.goDev, now.Add(time.Hour)) }, protocol.ErrInvalidCertificate, ""},
		{"self-send", selfCert, protocol.ErrSelfSend, interop.CodeSealedSenderSelfSend},
	}
	for _, c := range cases {
		root := l.goCS.root.Public
		if c.name == "revoked server key" {
			root = rev.root.Public
		}
		// libsignal: the Go device seals to it with the bad certificate.
		body, err := l.goDev.cipher.SealedEncrypt(ctx, l.lsAddr, c.cert(l.lsAddr), []byte(c.name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.SealedDecrypt(l.lsName, interop.SealedDecryptInput{Body: body, TrustRoot: root.Bytes(),
			TimestampMillis: now.UnixMilli(), LocalUUID: l.lsName, LocalDeviceID: 1})
		if err == nil || (c.code != "" && !interop.HasCode(err, c.code)) {
			t.Errorf("%s: libsignal: err = %v", c.name, err)
		}
		// Go: the same kind of certificate sealed to the twin.
		body, err = l.goDev.cipher.SealedEncrypt(ctx, twin.addr, c.cert(twin.addr), []byte(c.name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := twin.cipher.SealedDecrypt(ctx, body, root, now, twin.addr); !errors.Is(err, c.want) {
			t.Errorf("%s: Go: err = %v, want %v", c.name, err, c.want)
		}
	}
	// Flipped bytes: libsignal refuses each (sampled; every byte is
	// checked in Go by TestSealedV1Rejections), and the untouched message
	// still opens afterwards.
	body, err := l.goDev.cipher.SealedEncrypt(ctx, l.lsAddr, l.goCert, []byte("flip"))
	if err != nil {
		t.Fatal(err)
	}
	// Byte 0 is skipped: libsignal takes 0x10 as v1 too (Go accepts only
	// 0x11), and would consume the message.
	for i := 1; i < len(body); i += 7 {
		bad := bytes.Clone(body)
		bad[i] ^= 0x01
		if _, err := l.lsOpen(bad, now); err == nil {
			t.Errorf("libsignal accepts byte %d flipped", i)
		}
	}
	if r, err := l.lsOpen(body, now); err != nil || string(r.Plaintext) != "flip" {
		t.Fatalf("untouched message: %q, %v", r.Plaintext, err)
	}
}

// TestSealedV2FromLibsignal: libsignal's v2 message, split by Go's server
// code, opens at Go devices (one recipient with two devices).
func TestSealedV2FromLibsignal(t *testing.T) {
	p := interop.Start(t)
	sender := newACI(t)
	other := newACI(t)
	cert := lsMultiSender(t, p, sender, map[string][]uint32{other: {1}})
	goName := newACI(t)
	gos := []*device{newDevice(t, goName)}
	gos = append(gos, sibling(t, gos[0], 2))
	for _, g := range gos {
		d := g.addr.DeviceID
		if err := p.ProcessBundle(sender, goName, d, fromProtocolBundle(g.bundle(t, true))); err != nil {
			t.Fatal(err)
		}
	}
	skdm, err := p.GroupDistribution(sender, interop.Address{Name: sender, DeviceID: 1}, sealedGroup)
	if err != nil {
		t.Fatal(err)
	}
	body, err := p.SealedEncryptMulti(sender, interop.SealedMultiInput{
		Self: interop.Address{Name: sender, DeviceID: 1}, DistributionID: sealedGroup,
		Recipients:        []interop.Address{{Name: other, DeviceID: 1}, {Name: goName, DeviceID: 1}, {Name: goName, DeviceID: 2}},
		SenderCertificate: cert.Certificate, Plaintext: []byte("group"), ContentHint: 2, GroupID: []byte("gid"),
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := protocol.ParseMultiRecipient(body)
	if err != nil {
		t.Fatal(err)
	}
	idx := -1
	for i, r := range m.Recipients {
		if r.String() == goName {
			idx = i
		}
	}
	if idx < 0 || len(m.Recipients[idx].Devices) != 2 {
		t.Fatalf("Go recipient not found or wrong devices: %+v", m.Recipients)
	}
	root, _ := protocol.ParsePublicKey(cert.TrustRoot)
	for _, g := range gos {
		u, err := g.cipher.Unseal(context.Background(), m.MessageFor(idx))
		if err != nil {
			t.Fatalf("device %d: Go cannot unseal libsignal's v2 message: %v", g.addr.DeviceID, err)
		}
		if u.Type != protocol.SenderKeyMessageType || u.Sender.SenderUUID != sender || u.ContentHint != protocol.ContentHintImplicit ||
			string(u.GroupID) != "gid" || len(u.Contents) == 0 || u.Contents[0] != 0x33 {
			t.Errorf("device %d: content %+v", g.addr.DeviceID, u)
		}
		if err := u.Sender.Validate(root, time.Now()); err != nil {
			t.Errorf("certificate: %v", err)
		}
		// The sender-key message inside decrypts with Go's group cipher.
		gc := protocol.NewGroupCipher(protocol.NewInMemorySenderKeyStore(), rand.Reader)
		from := protocol.Address{Name: u.Sender.SenderUUID, DeviceID: u.Sender.DeviceID}
		if _, err := gc.ProcessDistribution(context.Background(), from, skdm); err != nil {
			t.Fatal(err)
		}
		if pt, err := gc.Decrypt(context.Background(), from, u.Contents); err != nil || string(pt) != "group" {
			t.Errorf("device %d: group message %q, %v", g.addr.DeviceID, pt, err)
		}
	}
}

// TestGroupMessageToLibsignal: the whole group path from Go — a sender
// key distributed to libsignal, a group message sealed with v2 to the
// libsignal device, split by libsignal's server API, unsealed and
// decrypted by libsignal.
func TestGroupMessageToLibsignal(t *testing.T) {
	p := interop.Start(t)
	l := newSealedLink(t, p)
	ctx := context.Background()
	gc := protocol.NewGroupCipher(protocol.NewInMemorySenderKeyStore(), rand.Reader)
	dist, err := protocol.ParseDistributionID(sealedGroup)
	if err != nil {
		t.Fatal(err)
	}
	skdm, err := gc.NewDistribution(ctx, l.goDev.addr, dist)
	if err != nil {
		t.Fatal(err)
	}
	goAddr := interop.Address{Name: l.goDev.addr.Name, DeviceID: 1}
	if _, err := p.GroupProcessDistribution(l.lsName, goAddr, skdm); err != nil {
		t.Fatal(err)
	}
	cert, err := protocol.ParseSenderCertificate(l.goCert)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msg := fmt.Sprintf("group message %d", i)
		skm, err := gc.Encrypt(ctx, l.goDev.addr, dist, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		sent, err := l.goDev.cipher.SealV2(ctx, []protocol.Address{l.lsAddr}, &protocol.UnidentifiedContent{
			Type: protocol.SenderKeyMessageType, Contents: skm, Sender: cert, ContentHint: protocol.ContentHintResendable, GroupID: []byte("g"),
		})
		if err != nil {
			t.Fatal(err)
		}
		split, err := p.SealedMultiSplit(sent)
		if err != nil {
			t.Fatal(err)
		}
		u, err := p.SealedDecryptToUSMC(l.lsName, split[l.lsName].Body)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := p.GroupDecrypt(l.lsName, interop.Address{Name: u.SenderUUID, DeviceID: u.SenderDeviceID}, u.Contents)
		if err != nil || string(pt) != msg {
			t.Fatalf("libsignal decrypts %q, %v; want %q", pt, err, msg)
		}
	}
}

// TestSealV2ToLibsignal: Go's v2 message is split by libsignal's server
// API exactly as by Go's, and opens at every libsignal device (one
// account with two devices sharing an identity).
func TestSealV2ToLibsignal(t *testing.T) {
	p := interop.Start(t)
	ctx := context.Background()
	now := time.Now()
	alice := newDevice(t, newACI(t))
	names := []string{newACI(t), newACI(t)}
	devs := map[string][]uint32{names[0]: {1}, names[1]: {1, 2}}
	var addrs []protocol.Address
	n := uint32(1)
	for _, name := range names {
		id, err := protocol.GenerateIdentityKeyPair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs[name] {
			label := fmt.Sprintf("%s.%d", name, d)
			if _, err := p.CreateWith(label, interop.CreateOptions{IdentityPrivate: id.Private.Bytes()}); err != nil {
				t.Fatal(err)
			}
			b, err := p.Bundle(label, d, n, n, n, true)
			if err != nil {
				t.Fatal(err)
			}
			n++
			a := protocol.Address{Name: name, DeviceID: d}
			if err := alice.cipher.ProcessPreKeyBundle(ctx, a, toProtocolBundle(t, b)); err != nil {
				t.Fatal(err)
			}
			addrs = append(addrs, a)
		}
	}
	cs := newCertSet(t, 9)
	cert, err := protocol.ParseSenderCertificate(cs.issue(t, alice, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	u := &protocol.UnidentifiedContent{Type: protocol.SenderKeyMessageType, Contents: []byte("\x33not really a sender-key message"),
		Sender: cert, ContentHint: protocol.ContentHintResendable, GroupID: []byte("group")}
	body, err := alice.cipher.SealV2(ctx, addrs, u)
	if err != nil {
		t.Fatal(err)
	}
	split, err := p.SealedMultiSplit(body)
	if err != nil {
		t.Fatalf("libsignal cannot parse Go's v2 message: %v", err)
	}
	m, err := protocol.ParseMultiRecipient(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(split) != len(m.Recipients) {
		t.Fatalf("libsignal sees %d recipients, Go %d", len(split), len(m.Recipients))
	}
	for i, r := range m.Recipients {
		want := split[r.String()]
		if !bytes.Equal(m.MessageFor(i), want.Body) {
			t.Errorf("%s: Go's split differs from libsignal's", r)
		}
		if len(want.DeviceIDs) != len(devs[r.String()]) {
			t.Errorf("%s: libsignal sees devices %v", r, want.DeviceIDs)
		}
		for _, d := range want.DeviceIDs {
			got, err := p.SealedDecryptToUSMC(fmt.Sprintf("%s.%d", r, d), want.Body)
			if err != nil {
				t.Fatalf("%s.%d: libsignal cannot open Go's v2 message: %v", r, d, err)
			}
			if got.MsgType != int(u.Type) || !bytes.Equal(got.Contents, u.Contents) || got.ContentHint != 1 ||
				!bytes.Equal(got.GroupID, u.GroupID) || !bytes.Equal(got.SenderCertificate, cert.Serialize()) ||
				got.SenderUUID != alice.addr.Name {
				t.Errorf("%s.%d: libsignal opened %+v", r, d, got)
			}
		}
	}
	// libsignal opens Go's v1 seal of the same content too.
	v1, err := alice.cipher.SealV1(ctx, addrs[0], u)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.SealedDecryptToUSMC(names[0]+".1", v1); err != nil || !bytes.Equal(got.Contents, u.Contents) {
		t.Errorf("v1 seal of a sender-key content: %+v, %v", got, err)
	}
}
