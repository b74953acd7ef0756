package protocol_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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
