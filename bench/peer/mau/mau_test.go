// Package mau benchmarks go.mau.fi/libsignal, a Go port of libsignal-protocol-java (X3DH and
// the Double Ratchet; no PQXDH, no Kyber), on the three workloads every Veil protocol benchmark
// also reports: session setup, same-chain messages and alternating-direction messages.
package mau

import (
	"bytes"
	"context"
	"testing"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/libsignal/logger"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/session"
	"go.mau.fi/libsignal/state/record"
	"go.mau.fi/libsignal/util/keyhelper"
	"go.mau.fi/libsignal/util/optional"
)

// quietLogger drops the library's log lines (its default logger prints Info and above to
// stdout). The library still formats every Debug message before calling the logger; that cost
// is part of what is measured, as it is in any program using the library.
type quietLogger struct{}

func (quietLogger) Debug(string, string)   {}
func (quietLogger) Info(string, string)    {}
func (quietLogger) Warning(string, string) {}
func (quietLogger) Error(string, string)   {}
func (quietLogger) Configure(string)       {}

func init() {
	var l logger.Loggable = quietLogger{}
	logger.Setup(&l)
}

var ser = serialize.NewProtoBufSerializer()

type party struct {
	addr     *protocol.SignalAddress
	regID    uint32
	pair     *identity.KeyPair
	ids      *identityStore
	prekeys  *preKeyStore
	signed   *signedPreKeyStore
	sessions *sessionStore
	spk      *record.SignedPreKey
}

func newParty(tb testing.TB, name string, device uint32) *party {
	tb.Helper()
	pair, err := keyhelper.GenerateIdentityKeyPair()
	if err != nil {
		tb.Fatal(err)
	}
	p := &party{
		addr:     protocol.NewSignalAddress(name, device),
		regID:    keyhelper.GenerateRegistrationID(),
		pair:     pair,
		prekeys:  &preKeyStore{m: map[uint32]*record.PreKey{}},
		signed:   &signedPreKeyStore{m: map[uint32]*record.SignedPreKey{}},
		sessions: &sessionStore{m: map[string]*record.Session{}, ser: ser},
	}
	p.ids = &identityStore{pair: pair, regID: p.regID, trusted: map[string]*identity.Key{}}
	p.spk, err = keyhelper.GenerateSignedPreKey(pair, 1, ser.SignedPreKeyRecord)
	if err != nil {
		tb.Fatal(err)
	}
	p.signed.m[1] = p.spk
	return p
}

// resetSessions forgets every session, so the next setup starts from nothing.
func (p *party) resetSessions() {
	p.sessions.m = map[string]*record.Session{}
	p.ids.trusted = map[string]*identity.Key{}
}

// bundle makes a fresh one-time prekey and returns the bundle a server would hand out.
func (p *party) bundle(tb testing.TB, id uint32) *prekey.Bundle {
	tb.Helper()
	kp, err := ecc.GenerateKeyPair()
	if err != nil {
		tb.Fatal(err)
	}
	pk := record.NewPreKey(id, kp, ser.PreKeyRecord)
	p.prekeys.m[id] = pk
	return prekey.NewBundle(p.regID, p.addr.DeviceID(), optional.NewOptionalUint32(id), p.spk.ID(),
		kp.PublicKey(), p.spk.KeyPair().PublicKey(), p.spk.Signature(), p.pair.PublicKey())
}

func (p *party) cipher(peer *party) *session.Cipher {
	b := session.NewBuilder(p.sessions, p.prekeys, p.signed, p.ids, peer.addr, ser)
	return session.NewCipher(b, peer.addr)
}

var ctx = context.Background()

// setup runs the whole first contact: the initiator processes the bundle and encrypts, the
// responder parses the PreKeySignalMessage from bytes and decrypts it.
func setup(tb testing.TB, alice, bob *party, bundle *prekey.Bundle, msg []byte) (aToB, bToA *session.Cipher) {
	b := session.NewBuilder(alice.sessions, alice.prekeys, alice.signed, alice.ids, bob.addr, ser)
	if err := b.ProcessBundle(ctx, bundle); err != nil {
		tb.Fatal(err)
	}
	aToB = session.NewCipher(b, bob.addr)
	ct, err := aToB.Encrypt(ctx, msg)
	if err != nil {
		tb.Fatal(err)
	}
	wire, err := protocol.NewPreKeySignalMessageFromBytes(ct.Serialize(), ser.PreKeySignalMessage, ser.SignalMessage)
	if err != nil {
		tb.Fatal(err)
	}
	bToA = bob.cipher(alice)
	pt, err := bToA.DecryptMessage(ctx, wire)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(pt, msg) {
		tb.Fatal("setup: plaintext differs")
	}
	return aToB, bToA
}

// send encrypts on one side and decrypts the serialized SignalMessage on the other.
func send(tb testing.TB, from, to *session.Cipher, msg []byte) {
	ct, err := from.Encrypt(ctx, msg)
	if err != nil {
		tb.Fatal(err)
	}
	if ct.Type() != protocol.WHISPER_TYPE {
		tb.Fatalf("message type %d, want a SignalMessage", ct.Type())
	}
	wire, err := protocol.NewSignalMessageFromBytes(ct.Serialize(), ser.SignalMessage)
	if err != nil {
		tb.Fatal(err)
	}
	pt, err := to.Decrypt(ctx, wire)
	if err != nil {
		tb.Fatal(err)
	}
	if len(pt) != len(msg) {
		tb.Fatal("plaintext differs")
	}
}

func reportRate(b *testing.B, msgs int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(msgs)/s, "msgs/s")
	}
}

// BenchmarkSessionSetup: bundle → first message → responder decrypts (one X3DH each side).
// Making the bundle's one-time prekey is outside the timer.
func BenchmarkSessionSetup(b *testing.B) {
	alice, bob := newParty(b, "alice", 1), newParty(b, "bob", 1)
	msg := make([]byte, 1024)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		b.StopTimer()
		alice.resetSessions()
		bob.resetSessions()
		bundle := bob.bundle(b, uint32(n%0xFFFFFF+1))
		b.StartTimer()
		setup(b, alice, bob, bundle, msg)
		n++
	}
	reportRate(b, n)
}

// established returns a session in which the initiator has seen a reply, so that both sides
// send plain SignalMessages.
func established(b *testing.B) (aToB, bToA *session.Cipher) {
	alice, bob := newParty(b, "alice", 1), newParty(b, "bob", 1)
	aToB, bToA = setup(b, alice, bob, bob.bundle(b, 1), []byte("hello"))
	send(b, bToA, aToB, []byte("hi"))
	return aToB, bToA
}

// BenchmarkSameChain1KiB: one side keeps sending 1 KiB messages; each op is one encrypt, the
// wire round trip and one decrypt, all on the same symmetric chain.
func BenchmarkSameChain1KiB(b *testing.B) {
	aToB, bToA := established(b)
	msg := make([]byte, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	n := 0
	for b.Loop() {
		send(b, aToB, bToA, msg)
		n++
	}
	reportRate(b, n)
}

// BenchmarkAlternating1KiB: the sides take turns, so every message starts a new chain with a
// DH ratchet step on both sides.
func BenchmarkAlternating1KiB(b *testing.B) {
	aToB, bToA := established(b)
	msg := make([]byte, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			send(b, aToB, bToA, msg)
		} else {
			send(b, bToA, aToB, msg)
		}
		n++
	}
	reportRate(b, n)
}
