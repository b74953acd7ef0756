package ratchet

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

func keyPair(t testing.TB) KeyPair {
	t.Helper()
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return NewKeyPair(&k)
}

// pair runs PQXDH by hand (without Kyber encapsulation: a fixed shared
// secret stands in) and returns Alice's and Bob's states.
func pair(t testing.TB) (alice, bob *State) {
	t.Helper()
	aID, bID, base, spk, otk, rk := keyPair(t), keyPair(t), keyPair(t), keyPair(t), keyPair(t), keyPair(t)
	ss := bytes.Repeat([]byte{7}, 32)
	otkPub := otk.Public
	a, err := InitAlice(&AliceParams{OurIdentity: aID, OurBase: base, OurRatchet: rk, TheirIdentity: bID.Public,
		TheirSignedPreKey: spk.Public, TheirOneTimeKey: &otkPub, KyberShared: ss})
	if err != nil {
		t.Fatal(err)
	}
	b, err := InitBob(&BobParams{OurIdentity: bID, OurSignedPreKey: spk, OurOneTimeKey: &otk,
		TheirIdentity: aID.Public, TheirBaseKey: base.Public, KyberShared: ss})
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func send(t testing.TB, s *State, pt string) []byte {
	t.Helper()
	b, err := s.Encrypt(nil, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recv(s *State, msg []byte) (string, error) {
	m, auth, err := wire.ParseSignalMessage(msg)
	if err != nil {
		return "", err
	}
	pt, err := s.Decrypt(&m, auth, rand.Reader)
	return string(pt), err
}

func TestPQXDHAgrees(t *testing.T) {
	a, b := pair(t)
	for _, m := range []string{"one", "two"} {
		if pt, err := recv(b, send(t, a, m)); err != nil || pt != m {
			t.Fatalf("%q: %v", pt, err)
		}
	}
	if pt, err := recv(a, send(t, b, "back")); err != nil || pt != "back" {
		t.Fatalf("%q: %v", pt, err)
	}
}

func TestReceiverChainsAreBoundedToFive(t *testing.T) {
	a, b := pair(t)
	recv(b, send(t, a, "start"))
	var late []byte
	for i := 0; i < 7; i++ {
		msg := send(t, a, "x")
		if i == 0 {
			late = send(t, a, "late") // on the chain that will be evicted
		}
		if _, err := recv(b, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := recv(a, send(t, b, "y")); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.Receivers) != MaxReceiverChains {
		t.Fatalf("%d receiver chains, want %d", len(b.Receivers), MaxReceiverChains)
	}
	if _, err := recv(b, late); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("message on an evicted chain: %v", err)
	}
}

func TestSkippedKeysAreBounded(t *testing.T) {
	a, b := pair(t)
	first := send(t, a, "first")
	for i := 0; i < MaxMessageKeys+10; i++ {
		send(t, a, "skipped")
	}
	if _, err := recv(b, send(t, a, "last")); err != nil {
		t.Fatal(err)
	}
	if n := len(b.Receivers[0].Skipped); n != MaxMessageKeys {
		t.Fatalf("%d skipped keys stored, want %d", n, MaxMessageKeys)
	}
	if _, err := recv(b, first); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("message whose key was forgotten: %v", err)
	}
}

func TestArchiveIsBounded(t *testing.T) {
	r := &Record{}
	for i := 0; i < MaxArchivedStates+5; i++ {
		a, _ := pair(t)
		r.PromoteState(a)
	}
	if len(r.Previous) != MaxArchivedStates {
		t.Fatalf("%d archived states", len(r.Previous))
	}
	parsed, err := ParseRecord(r.Marshal(nil))
	if err != nil || len(parsed.Previous) != MaxArchivedStates || !bytes.Equal(parsed.Marshal(nil), r.Marshal(nil)) {
		t.Fatalf("archive round trip: %v", err)
	}
}

func TestRecordFromTheFutureRefused(t *testing.T) {
	b := wire.AppendUint(nil, 1, RecordFormat+1)
	if _, err := ParseRecord(b); !errors.Is(err, ErrRecordVersion) {
		t.Fatalf("got %v", err)
	}
}

// BenchmarkStateEncrypt1KiB is the steady-state encrypt path with a
// reused output buffer: it should not allocate at all.
func BenchmarkStateEncrypt1KiB(b *testing.B) {
	a, _ := pair(b)
	pt := make([]byte, 1024)
	buf := make([]byte, 0, 2048)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = a.Encrypt(buf[:0], pt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStateDecrypt1KiB decrypts same-chain messages; the plaintext
// is the only allocation.
func BenchmarkStateDecrypt1KiB(b *testing.B) {
	a, bob := pair(b)
	pt := make([]byte, 1024)
	var msgs [][]byte
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if len(msgs) == 0 {
			b.StopTimer()
			for i := 0; i < 4096; i++ {
				m, _ := a.Encrypt(nil, pt)
				msgs = append(msgs, m)
			}
			b.StartTimer()
		}
		m, auth, err := wire.ParseSignalMessage(msgs[0])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.Decrypt(&m, auth, rand.Reader); err != nil {
			b.Fatal(err)
		}
		msgs = msgs[1:]
	}
}
