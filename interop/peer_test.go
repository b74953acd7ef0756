package interop

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// pair creates devices "alice" and "bob" and returns their identities.
func pair(t *testing.T, p *Peer) (alice, bob Identity) {
	t.Helper()
	var err error
	if alice, err = p.Create("alice", 1111); err != nil {
		t.Fatalf("create alice: %v", err)
	}
	if bob, err = p.Create("bob", 2222); err != nil {
		t.Fatalf("create bob: %v", err)
	}
	return alice, bob
}

// session makes alice open a session to bob (device 1) from a fresh bundle
// and checks the first PreKey message arrives.
func session(t *testing.T, p *Peer, withPreKey bool) Bundle {
	t.Helper()
	b, err := p.Bundle("bob", 1, 31, 32, 33, withPreKey)
	if err != nil {
		t.Fatalf("bob bundle: %v", err)
	}
	if err := p.ProcessBundle("alice", "bob", 1, b); err != nil {
		t.Fatalf("alice process bob's bundle: %v", err)
	}
	send(t, p, "alice", "bob", "first", MessageTypePreKey)
	return b
}

// send encrypts msg from one device to the other's device 1, checks the
// message type, decrypts it and checks the plaintext.
func send(t *testing.T, p *Peer, from, to, msg string, wantType int) {
	t.Helper()
	m, err := p.Encrypt(from, to, 1, []byte(msg))
	if err != nil {
		t.Fatalf("%s encrypt: %v", from, err)
	}
	if m.Type != wantType {
		t.Fatalf("%s→%s message type = %d, want %d", from, to, m.Type, wantType)
	}
	pt, err := p.Decrypt(to, from, 1, m)
	if err != nil {
		t.Fatalf("%s decrypt: %v", to, err)
	}
	if string(pt) != msg {
		t.Fatalf("%s decrypted %q, want %q", to, pt, msg)
	}
}

func x25519Public(t *testing.T, priv []byte) []byte {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		t.Fatalf("X25519 private key: %v", err)
	}
	return append([]byte{0x05}, k.PublicKey().Bytes()...)
}

