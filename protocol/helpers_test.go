package protocol_test

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/veil-e2ee/veil/protocol"
)

// tb is what the helpers need of *testing.T, *testing.B and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// device is one test party: its store, cipher and a way to mint bundles.
type device struct {
	addr   protocol.Address
	id     protocol.IdentityKeyPair
	regID  uint32
	store  *protocol.InMemoryStore
	cipher *protocol.Cipher
	nextID uint32
}

func newDevice(t tb, name string) *device {
	t.Helper()
	id, err := protocol.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := protocol.GenerateRegistrationID(rand.Reader)
	st := protocol.NewInMemoryStore(id, reg)
	return &device{
		addr: protocol.Address{Name: name, DeviceID: 1}, id: id, regID: reg, store: st,
		cipher: protocol.NewCipher(protocol.StoresOf(st), rand.Reader, nil), nextID: 1,
	}
}

// bundle makes fresh prekeys, stores their private halves and returns the
// public bundle.
func (d *device) bundle(t tb, withPreKey bool) *protocol.PreKeyBundle {
	t.Helper()
	ctx := context.Background()
	id := d.nextID
	d.nextID++
	spk, err := protocol.GenerateSignedPreKey(rand.Reader, d.id, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kpk, err := protocol.GenerateKyberPreKey(rand.Reader, d.id, id, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d.store.StoreSignedPreKey(ctx, spk)
	d.store.StoreKyberPreKey(ctx, kpk)
	b := &protocol.PreKeyBundle{
		RegistrationID: d.regID, DeviceID: d.addr.DeviceID, IdentityKey: d.id.Public,
		SignedPreKeyID: spk.ID, SignedPreKey: spk.KeyPair.Public, SignedPreKeySignature: spk.Signature,
		KyberPreKeyID: kpk.ID, KyberPreKey: kpk.KeyPair.Public, KyberPreKeySignature: kpk.Signature,
	}
	if withPreKey {
		pks, err := protocol.GeneratePreKeys(rand.Reader, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		d.store.StorePreKey(ctx, pks[0])
		b.HasPreKey, b.PreKeyID, b.PreKey = true, pks[0].ID, pks[0].KeyPair.Public
	}
	return b
}

func mustEncrypt(t tb, from, to *device, msg string) protocol.CiphertextMessage {
	t.Helper()
	ct, err := from.cipher.Encrypt(context.Background(), to.addr, []byte(msg))
	if err != nil {
		t.Fatalf("encrypt %q: %v", msg, err)
	}
	return ct
}

func mustDecrypt(t tb, at, from *device, ct protocol.CiphertextMessage, want string) {
	t.Helper()
	pt, err := at.cipher.Decrypt(context.Background(), from.addr, ct)
	if err != nil {
		t.Fatalf("decrypt (want %q): %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("decrypted %q, want %q", pt, want)
	}
}
