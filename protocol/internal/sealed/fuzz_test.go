package sealed

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/veil-e2ee/veil/protocol/internal/curve"
)

// Fuzz targets for every decoder here. Seeds live in testdata/fuzz/ and
// are rewritten by
//
//	VEIL_WRITE_FUZZ_SEEDS=1 go test ./protocol/internal/sealed -run TestWriteFuzzSeeds

// fixedIdentity is a deterministic identity for the fuzz targets that
// open messages, so that seeds sealed to it open.
func fixedIdentity(label string) *Identity {
	id := &Identity{Private: sha256.Sum256([]byte(label))}
	curve.Clamp(&id.Private)
	id.Public[0] = 0x05
	curve.PublicKey((*[32]byte)(id.Public[1:]), &id.Private)
	return id
}

var (
	fuzzRecipient = fixedIdentity("veil sealed fuzz recipient")
	fuzzSender    = fixedIdentity("veil sealed fuzz sender")
)

func FuzzParseServerCert(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseServerCert(b)
		if err != nil {
			return
		}
		re := AppendSigned(nil, AppendServerCertBody(nil, c.KeyID, c.Key[:]), c.Signature)
		c2, err := ParseServerCert(re)
		if err != nil || c2.KeyID != c.KeyID || c2.Key != c.Key || !bytes.Equal(c2.Signature, c.Signature) {
			t.Fatalf("re-encoded server certificate differs: %v", err)
		}
	})
}

func FuzzParseSenderCert(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseSenderCert(b)
		if err != nil {
			return
		}
		if c.DeviceID < 1 || c.DeviceID > 127 {
			t.Fatalf("accepted device %d", c.DeviceID)
		}
		if c.Signer == nil {
			return // a reference: nothing to re-embed
		}
		re := AppendSigned(nil, AppendSenderCertBody(nil, &SenderCertBody{
			UUID: c.UUID, E164: c.E164, DeviceID: c.DeviceID, Expires: c.Expires,
			IdentityKey: c.IdentityKey[:], Signer: c.Signer.Raw,
		}), c.Signature)
		c2, err := ParseSenderCert(re)
		if err != nil || c2.UUID != c.UUID || c2.E164 != c.E164 || c2.DeviceID != c.DeviceID || c2.Expires != c.Expires ||
			c2.IdentityKey != c.IdentityKey || !bytes.Equal(c2.Signer.Raw, c.Signer.Raw) {
			t.Fatalf("re-encoded sender certificate differs: %v", err)
		}
	})
}

func FuzzParseUSMC(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUSMC(b)
		if err != nil {
			return
		}
		re := AppendUSMC(nil, u)
		if len(re) != USMCSize(u) {
			t.Fatalf("USMCSize %d, encoded %d", USMCSize(u), len(re))
		}
		u2, err := ParseUSMC(re)
		if err != nil || u2.Type != u.Type || u2.ContentHint != u.ContentHint || !bytes.Equal(u2.Content, u.Content) ||
			!bytes.Equal(u2.SenderCert, u.SenderCert) || !bytes.Equal(u2.GroupID, u.GroupID) {
			t.Fatalf("re-encoded USMC differs: %v", err)
		}
		// libsignal's encoding is canonical: re-encoding it is stable.
		if !bytes.Equal(AppendUSMC(nil, u2), re) {
			t.Fatal("USMC encoding is not stable")
		}
	})
}

// appendSent re-encodes a parsed message as version 0x23.
func appendSent(s *Sent) []byte {
	b := []byte{V2ServiceIDVersion, byte(len(s.Recipients))}
	if len(s.Recipients) > 127 {
		return nil
	}
	for _, r := range s.Recipients {
		b = append(b, r.Kind)
		b = append(b, r.UUID[:]...)
		if len(r.Devices) == 0 {
			b = append(b, 0)
			continue
		}
		for i, d := range r.Devices {
			reg := d.RegistrationID
			if i < len(r.Devices)-1 {
				reg |= hasMoreDevices
			}
			b = append(b, d.DeviceID, byte(reg>>8), byte(reg))
		}
		b = append(b, r.CAndAT...)
	}
	return append(b, s.Shared...)
}

func FuzzParseSent(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSent(b)
		if err != nil {
			return
		}
		if len(s.Shared) < X25519Size {
			t.Fatal("shared part too short")
		}
		for _, r := range s.Recipients {
			if len(r.Devices) > 0 && len(r.CAndAT) != MessageKeySize+AuthTagSize || len(r.Devices) == 0 && r.CAndAT != nil {
				t.Fatalf("recipient with %d devices and %d bytes of key material", len(r.Devices), len(r.CAndAT))
			}
			for _, d := range r.Devices {
				if d.DeviceID < 1 || d.DeviceID > 127 || d.RegistrationID > RegistrationIDMask {
					t.Fatalf("device %+v", d)
				}
			}
			if got := len(s.AppendReceived(nil, &r)); len(r.Devices) > 0 && got != 1+48+len(s.Shared) {
				t.Fatalf("received message of %d bytes", got)
			}
		}
		re := appendSent(s)
		if re == nil {
			return
		}
		s2, err := ParseSent(re)
		if err != nil || len(s2.Recipients) != len(s.Recipients) || !bytes.Equal(s2.Shared, s.Shared) {
			t.Fatalf("re-encoded message differs: %v", err)
		}
		for i := range s.Recipients {
			a, b := s.Recipients[i], s2.Recipients[i]
			if a.Kind != b.Kind || a.UUID != b.UUID || fmt.Sprint(a.Devices) != fmt.Sprint(b.Devices) || !bytes.Equal(a.CAndAT, b.CAndAT) {
				t.Fatalf("recipient %d differs", i)
			}
		}
	})
}