func TestPinnedVersion(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Private      bool              `json:"private"`
		Dependencies map[string]string `json:"dependencies"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatal(err)
	}
	if !pkg.Private {
		t.Error("package.json must be private: true")
	}
	if got := pkg.Dependencies["@signalapp/libsignal-client"]; got != LibsignalVersion {
		t.Errorf("package.json pins libsignal-client %q, want exactly %q", got, LibsignalVersion)
	}
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	raw, err = os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &lock); err != nil {
		t.Fatal(err)
	}
	if got := lock.Packages["node_modules/@signalapp/libsignal-client"].Version; got != LibsignalVersion {
		t.Errorf("package-lock.json has libsignal-client %q, want %q", got, LibsignalVersion)
	}
}

func TestVersion(t *testing.T) {
	p := Start(t)
	v, err := p.Version()
	if err != nil {
		t.Fatal(err)
	}
	if v.Libsignal != LibsignalVersion || v.Node == "" {
		t.Errorf("Version() = %+v, want libsignal %s", v, LibsignalVersion)
	}
}

func TestBundleFormat(t *testing.T) {
	p := Start(t)
	id, err := p.Create("bob", 4242)
	if err != nil {
		t.Fatal(err)
	}
	if len(id.IdentityKey) != 33 || id.IdentityKey[0] != 0x05 || id.RegistrationID != 4242 {
		t.Fatalf("identity = %x / %d, want 33 bytes 0x05… and registration id 4242", id.IdentityKey, id.RegistrationID)
	}
	b, priv, err := p.BundleWith("bob", BundleOptions{
		DeviceID: 3, PreKeyID: 7, SignedPreKeyID: 8, KyberPreKeyID: 9, WithPreKey: true, ExportPrivate: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.RegistrationID != 4242 || b.DeviceID != 3 || b.PreKeyID != 7 || b.SignedPreKeyID != 8 || b.KyberPreKeyID != 9 {
		t.Errorf("bundle ids = %+v", b)
	}
	if !bytes.Equal(b.IdentityKey, id.IdentityKey) {
		t.Error("bundle identity key differs from the device's")
	}
	for name, k := range map[string][]byte{"preKey": b.PreKey, "signedPreKey": b.SignedPreKey} {
		if len(k) != 33 || k[0] != 0x05 {
			t.Errorf("%s = %d bytes (type %#x), want 33 bytes of type 0x05", name, len(k), k[0])
		}
	}
	if len(b.KyberPreKey) != 1569 || b.KyberPreKey[0] != 0x08 {
		t.Errorf("kyberPreKey = %d bytes, want 1,569 bytes of type 0x08", len(b.KyberPreKey))
	}
	if len(priv.KyberPreKey) != 3169 || priv.KyberPreKey[0] != 0x08 {
		t.Errorf("kyber secret = %d bytes, want 3,169 bytes of type 0x08", len(priv.KyberPreKey))
	}
	// The exported private halves match the public ones.
	if !bytes.Equal(x25519Public(t, priv.IdentityKey), b.IdentityKey) ||
		!bytes.Equal(x25519Public(t, priv.PreKey), b.PreKey) ||
		!bytes.Equal(x25519Public(t, priv.SignedPreKey), b.SignedPreKey) {
		t.Error("exported private keys do not match the bundle's public keys")
	}
	// Both prekey signatures cover the serialized key, type byte included.
	for name, c := range map[string][2][]byte{
		"signed prekey": {b.SignedPreKey, b.SignedPreKeySignature},
		"kyber prekey":  {b.KyberPreKey, b.KyberPreKeySignature},
	} {
		ok, err := p.Verify(b.IdentityKey, c[0], c[1])
		if err != nil || !ok {
			t.Errorf("%s signature does not verify over the serialized key: %v, %v", name, ok, err)
		}
	}

	nb, nbPriv, err := p.BundleWith("bob", BundleOptions{DeviceID: 1, SignedPreKeyID: 1, KyberPreKeyID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(nb.PreKey) != 0 || nb.PreKeyID != 0 || nbPriv.IdentityKey != nil {
		t.Errorf("bundle without prekey / export: preKey %x id %d, private %x", nb.PreKey, nb.PreKeyID, nbPriv.IdentityKey)
	}
}

func TestFixedIdentity(t *testing.T) {
	p := Start(t)
	priv := bytes.Repeat([]byte{0x41}, 32)
	id, err := p.CreateWith("carol", CreateOptions{IdentityPrivate: priv})
	if err != nil {
		t.Fatal(err)
	}
	if want := x25519Public(t, priv); !bytes.Equal(id.IdentityKey, want) {
		t.Errorf("imported identity key = %x, want %x", id.IdentityKey, want)
	}
	if _, err := p.Create("carol", 0); !HasCode(err, CodeBadRequest) {
		t.Errorf("creating an existing device: err = %v, want %s", err, CodeBadRequest)
	}
	again, err := p.CreateWith("carol", CreateOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again.IdentityKey, id.IdentityKey) {
		t.Error("reinstalled device kept its identity key")
	}
}

func TestSessionSetupAndExchange(t *testing.T) {
	for _, withPreKey := range []bool{true, false} {
		t.Run(fmt.Sprintf("withPreKey=%v", withPreKey), func(t *testing.T) {
			p := Start(t)
			pair(t, p)
			session(t, p, withPreKey)

			// Until bob replies, alice keeps sending PreKey messages.
			send(t, p, "alice", "bob", "second", MessageTypePreKey)
			send(t, p, "bob", "alice", "reply", MessageTypeWhisper)
			send(t, p, "alice", "bob", "third", MessageTypeWhisper)
			for i := range 6 { // several DH ratchet steps
				send(t, p, "bob", "alice", fmt.Sprintf("b%d", i), MessageTypeWhisper)
				send(t, p, "alice", "bob", fmt.Sprintf("a%d", i), MessageTypeWhisper)
			}
			send(t, p, "alice", "bob", "", MessageTypeWhisper) // empty plaintext

			for _, side := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
				s, err := p.HasSession(side[0], side[1], 1)
				if err != nil {
					t.Fatal(err)
				}
				if !s.Exists || !s.Usable || s.SessionVersion != 4 || !s.PQRatchet {
					t.Errorf("%s's session with %s = %+v, want a usable version-4 session with SPQR", side[0], side[1], s)
				}
			}
			if s, err := p.HasSession("alice", "bob", 2); err != nil || s.Exists {
				t.Errorf("session with bob.2 = %+v, %v; want none", s, err)
			}
		})
	}
}

func TestOneTimePreKeyIsConsumed(t *testing.T) {
	p := Start(t)
	pair(t, p)
	b := session(t, p, true)
	// A second initiator using the same bundle needs the deleted one-time
	// prekey and must fail.
	if _, err := p.Create("mallory", 0); err != nil {
		t.Fatal(err)
	}
	if err := p.ProcessBundle("mallory", "bob", 1, b); err != nil {
		t.Fatal(err)
	}
	m, err := p.Encrypt("mallory", "bob", 1, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Decrypt("bob", "mallory", 1, m); !errors.Is(err, ErrPeer) {
		t.Errorf("reusing a consumed one-time prekey: err = %v, want a peer error", err)
	}
}

func TestOutOfOrderAndDuplicates(t *testing.T) {
	p := Start(t)
	pair(t, p)
	session(t, p, true)
	send(t, p, "bob", "alice", "ack", MessageTypeWhisper)

	// Chain 1: five messages, delivered out of order, two held back.
	chain1, err := p.EncryptMany("alice", "bob", 1, [][]byte{[]byte("m0"), []byte("m1"), []byte("m2"), []byte("m3"), []byte("m4")})
	if err != nil {
		t.Fatal(err)
	}
	order := []int{4, 0, 2}
	var batch []Message
	for _, i := range order {
		batch = append(batch, chain1[i])
	}
	res, err := p.DecryptMany("bob", "alice", 1, batch)
	if err != nil {
		t.Fatal(err)
	}
	for k, i := range order {
		if res[k].Err != nil || string(res[k].Plaintext) != fmt.Sprintf("m%d", i) {
			t.Errorf("out-of-order m%d: %q, %v", i, res[k].Plaintext, res[k].Err)
		}
	}

	// A DH ratchet step, then chain 2, then the held-back chain-1 messages.
	send(t, p, "bob", "alice", "step", MessageTypeWhisper)
	chain2, err := p.EncryptMany("alice", "bob", 1, [][]byte{[]byte("n0"), []byte("n1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m    Message
		want string
	}{{chain2[1], "n1"}, {chain1[3], "m3"}, {chain2[0], "n0"}, {chain1[1], "m1"}} {
		pt, err := p.Decrypt("bob", "alice", 1, c.m)
		if err != nil || string(pt) != c.want {
			t.Errorf("late delivery of %s: %q, %v", c.want, pt, err)
		}
	}

	// Every message delivered twice is rejected as a duplicate.
	for _, m := range []Message{chain1[2], chain1[3], chain2[1]} {
		_, err := p.Decrypt("bob", "alice", 1, m)
		if !HasCode(err, CodeDuplicatedMessage) {
			t.Errorf("duplicate: err = %v, want %s", err, CodeDuplicatedMessage)
		}
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Message == "" || pe.Method != "decrypt" {
			t.Errorf("duplicate: error %#v lacks libsignal's text", err)
		}
	}
	// A tampered message fails and does not break the session.
	bad := Message{Type: chain2[0].Type, Body: bytes.Clone(chain2[0].Body)}
	bad.Body[len(bad.Body)-1] ^= 1
	if _, err := p.Decrypt("bob", "alice", 1, bad); !errors.Is(err, ErrPeer) {
		t.Errorf("tampered message: err = %v, want a peer error", err)
	}
	send(t, p, "alice", "bob", "still fine", MessageTypeWhisper)
}

func TestFingerprints(t *testing.T) {
	p := Start(t)
	alice, bob := pair(t, p)
	aliceID := []byte("alice-aci-uuid-1")
	bobID := []byte("bob-aci-uuid-002")

	aDisp, aScan, err := p.Fingerprint(FingerprintInput{LocalID: aliceID, LocalKey: alice.IdentityKey, RemoteID: bobID, RemoteKey: bob.IdentityKey})
	if err != nil {
		t.Fatal(err)
	}
	bDisp, bScan, err := p.Fingerprint(FingerprintInput{LocalID: bobID, LocalKey: bob.IdentityKey, RemoteID: aliceID, RemoteKey: alice.IdentityKey})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9]{60}$`).MatchString(aDisp) {
		t.Errorf("displayable = %q, want 60 digits", aDisp)
	}
	if aDisp != bDisp {
		t.Errorf("safety numbers differ: %s vs %s", aDisp, bDisp)
	}
	if match, err := p.FingerprintCompare(aScan, bScan); err != nil || !match {
		t.Errorf("scannable compare from alice: %v, %v; want a match", match, err)
	}
	if match, err := p.FingerprintCompare(bScan, aScan); err != nil || !match {
		t.Errorf("scannable compare from bob: %v, %v; want a match", match, err)
	}

	// Another key for bob changes the number, and scanning shows a mismatch.
	other, err := p.CreateWith("bob", CreateOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	cDisp, cScan, err := p.Fingerprint(FingerprintInput{LocalID: bobID, LocalKey: other.IdentityKey, RemoteID: aliceID, RemoteKey: alice.IdentityKey})
	if err != nil {
		t.Fatal(err)
	}
	if cDisp == aDisp {
		t.Error("a different identity key gave the same safety number")
	}
	if match, err := p.FingerprintCompare(aScan, cScan); err != nil || match {
		t.Errorf("compare with a changed key: %v, %v; want no match", match, err)
	}

	// Version and iteration count change the result.
	v1, _, err := p.Fingerprint(FingerprintInput{Version: 1, Iterations: 1024, LocalID: aliceID, LocalKey: alice.IdentityKey, RemoteID: bobID, RemoteKey: bob.IdentityKey})
	if err != nil {
		t.Fatal(err)
	}
	if v1 == aDisp {
		t.Error("version 1 / 1,024 iterations gave the default safety number")
	}
	if _, _, err := p.Fingerprint(FingerprintInput{LocalID: aliceID, LocalKey: []byte{1, 2, 3}, RemoteID: bobID, RemoteKey: bob.IdentityKey}); !errors.Is(err, ErrPeer) {
		t.Errorf("malformed key: err = %v, want a peer error", err)
	}
}

