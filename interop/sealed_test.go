package interop

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// ACIs as address names: sealed sender v2 needs ServiceId strings.
const (
	aliceACI = "9d0652a3-dcc3-4d11-975f-74d61598733f"
	bobACI   = "796abedb-ca4e-4f18-8803-1fde5b921f9f"
	carolACI = "b3a1bb3d-0e56-4ab2-9b4e-4ab4b0a9d2c1"
	groupID  = "d1d1d1d1-7000-11eb-b32a-33b8a8a487a6"
)

// uuidDevices creates devices named by their ACI and opens a session from
// "from" to each of "to" (and back, so both sides have a usable session).
func uuidDevices(t *testing.T, p *Peer, from string, to ...string) map[string]Identity {
	t.Helper()
	ids := map[string]Identity{}
	for _, n := range append([]string{from}, to...) {
		id, err := p.Create(n, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = id
	}
	for i, n := range to {
		b, err := p.Bundle(n, 1, uint32(100+i), uint32(200+i), uint32(300+i), true)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.ProcessBundle(from, n, 1, b); err != nil {
			t.Fatal(err)
		}
		send(t, p, from, n, "hello", MessageTypePreKey)
		send(t, p, n, from, "hi", MessageTypeWhisper)
	}
	return ids
}

func TestSenderKeys(t *testing.T) {
	p := Start(t)
	uuidDevices(t, p, aliceACI, bobACI)
	alice := Address{aliceACI, 1}

	skdm, err := p.GroupDistribution(aliceACI, alice, groupID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.GroupProcessDistribution(bobACI, alice, skdm); err != nil || got != groupID {
		t.Fatalf("process distribution: %q, %v; want %q", got, err, groupID)
	}
	var msgs [][]byte
	for _, pt := range []string{"g0", "g1", "g2"} {
		m, err := p.GroupEncrypt(aliceACI, alice, groupID, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 || m[0] != 0x33 {
			t.Fatalf("sender-key message starts %x, want version byte 0x33", m[:1])
		}
		msgs = append(msgs, m)
	}
	for _, i := range []int{2, 0, 1} { // out of order
		pt, err := p.GroupDecrypt(bobACI, alice, msgs[i])
		if err != nil || string(pt) != []string{"g0", "g1", "g2"}[i] {
			t.Errorf("group message %d: %q, %v", i, pt, err)
		}
	}
	if _, err := p.GroupDecrypt(bobACI, alice, msgs[1]); !HasCode(err, CodeDuplicatedMessage) {
		t.Errorf("duplicate group message: err = %v, want %s", err, CodeDuplicatedMessage)
	}
	// The message is signed: a flipped bit anywhere is rejected.
	bad := bytes.Clone(msgs[0])
	bad[len(bad)-1] ^= 1
	if _, err := p.GroupDecrypt(bobACI, alice, bad); !errors.Is(err, ErrPeer) {
		t.Errorf("tampered group message: err = %v, want a peer error", err)
	}
	// Someone without the distribution message cannot read it.
	if _, err := p.Create(carolACI, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GroupDecrypt(carolACI, alice, msgs[0]); !errors.Is(err, ErrPeer) {
		t.Errorf("group message without a sender key: err = %v, want a peer error", err)
	}
}

func TestSealedSenderV1(t *testing.T) {
	p := Start(t)
	ids := uuidDevices(t, p, aliceACI, bobACI)
	now := time.Now()
	cert, err := p.SenderCertificate(SenderCertOptions{
		SenderUUID: aliceACI, SenderE164: "+15550001111", SenderDeviceID: 1,
		SenderKey: ids[aliceACI].IdentityKey, ExpirationMillis: now.Add(time.Hour).UnixMilli(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.TrustRoot) != 33 || len(cert.TrustRootPrivate) != 32 {
		t.Fatalf("trust root %d / %d bytes", len(cert.TrustRoot), len(cert.TrustRootPrivate))
	}
	body, err := p.SealedEncrypt(aliceACI, bobACI, 1, cert.Certificate, []byte("sealed"))
	if err != nil {
		t.Fatal(err)
	}
	if body[0] != 0x11 {
		t.Errorf("sealed sender v1 version byte = %#x, want 0x11", body[0])
	}
	in := SealedDecryptInput{Body: body, TrustRoot: cert.TrustRoot, TimestampMillis: now.UnixMilli(), LocalUUID: bobACI, LocalDeviceID: 1}

	// Checks that do not touch the session come first: a wrong trust root
	// and an expired certificate are rejected.
	other, err := p.SenderCertificate(SenderCertOptions{SenderUUID: aliceACI, SenderDeviceID: 1, SenderKey: ids[aliceACI].IdentityKey, ExpirationMillis: 1})
	if err != nil {
		t.Fatal(err)
	}
	wrongRoot := in
	wrongRoot.TrustRoot = other.TrustRoot
	if _, err := p.SealedDecrypt(bobACI, wrongRoot); !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), "trust root") {
		t.Errorf("wrong trust root: err = %v, want a peer error naming the trust root", err)
	}
	expired := in
	expired.TimestampMillis = now.Add(2 * time.Hour).UnixMilli()
	if _, err := p.SealedDecrypt(bobACI, expired); !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), "trust root") {
		t.Errorf("expired certificate: err = %v, want a peer error naming the trust root", err)
	}

	self := in
	self.LocalUUID = aliceACI
	if _, err := p.SealedDecrypt(bobACI, self); !HasCode(err, CodeSealedSenderSelfSend) {
		t.Errorf("self-send: err = %v, want %s", err, CodeSealedSenderSelfSend)
	}

	r, err := p.SealedDecrypt(bobACI, in)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Plaintext) != "sealed" || r.SenderUUID != aliceACI || r.SenderDeviceID != 1 || r.SenderE164 != "+15550001111" {
		t.Errorf("sealed result = %+v", r)
	}
	// The outer layer alone names the sender and carries a Whisper message.
	u, err := p.SealedDecryptToUSMC(bobACI, body)
	if err != nil {
		t.Fatal(err)
	}
	if u.MsgType != MessageTypeWhisper || u.SenderUUID != aliceACI || !bytes.Equal(u.SenderCertificate, cert.Certificate) {
		t.Errorf("USMC = type %d sender %s", u.MsgType, u.SenderUUID)
	}
}

func TestSealedSenderV2(t *testing.T) {
	p := Start(t)
	ids := uuidDevices(t, p, aliceACI, bobACI, carolACI)
	alice := Address{aliceACI, 1}
	skdm, err := p.GroupDistribution(aliceACI, alice, groupID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{bobACI, carolACI} {
		if _, err := p.GroupProcessDistribution(n, alice, skdm); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := p.SenderCertificate(SenderCertOptions{
		SenderUUID: aliceACI, SenderDeviceID: 1, SenderKey: ids[aliceACI].IdentityKey,
		ExpirationMillis: time.Now().Add(time.Hour).UnixMilli(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := p.SealedEncryptMulti(aliceACI, SealedMultiInput{
		Self: alice, DistributionID: groupID,
		Recipients:        []Address{{bobACI, 1}, {carolACI, 1}},
		SenderCertificate: cert.Certificate, Plaintext: []byte("to the group"),
		ContentHint: 1, GroupID: []byte("group-1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	split, err := p.SealedMultiSplit(sent)
	if err != nil {
		t.Fatal(err)
	}
	if len(split) != 2 {
		t.Fatalf("split into %d recipients, want 2", len(split))
	}
	for _, n := range []string{bobACI, carolACI} {
		r, ok := split[n]
		if !ok || len(r.DeviceIDs) != 1 || r.DeviceIDs[0] != 1 || r.RegistrationIDs[0] != ids[n].RegistrationID {
			t.Fatalf("recipient %s: %+v", n, r)
		}
		u, err := p.SealedDecryptToUSMC(n, r.Body)
		if err != nil {
			t.Fatalf("%s open v2: %v", n, err)
		}
		if u.MsgType != MessageTypeSenderKey || u.SenderUUID != aliceACI || string(u.GroupID) != "group-1" || u.ContentHint != 1 {
			t.Errorf("%s USMC = %+v", n, u)
		}
		pt, err := p.GroupDecrypt(n, alice, u.Contents)
		if err != nil || string(pt) != "to the group" {
			t.Errorf("%s group plaintext %q, %v", n, pt, err)
		}
	}
	// A recipient's share is sealed to that recipient only.
	if _, err := p.SealedDecryptToUSMC(carolACI, split[bobACI].Body); !errors.Is(err, ErrPeer) {
		t.Errorf("carol opening bob's share: err = %v, want a peer error", err)
	}
}