// FuzzOpen runs the recipient's side on arbitrary input: the v1 or v2
// layer, then the USMC and its certificate, and the v2 sender check.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		var usmc []byte
		var v2 *V2Opened
		switch b[0] {
		case V1Version:
			_, u, err := OpenV1(fuzzRecipient, b)
			if err != nil {
				return
			}
			usmc = u
		case V2UUIDVersion:
			o, err := OpenV2(fuzzRecipient, b)
			if err != nil {
				return
			}
			usmc, v2 = o.USMC, o
		default:
			return
		}
		u, err := ParseUSMC(usmc)
		if err != nil {
			return
		}
		c, err := ParseSenderCert(u.SenderCert)
		if err != nil {
			return
		}
		if v2 != nil {
			_ = v2.CheckSender(fuzzRecipient, &c.IdentityKey)
		}
	})
}

// seedMessages builds valid inputs for the seeds: certificates, a USMC,
// v1 and v2 messages from fuzzSender to fuzzRecipient, and a sent v2
// message.
func seedMessages() map[string][][]byte {
	server := AppendSigned(nil, AppendServerCertBody(nil, 7, fuzzSender.Public[:]), bytes.Repeat([]byte{0x5A}, 64))
	sender := AppendSigned(nil, AppendSenderCertBody(nil, &SenderCertBody{
		UUID: "9d0652a3-dcc3-4d11-975f-74d61598733f", E164: "+15550001111", DeviceID: 2, Expires: 1 << 41,
		IdentityKey: fuzzSender.Public[:], Signer: server,
	}), bytes.Repeat([]byte{0xA5}, 64))
	// The UUID as bytes and the signer by reference (libsignal's test id).
	ref := []byte{0x10, 0x01, 0x19, 0, 0, 0, 0, 0, 0, 0, 1, 0x22, 33}
	ref = append(ref, fuzzSender.Public[:]...)
	ref = append(append(ref, 0x3a, 16), bytes.Repeat([]byte{0xAB}, 16)...)
	ref = append(ref, 0x40, 0xd7, 0x86, 0xdf, 0x9a, 0x07)
	senderRef := AppendSigned(nil, ref, bytes.Repeat([]byte{1}, 64))
	usmc := AppendUSMC(nil, &USMC{Type: 7, SenderCert: sender, Content: []byte("\x33content"), ContentHint: 1, GroupID: []byte("gid")})
	usmcPreKey := AppendUSMC(nil, &USMC{Type: 3, SenderCert: sender, Content: []byte("\x44")})
	eph := sha256.Sum256([]byte("eph"))
	v1, err := SealV1(fuzzSender, &fuzzRecipient.Public, &eph, usmc)
	if err != nil {
		panic(err)
	}
	m := sha256.Sum256([]byte("m"))
	s := NewV2Sealer(fuzzSender, &m, usmc)
	sent := []byte{V2ServiceIDVersion, 2}
	r1 := &V2Recipient{Kind: KindACI, UUID: [16]byte{1}, Identity: fuzzRecipient.Public, Devices: []V2Device{{1, 0x1234}, {3, 7}}}
	r2 := &V2Recipient{Kind: KindPNI, UUID: [16]byte{2}, Identity: fuzzSender.Public, Devices: []V2Device{{2, 1}}}
	for _, r := range []*V2Recipient{r1, r2} {
		if sent, err = s.AppendRecipient(sent, r); err != nil {
			panic(err)
		}
	}
	sent = append(append(sent, s.EPublic()...), s.Ciphertext...)
	parsed, err := ParseSent(sent)
	if err != nil {
		panic(err)
	}
	v2 := parsed.AppendReceived(nil, &parsed.Recipients[0])
	return map[string][][]byte{
		"FuzzParseServerCert": {server, {0x0a, 0x00, 0x12, 0x00}},
		"FuzzParseSenderCert": {sender, senderRef},
		"FuzzParseUSMC":       {usmc, usmcPreKey},
		"FuzzParseSent":       {sent, {V2UUIDVersion, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}},
		"FuzzOpen":            {v1, v2},
	}
}

// TestSeedsAreValid keeps the seed builder honest: each seed parses (or
// opens) as intended.
func TestSeedsAreValid(t *testing.T) {
	seeds := seedMessages()
	if _, err := ParseServerCert(seeds["FuzzParseServerCert"][0]); err != nil {
		t.Error(err)
	}
	for _, b := range seeds["FuzzParseSenderCert"] {
		if _, err := ParseSenderCert(b); err != nil {
			t.Error(err)
		}
	}
	for _, b := range seeds["FuzzParseUSMC"] {
		if _, err := ParseUSMC(b); err != nil {
			t.Error(err)
		}
	}
	for _, b := range seeds["FuzzParseSent"] {
		if _, err := ParseSent(b); err != nil {
			t.Error(err)
		}
	}
	open := seeds["FuzzOpen"]
	if sender, _, err := OpenV1(fuzzRecipient, open[0]); err != nil || sender != fuzzSender.Public {
		t.Errorf("v1 seed: %v", err)
	}
	o, err := OpenV2(fuzzRecipient, open[1])
	if err != nil {
		t.Fatalf("v2 seed: %v", err)
	}
	if err := o.CheckSender(fuzzRecipient, &fuzzSender.Public); err != nil {
		t.Errorf("v2 seed sender: %v", err)
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("VEIL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set VEIL_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	for name, seeds := range seedMessages() {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
