package server

import (
	"testing"
	"time"
)

// TestRemovedElsewhereStopsWithinTTL removes a device in the store
// directly, as another node would: this node may keep accepting its
// cached credential, but for no longer than authCacheTTL.
func TestRemovedElsewhereStopsWithinTTL(t *testing.T) {
	e := newEnv(t)
	alice := e.register(uniqueName("alice"), 0, 0)
	a2 := e.link(alice, 7)
	if r := e.do("GET", "/v1/devices", &a2, nil); r.status != 200 {
		t.Fatalf("linked device: %d %s", r.status, r.body)
	}
	removed := time.Now()
	if err := e.st.RemoveDevice(t.Context(), alice.accountID(t), a2.id); err != nil {
		t.Fatal(err)
	}
	for {
		r := e.do("GET", "/v1/devices", &a2, nil)
		if r.status == 401 {
			break
		}
		if r.status != 200 {
			t.Fatalf("removed device: %d %s", r.status, r.body)
		}
		// The cache entry was made before the removal, so it ends
		// within one TTL of it (allow scheduling slack).
		if time.Since(removed) > authCacheTTL+500*time.Millisecond {
			t.Fatalf("removed device still authenticates %v after removal", time.Since(removed))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAuthCacheWrongCredential checks a cached device does not let a
// wrong credential through, and that a right one still works after it.
func TestAuthCacheWrongCredential(t *testing.T) {
	e := newEnv(t)
	alice := e.register(uniqueName("alice"), 0, 0)
	if r := e.do("GET", "/v1/devices", &alice, nil); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	bad := alice
	bad.cred = e.register(uniqueName("mallory"), 0, 0).cred
	if r := e.do("GET", "/v1/devices", &bad, nil); r.status != 401 {
		t.Fatalf("wrong credential on a cached device: %d", r.status)
	}
	if r := e.do("GET", "/v1/devices", &alice, nil); r.status != 200 {
		t.Fatalf("right credential after a wrong one: %d", r.status)
	}
}
