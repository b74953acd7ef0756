package devicestore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// fastKDF keeps tests fast; the real costs are exercised by one test.
var fastKDF = devicestore.KDFParams{Time: 1, Memory: 64, Threads: 1}

const testPass = "correct horse battery staple"

func newStore(t testing.TB) (*devicestore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := devicestore.Create(t.Context(), dir, devicestore.Passphrase(testPass), devicestore.WithKDFParams(fastKDF))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func reopen(t testing.TB, s *devicestore.Store, dir string) *devicestore.Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2, err := devicestore.Open(t.Context(), dir, devicestore.Passphrase(testPass))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

func update(t testing.TB, s *devicestore.Store, fn func(tx *devicestore.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// device is a protocol participant whose keys live in a devicestore.
type device struct {
	addr  protocol.Address
	id    protocol.IdentityKeyPair
	regID uint32
	dir   string
	s     *devicestore.Store
}

func newDevice(t testing.TB, name string, regID uint32) *device {
	t.Helper()
	s, dir := newStore(t)
	id, err := protocol.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetLocalIdentity(t.Context(), id, regID) })
	return &device{addr: protocol.Address{Name: name, DeviceID: 1}, id: id, regID: regID, dir: dir, s: s}
}

// bundle generates and stores prekeys (one of each, one-time Kyber unless
// lastResort) and returns the public bundle.
func (d *device) bundle(t testing.TB, keyID uint32, withOneTime, lastResort bool) *protocol.PreKeyBundle {
	t.Helper()
	now := time.Now()
	spk, err := protocol.GenerateSignedPreKey(rand.Reader, d.id, keyID, now)
	if err != nil {
		t.Fatal(err)
	}
	kyber, err := protocol.GenerateKyberPreKey(rand.Reader, d.id, keyID, lastResort, now)
	if err != nil {
		t.Fatal(err)
	}
	otks, err := protocol.GeneratePreKeys(rand.Reader, keyID, 1)
	if err != nil {
		t.Fatal(err)
	}
	update(t, d.s, func(tx *devicestore.Tx) error {
		ctx := context.Background()
		if err := tx.StoreSignedPreKey(ctx, spk); err != nil {
			return err
		}
		if err := tx.StoreKyberPreKey(ctx, kyber); err != nil {
			return err
		}
		return tx.StorePreKey(ctx, otks[0])
	})
	b := &protocol.PreKeyBundle{
		RegistrationID: d.regID, DeviceID: d.addr.DeviceID, IdentityKey: d.id.Public,
		SignedPreKeyID: spk.ID, SignedPreKey: spk.KeyPair.Public, SignedPreKeySignature: spk.Signature,
		KyberPreKeyID: kyber.ID, KyberPreKey: kyber.KeyPair.Public, KyberPreKeySignature: kyber.Signature,
	}
	if withOneTime {
		b.HasPreKey, b.PreKeyID, b.PreKey = true, otks[0].ID, otks[0].KeyPair.Public
	}
	return b
}

func (d *device) reopen(t testing.TB) { d.s = reopen(t, d.s, d.dir) }

// encrypt encrypts in its own Update.
func (d *device) encrypt(t testing.TB, to protocol.Address, pt string) protocol.CiphertextMessage {
	t.Helper()
	var ct protocol.CiphertextMessage
	update(t, d.s, func(tx *devicestore.Tx) error {
		var err error
		ct, err = protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).Encrypt(t.Context(), to, []byte(pt))
		return err
	})
	return ct
}

// receive decrypts and stores the message in one Update.
func (d *device) receive(t testing.TB, from protocol.Address, msgID []byte, ct protocol.CiphertextMessage) (string, error) {
	t.Helper()
	var pt []byte
	err := d.s.Update(t.Context(), func(tx *devicestore.Tx) error {
		var err error
		pt, err = protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).Decrypt(t.Context(), from, ct)
		if err != nil {
			return err
		}
		conv, err := tx.Conversation(t.Context(), from.Name)
		if err != nil {
			return err
		}
		_, err = tx.InsertMessage(t.Context(), devicestore.Message{
			ConversationID: conv, Sender: from.Name, SenderDevice: from.DeviceID,
			MessageID: msgID, Body: pt, SentAt: time.Now(),
		})
		return err
	})
	return string(pt), err
}

func msgID(t testing.TB) []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

func sprintf(f string, v any) string { return fmt.Sprintf(f, v) }
