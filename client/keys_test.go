package client

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestKeyMaintenance: one-time prekeys are refilled when fewer than 10
// remain on the server; the signed and last-resort prekeys rotate after
// 2 days, and replaced ones still decrypt during the grace period, then
// are deleted.
func TestKeyMaintenance(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	cfg := testConfig(filepath.Join(t.TempDir(), "alice"), ts.URL)
	cfg.Now = clk.Now
	alice, err := Register(ctx, cfg, uniqueName("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, _ := register(t, ts, "bob")
	aid := alice.Self().AccountID

	rep, err := alice.MaintainKeys(ctx)
	if err != nil || rep != (KeyReport{ServerPreKeys: PreKeyBatch, ServerKEMPreKeys: PreKeyBatch}) {
		t.Fatalf("fresh account: %+v, %v (want 100 of each and nothing to do)", rep, err)
	}
	// Others claim bundles until 9 one-time keys of each kind are left.
	for i := 0; i < PreKeyBatch-PreKeyRefillBelow+1; i++ {
		var b bundlesResponse
		if err := bob.api.do(ctx, "GET", "/v1/bundles/"+aid, nil, &b); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = alice.MaintainKeys(ctx)
	if err != nil || rep.ServerPreKeys != 9 || rep.ServerKEMPreKeys != 9 || rep.RefilledPreKeys != PreKeyBatch || rep.RefilledKEM != PreKeyBatch || rep.RotatedSigned {
		t.Fatalf("refill: %+v, %v", rep, err)
	}
	var counts prekeyCounts
	if err := alice.api.do(ctx, "GET", "/v1/prekeys", nil, &counts); err != nil || counts.OneTime != 109 || counts.OneTimeKEM != 109 {
		t.Fatalf("server counts after refill: %+v, %v", counts, err)
	}
	// Refilled ids continue after the first batch: none is reused.
	pc, _ := alice.store.PreKeyCounts(ctx)
	if pc.MaxPreKeyID != 2*PreKeyBatch {
		t.Fatalf("highest one-time prekey id %d, want %d", pc.MaxPreKeyID, 2*PreKeyBatch)
	}

	// Bob takes a bundle now (signed key 1) and uses it after rotation.
	if err := bob.fetchSessions(ctx, aid, 0); err != nil {
		t.Fatal(err)
	}
	clk.Add(KeyRotation - time.Minute)
	if rep, _ := alice.MaintainKeys(ctx); rep.RotatedSigned || rep.RotatedLastResort {
		t.Fatalf("rotated before %v: %+v", KeyRotation, rep)
	}
	clk.Add(time.Minute)
	if rep, err := alice.MaintainKeys(ctx); err != nil || !rep.RotatedSigned || !rep.RotatedLastResort || rep.Deleted != 0 {
		t.Fatalf("rotation: %+v, %v", rep, err)
	}
	var b bundlesResponse
	if err := bob.api.do(ctx, "GET", "/v1/bundles/"+aid, nil, &b); err != nil || b.Devices[0].SignedPreKey.KeyID != 2 {
		t.Fatalf("bundle after rotation: signed key %d, %v", b.Devices[0].SignedPreKey.KeyID, err)
	}
	mustSend(t, bob, alice.Self().Username, "made from the old bundle")
	if got := bodies(drain(t, alice)); !slices.Equal(got, []string{"made from the old bundle"}) {
		t.Fatalf("a PreKey message for the replaced signed key: %q", got)
	}
	// After the grace period the replaced keys go.
	clk.Add(KeyGrace)
	rep, err = alice.MaintainKeys(ctx)
	if err != nil || !rep.RotatedSigned || rep.Deleted != 2 {
		t.Fatalf("after the grace period: %+v, %v (want the first signed and last-resort keys deleted)", rep, err)
	}
	if _, err := alice.store.LoadSignedPreKey(ctx, 1); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("signed prekey 1 after the grace period: %v", err)
	}
	if _, err := alice.store.LoadSignedPreKey(ctx, 2); err != nil {
		t.Fatalf("signed prekey 2 (replaced, still in grace): %v", err)
	}
	if spks, _ := alice.store.SignedPreKeyInfos(ctx); len(spks) != 2 {
		t.Fatalf("signed prekeys kept: %d", len(spks))
	}
}
