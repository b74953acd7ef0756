package protocol_test

import (
	"bytes"
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
