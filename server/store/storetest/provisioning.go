package storetest

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// testProvisioning: link tokens are spent once and expire; a relay slot
// holds one message, handed out once, until it expires; the sweeper
// removes what expired.
func testProvisioning(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	p, ok := s.(store.Provisioner)
	if !ok {
		t.Skip("this store wrapper does not implement store.Provisioner (the backends do)")
	}
	acc := mkAccount(t, s, 1, 1)
	exp := Epoch.Add(10 * time.Minute)
	if err := p.CreateLinkToken(ctx(t), hash("t1"), acc, exp); err != nil {
		t.Fatal(err)
	}
	if err := p.CreateLinkToken(ctx(t), hash("t2"), acc, Epoch.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err := p.UseLinkToken(ctx(t), hash("nope"), Epoch)
	wantErr(t, "UseLinkToken(unknown)", err, store.ErrNotFound)
	_, err = p.UseLinkToken(ctx(t), hash("t2"), Epoch.Add(2*time.Minute))
	wantErr(t, "UseLinkToken(expired)", err, store.ErrNotFound)
	// Concurrent spenders: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			a, err := p.UseLinkToken(ctx(t), hash("t1"), Epoch)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
				if a != acc {
					t.Errorf("token spent for %v, want %v", a, acc)
				}
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("a link token was spent %d times", wins)
	}

	msg := []byte("sealed provisioning message")
	if err := p.PutProvisioning(ctx(t), hash("r1"), msg, exp); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "PutProvisioning twice", p.PutProvisioning(ctx(t), hash("r1"), []byte("other"), exp), store.ErrExists)
	_, err = p.TakeProvisioning(ctx(t), hash("r2"), Epoch)
	wantErr(t, "TakeProvisioning(empty)", err, store.ErrNotFound)
	got, err := p.TakeProvisioning(ctx(t), hash("r1"), Epoch)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("TakeProvisioning = %q, %v", got, err)
	}
	_, err = p.TakeProvisioning(ctx(t), hash("r1"), Epoch)
	wantErr(t, "TakeProvisioning twice", err, store.ErrNotFound)
	if err := p.PutProvisioning(ctx(t), hash("r3"), msg, Epoch.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err = p.TakeProvisioning(ctx(t), hash("r3"), Epoch.Add(time.Hour))
	wantErr(t, "TakeProvisioning(expired)", err, store.ErrNotFound)

	// The sweeper removes expired rows; unexpired ones stay.
	if err := p.CreateLinkToken(ctx(t), hash("t3"), acc, exp); err != nil {
		t.Fatal(err)
	}
	if err := p.SweepProvisioning(ctx(t), Epoch.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := p.PutProvisioning(ctx(t), hash("r3"), msg, exp); err != nil {
		t.Fatalf("the expired slot was not swept: %v", err)
	}
	if a, err := p.UseLinkToken(ctx(t), hash("t3"), Epoch); err != nil || a != acc {
		t.Fatalf("an unexpired token was swept: %v", err)
	}
}

// testBlobs: a blob belongs to one account, is handed out once, and
// expires.
func testBlobs(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	b, ok := s.(store.Blobs)
	if !ok {
		t.Skip("this store wrapper does not implement store.Blobs (the backends do)")
	}
	alice, bob := mkAccount(t, s, 1, 1), mkAccount(t, s, 2, 1)
	data := bytes.Repeat([]byte("archive "), 1<<17) // 1 MiB
	exp := Epoch.Add(24 * time.Hour)
	if err := b.PutBlob(ctx(t), hash("b1"), alice, data, exp); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "PutBlob twice", b.PutBlob(ctx(t), hash("b1"), alice, []byte("x"), exp), store.ErrExists)
	_, err := b.TakeBlob(ctx(t), hash("b1"), bob, Epoch)
	wantErr(t, "TakeBlob by another account", err, store.ErrNotFound)
	got, err := b.TakeBlob(ctx(t), hash("b1"), alice, Epoch)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("TakeBlob: %d bytes, %v", len(got), err)
	}
	_, err = b.TakeBlob(ctx(t), hash("b1"), alice, Epoch)
	wantErr(t, "TakeBlob twice", err, store.ErrNotFound)
	if err := b.PutBlob(ctx(t), hash("b2"), alice, data[:10], Epoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err = b.TakeBlob(ctx(t), hash("b2"), alice, Epoch.Add(2*time.Hour))
	wantErr(t, "TakeBlob(expired)", err, store.ErrNotFound)
	if err := b.SweepBlobs(ctx(t), Epoch.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.PutBlob(ctx(t), hash("b2"), alice, data[:10], exp); err != nil {
		t.Fatalf("the expired blob was not swept: %v", err)
	}
}

// testExpireDevices: linked devices unseen since before the cutoff go,
// with their queues; an account's first device and recently seen ones
// stay.
func testExpireDevices(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	x, ok := s.(store.DeviceExpirer)
	if !ok {
		t.Skip("this store wrapper does not implement store.DeviceExpirer (the backends do)")
	}
	acc := mkAccount(t, s, 1, 1)
	for i := 0; i < 2; i++ {
		if _, err := s.AddDevice(ctx(t), acc, store.NewDevice{RegistrationID: uint32(10 + i), CredentialHash: []byte{byte(i)}, PreKeys: Upload(9, 1, 1), Now: Epoch}, 6); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TouchDevice(ctx(t), acc, 2, Epoch.Add(40*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	gone, err := x.ExpireDevices(ctx(t), Epoch.Add(30*24*time.Hour))
	if err != nil || len(gone) != 1 || gone[0] != (store.DeviceRef{Account: acc, DeviceID: 3}) {
		t.Fatalf("ExpireDevices = %+v, %v; want device 3 only", gone, err)
	}
	ds, _ := s.Devices(ctx(t), acc)
	if len(ds) != 2 || ds[0].DeviceID != 1 || ds[1].DeviceID != 2 {
		t.Fatalf("devices after expiry: %+v", ds)
	}
	if gone, _ := x.ExpireDevices(ctx(t), Epoch.Add(30*24*time.Hour)); len(gone) != 0 {
		t.Fatalf("a second expiry removed %+v", gone)
	}
}

// testDeviceNames: a device's opaque name is stored and listed.
func testDeviceNames(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	n, ok := s.(store.DeviceNamer)
	if !ok {
		t.Skip("this store wrapper does not implement store.DeviceNamer (the backends do)")
	}
	acc := mkAccount(t, s, 1, 1)
	if names, err := n.DeviceNames(ctx(t), acc); err != nil || len(names) != 0 {
		t.Fatalf("names before any: %v, %v", names, err)
	}
	if err := n.SetDeviceName(ctx(t), acc, 1, []byte("sealed name")); err != nil {
		t.Fatal(err)
	}
	if err := n.SetDeviceName(ctx(t), acc, 1, []byte("sealed name 2")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SetDeviceName(no device)", n.SetDeviceName(ctx(t), acc, 9, []byte("x")), store.ErrNotFound)
	names, err := n.DeviceNames(ctx(t), acc)
	if err != nil || len(names) != 1 || string(names[1]) != "sealed name 2" {
		t.Fatalf("DeviceNames = %v, %v", names, err)
	}
}
