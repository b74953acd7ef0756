package devicestore

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/protocol"
)

// A session stored before the registration id and identity key were kept
// beside it (migration 5) is read from its record instead.
func TestSealRecipientsOldRows(t *testing.T) {
	s, _ := testStore(t)
	ctx := t.Context()
	bobID, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	spk, _ := protocol.GenerateSignedPreKey(rand.Reader, bobID, 1, time.Now())
	kyber, _ := protocol.GenerateKyberPreKey(rand.Reader, bobID, 1, true, time.Now())
	bob := protocol.Address{Name: "796abedb-ca4e-4f18-8803-1fde5b921f9f", DeviceID: 3}
	aliceID, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.SetLocalIdentity(ctx, aliceID, 7); err != nil {
			return err
		}
		err := protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).ProcessPreKeyBundle(ctx, bob, &protocol.PreKeyBundle{
			RegistrationID: 4242, DeviceID: 3, IdentityKey: bobID.Public,
			SignedPreKeyID: spk.ID, SignedPreKey: spk.KeyPair.Public, SignedPreKeySignature: spk.Signature,
			KyberPreKeyID: kyber.ID, KyberPreKey: kyber.KeyPair.Public, KyberPreKeySignature: kyber.Signature})
		if err != nil {
			return err
		}
		_, err = tx.tx.ExecContext(ctx, `UPDATE sessions SET registration_id = NULL, identity_key = NULL`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.SealRecipients(ctx, []string{bob.Name}, protocol.Address{})
	if err != nil || len(got) != 1 || got[0].Address != bob || got[0].RegistrationID != 4242 || !got[0].IdentityKey.Equal(bobID.Public) {
		t.Fatalf("SealRecipients = %+v, %v", got, err)
	}
}