func TestSignVerify(t *testing.T) {
	p := Start(t)
	alice, bob := pair(t, p)
	msg := []byte("the message")
	sig1, err := p.Sign("alice", msg)
	if err != nil {
		t.Fatal(err)
	}
	sig2, err := p.Sign("alice", msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig1) != 64 {
		t.Fatalf("signature is %d bytes, want 64", len(sig1))
	}
	if bytes.Equal(sig1, sig2) {
		t.Error("XEdDSA signatures are randomized, got the same one twice")
	}
	tampered := bytes.Clone(sig1)
	tampered[10] ^= 0x80
	for _, c := range []struct {
		name          string
		pub, msg, sig []byte
		want          bool
	}{
		{"valid", alice.IdentityKey, msg, sig1, true},
		{"second valid", alice.IdentityKey, msg, sig2, true},
		{"wrong key", bob.IdentityKey, msg, sig1, false},
		{"wrong message", alice.IdentityKey, []byte("the massage"), sig1, false},
		{"tampered signature", alice.IdentityKey, msg, tampered, false},
		{"short signature", alice.IdentityKey, msg, sig1[:63], false},
	} {
		got, err := p.Verify(c.pub, c.msg, c.sig)
		if err != nil || got != c.want {
			t.Errorf("%s: Verify = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := p.Verify([]byte{0x05, 1}, msg, sig1); !errors.Is(err, ErrPeer) {
		t.Errorf("malformed public key: err = %v, want a peer error", err)
	}
}

func TestIdentityChange(t *testing.T) {
	p := Start(t)
	_, bob := pair(t, p)
	session(t, p, true)
	send(t, p, "bob", "alice", "reply", MessageTypeWhisper)

	// Bob reinstalls: new identity key, new bundle.
	newBob, err := p.CreateWith("bob", CreateOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	nb, err := p.Bundle("bob", 1, 41, 42, 43, true)
	if err != nil {
		t.Fatal(err)
	}
	err = p.ProcessBundle("alice", "bob", 1, nb)
	if !HasCode(err, CodeUntrustedIdentity) {
		t.Fatalf("bundle with a changed identity: err = %v, want %s", err, CodeUntrustedIdentity)
	}
	if known, err := p.RemoteIdentity("alice", "bob", 1); err != nil || !bytes.Equal(known, bob.IdentityKey) {
		t.Errorf("alice's stored key for bob = %x, %v; want the original", known, err)
	}

	// The new bob also cannot start a session towards alice: alice rejects
	// the incoming PreKey message.
	ab, err := p.Bundle("alice", 1, 51, 52, 53, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ProcessBundle("bob", "alice", 1, ab); err != nil {
		t.Fatal(err)
	}
	m, err := p.Encrypt("bob", "alice", 1, []byte("it's me"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Decrypt("alice", "bob", 1, m); !HasCode(err, CodeUntrustedIdentity) {
		t.Errorf("PreKey message from a changed identity: err = %v, want %s", err, CodeUntrustedIdentity)
	}

	// Once alice accepts the new key, the session works.
	if err := p.TrustIdentity("alice", "bob", 1, newBob.IdentityKey); err != nil {
		t.Fatal(err)
	}
	// The old session now names an identity that is no longer trusted.
	if _, err := p.Encrypt("alice", "bob", 1, []byte("old session")); !HasCode(err, CodeUntrustedIdentity) {
		t.Errorf("encrypt on the old session: err = %v, want %s", err, CodeUntrustedIdentity)
	}
	pt, err := p.Decrypt("alice", "bob", 1, m)
	if err != nil || string(pt) != "it's me" {
		t.Fatalf("after trusting the new key: %q, %v", pt, err)
	}
	send(t, p, "alice", "bob", "welcome back", MessageTypeWhisper)
}

func TestArchiveSession(t *testing.T) {
	p := Start(t)
	pair(t, p)
	session(t, p, true)
	if err := p.ArchiveSession("alice", "bob", 1); err != nil {
		t.Fatal(err)
	}
	s, err := p.HasSession("alice", "bob", 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Usable {
		t.Errorf("archived session still usable: %+v", s)
	}
	if _, err := p.Encrypt("alice", "bob", 1, []byte("x")); !errors.Is(err, ErrPeer) {
		t.Errorf("encrypt after archiving: err = %v, want a peer error", err)
	}
}

func TestRequestErrors(t *testing.T) {
	p := Start(t)
	if _, err := p.Sign("nobody", []byte("x")); !HasCode(err, CodeBadRequest) {
		t.Errorf("unknown device: err = %v, want %s", err, CodeBadRequest)
	}
	if err := p.Call("no_such_method", nil, nil); !HasCode(err, CodeBadRequest) {
		t.Errorf("unknown method: err = %v, want %s", err, CodeBadRequest)
	}
	if _, err := p.Create("alice", 0); err != nil {
		t.Fatal(err)
	}
	// Non-canonical base64 is refused rather than silently mangled.
	err := p.Call("sign", map[string]string{"device": "alice", "message": "ab$c"}, nil)
	if !HasCode(err, CodeBadRequest) {
		t.Errorf("bad base64: err = %v, want %s", err, CodeBadRequest)
	}
	if _, err := p.Decrypt("alice", "bob", 1, Message{Type: 9, Body: []byte{1}}); !errors.Is(err, ErrPeer) {
		t.Errorf("unknown message type: err = %v, want a peer error", err)
	}
	if _, err := p.Bench("nope", 1, 1); !HasCode(err, CodeBadRequest) {
		t.Errorf("unknown bench op: err = %v, want %s", err, CodeBadRequest)
	}
	// The peer survives errors.
	if _, err := p.Sign("alice", []byte("x")); err != nil {
		t.Errorf("after errors: %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	p := Start(t)
	alice, _ := pair(t, p)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				msg := fmt.Appendf(nil, "g%d-%d", g, i)
				sig, err := p.Sign("alice", msg)
				if err != nil {
					errs <- err
					return
				}
				if ok, err := p.Verify(alice.IdentityKey, msg, sig); err != nil || !ok {
					errs <- fmt.Errorf("verify %s: %v, %v", msg, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	p := Start(t)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Version(); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: err = %v, want ErrClosed", err)
	}
}

func TestBench(t *testing.T) {
	p := Start(t)
	for _, op := range []string{BenchSetup, BenchSameChain, BenchAlternating} {
		r, err := p.Bench(op, 4, 64)
		if err != nil || r <= 0 {
			t.Errorf("Bench(%s) = %v, %v", op, r, err)
		}
	}
}

func TestProcessDeath(t *testing.T) {
	p := Start(t)
	p.stderr.Write([]byte("last words\n"))
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, err := p.Version()
	if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "last words") {
		t.Errorf("call to a dead peer: err = %v, want ErrClosed with stderr", err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("Close of a crashed peer: err = %v, want ErrClosed", err)
	}
}

func TestTimeout(t *testing.T) {
	p := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := p.CallContext(ctx, "bench", map[string]any{"op": BenchAlternating, "n": 1_000_000, "size": 1024}, nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow call: err = %v, want ErrTimeout", err)
	}
	// The peer is unusable afterwards: its state is unknown.
	if _, err := p.Version(); !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrClosed) {
		t.Errorf("call after a timeout: err = %v, want ErrTimeout or ErrClosed", err)
	}
}
