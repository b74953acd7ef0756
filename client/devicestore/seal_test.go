package devicestore_test

import (
	"crypto/rand"
	"testing"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// SealRecipients gives every session's identity key and registration id
// (for sealing one group message to many devices) as the sessions hold
// them, skipping the device asked to, across a reopen.
func TestSealRecipients(t *testing.T) {
	alice := newDevice(t, "alice", 1001)
	peers := []*device{newDevice(t, "9d0652a3-dcc3-4d11-975f-74d61598733f", 2001), newDevice(t, "796abedb-ca4e-4f18-8803-1fde5b921f9f", 2002)}
	for _, p := range peers {
		b := p.bundle(t, 1, true, false)
		update(t, alice.s, func(tx *devicestore.Tx) error {
			return protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).ProcessPreKeyBundle(t.Context(), p.addr, b)
		})
	}
	alice.reopen(t)
	got, err := alice.s.SealRecipients(t.Context(), []string{peers[0].addr.Name, peers[1].addr.Name, "nobody"}, peers[1].addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Address != peers[0].addr || got[0].RegistrationID != 2001 {
		t.Fatalf("SealRecipients = %+v", got)
	}
	rec, err := alice.s.LoadSession(t.Context(), peers[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := rec.RemoteIdentity()
	if !got[0].IdentityKey.Equal(want) {
		t.Fatal("identity key differs from the session's")
	}
	all, err := alice.s.SealRecipients(t.Context(), []string{peers[0].addr.Name, peers[1].addr.Name}, protocol.Address{})
	if err != nil || len(all) != 2 {
		t.Fatalf("both: %+v, %v", all, err)
	}
	// A session without a current state is not a device to seal for.
	update(t, alice.s, func(tx *devicestore.Tx) error {
		rec, err := tx.LoadSession(t.Context(), peers[0].addr)
		if err != nil {
			return err
		}
		rec.ArchiveCurrentState()
		return tx.StoreSession(t.Context(), peers[0].addr, rec)
	})
	if got, err := alice.s.SealRecipients(t.Context(), []string{peers[0].addr.Name, peers[1].addr.Name}, protocol.Address{}); err != nil || len(got) != 1 || got[0].Address != peers[1].addr {
		t.Fatalf("after archiving: %+v, %v", got, err)
	}
}
