package storetest

import (
	"bytes"
	"testing"

	"github.com/veil-e2ee/veil/server/store"
)

// testSealedAccess: an account's sealed-sender setting is stored, replaced
// and read back for many accounts at once; unknown accounts are absent.
func testSealedAccess(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	a, ok := s.(store.SealedAccess)
	if !ok {
		t.Fatalf("%T does not implement store.SealedAccess", s)
	}
	one, two := mkAccount(t, s, 1, 1), mkAccount(t, s, 2, 1)
	got, err := a.AccessOf(ctx(t), []store.AccountID{one, two, ID(9)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[one].KeyHash != nil || got[one].Unrestricted || got[two].KeyHash != nil {
		t.Fatalf("AccessOf before any setting = %+v", got)
	}
	if err := a.SetAccess(ctx(t), one, store.Access{KeyHash: hash("k1")}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetAccess(ctx(t), two, store.Access{KeyHash: hash("k2"), Unrestricted: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetAccess(ctx(t), one, store.Access{KeyHash: hash("k1b")}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SetAccess(unknown)", a.SetAccess(ctx(t), ID(9), store.Access{KeyHash: hash("x")}), store.ErrNotFound)
	ids := []store.AccountID{two, ID(9), one}
	for i := 10; i < 1100; i++ { // a group-sized lookup
		ids = append(ids, ID(byte(i)))
	}
	got, err = a.AccessOf(ctx(t), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("AccessOf returned %d accounts, want 2", len(got))
	}
	if !bytes.Equal(got[one].KeyHash, hash("k1b")) || got[one].Unrestricted {
		t.Errorf("account one: %+v", got[one])
	}
	if !bytes.Equal(got[two].KeyHash, hash("k2")) || !got[two].Unrestricted {
		t.Errorf("account two: %+v", got[two])
	}
	if got, err := a.AccessOf(ctx(t), nil); err != nil || len(got) != 0 {
		t.Errorf("AccessOf(nil) = %v, %v", got, err)
	}
}
