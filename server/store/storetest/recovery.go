package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// testRecovery: the recovery hash is stored and read back; replacing the
// devices removes every device with its queue and adds one under a new
// id, keeping the account; the new device has keys to hand out.
func testRecovery(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	r, ok := s.(store.Recovery)
	if !ok {
		t.Fatalf("%T does not implement store.Recovery", s)
	}
	acc := mkAccount(t, s, 1, 2)
	addDevices(t, s, acc, 3, 1)
	_, err := r.RecoveryHash(ctx(t), acc)
	wantErr(t, "RecoveryHash before any", err, store.ErrNotFound)
	_, err = r.RecoveryHash(ctx(t), ID(9))
	wantErr(t, "RecoveryHash(unknown)", err, store.ErrNotFound)
	wantErr(t, "SetRecoveryHash(unknown)", r.SetRecoveryHash(ctx(t), ID(9), hash("x")), store.ErrNotFound)
	if err := r.SetRecoveryHash(ctx(t), acc, hash("recovery")); err != nil {
		t.Fatal(err)
	}
	if h, err := r.RecoveryHash(ctx(t), acc); err != nil || !bytes.Equal(h, hash("recovery")) {
		t.Fatalf("RecoveryHash = %x, %v", h, err)
	}
	var envs []store.OutgoingEnvelope
	for d := uint32(1); d <= 3; d++ {
		envs = append(envs, store.OutgoingEnvelope{DeviceID: d, RegistrationID: regID(d), Type: 1, Content: []byte("queued")})
	}
	deliver(t, s, store.Send{MessageID: [16]byte{1}, Recipient: acc, Envelopes: envs, Now: Epoch})

	nd := store.NewDevice{RegistrationID: 77, CredentialHash: hash("new device"), PreKeys: Upload(9, 100, 2), Now: Epoch.Add(time.Hour)}
	dev, removed, err := r.ReplaceDevices(ctx(t), acc, nd)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if !slices.Equal(removed, []uint32{1, 2, 3}) || dev.DeviceID != 4 || dev.RegistrationID != 77 {
		t.Fatalf("ReplaceDevices = %+v, removed %v", dev, removed)
	}
	ds, err := s.Devices(ctx(t), acc)
	if err != nil || len(ds) != 1 || ds[0].DeviceID != 4 || !bytes.Equal(ds[0].CredentialHash, hash("new device")) {
		t.Fatalf("devices after recovery: %+v, %v", ds, err)
	}
	for d := uint32(1); d <= 3; d++ {
		if env, _ := s.Pending(ctx(t), acc, d, 0, 10); len(env) != 0 {
			t.Fatalf("device %d still has %d envelopes", d, len(env))
		}
	}
	if a, err := s.Account(ctx(t), acc); err != nil || a.Username != "user1" {
		t.Fatalf("account after recovery: %+v, %v", a, err)
	}
	bs, err := s.TakeBundles(ctx(t), acc, 0)
	if err != nil || len(bs) != 1 || bs[0].DeviceID != 4 {
		t.Fatalf("bundles after recovery: %+v, %v", bs, err)
	}
	_, _, err = r.ReplaceDevices(ctx(t), ID(9), nd)
	wantErr(t, "ReplaceDevices(unknown)", err, store.ErrNotFound)
	// The recovered device is now the account's oldest: it never expires,
	// however long unseen.
	if x, ok := s.(store.DeviceExpirer); ok {
		if gone, err := x.ExpireDevices(ctx(t), Epoch.Add(365*24*time.Hour)); err != nil || len(gone) != 0 {
			t.Fatalf("ExpireDevices after recovery = %+v, %v", gone, err)
		}
	}
	// A later device gets a fresh id: ids are never reused.
	d2, err := s.AddDevice(ctx(t), acc, store.NewDevice{RegistrationID: 78, CredentialHash: hash("d2"), PreKeys: Upload(9, 200, 1), Now: Epoch}, 6)
	if err != nil || d2.DeviceID != 5 {
		t.Fatalf("a device after recovery: %+v, %v", d2, err)
	}
}

// testAccountBackup: one backup per account, replaced by the next, gone
// with the account.
func testAccountBackup(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	b, ok := s.(store.BackupStore)
	if !ok {
		t.Fatalf("%T does not implement store.BackupStore", s)
	}
	acc := mkAccount(t, s, 1, 1)
	_, err := b.AccountBackup(ctx(t), acc)
	wantErr(t, "AccountBackup before any", err, store.ErrNotFound)
	wantErr(t, "PutAccountBackup(unknown)", b.PutAccountBackup(ctx(t), ID(9), []byte("x"), Epoch), store.ErrNotFound)
	for _, v := range []string{"first backup", "second backup"} {
		if err := b.PutAccountBackup(ctx(t), acc, []byte(v), Epoch); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.AccountBackup(ctx(t), acc); err != nil || string(got) != "second backup" {
		t.Fatalf("AccountBackup = %q, %v", got, err)
	}
	if ds, ok := s.(store.DataSubject); ok {
		if d, err := ds.ExportAccount(ctx(t), acc); err != nil || d.BackupBytes != int64(len("second backup")) {
			t.Fatalf("export: %d, %v", d.BackupBytes, err)
		}
		if _, err := ds.EraseAccount(ctx(t), acc); err != nil {
			t.Fatal(err)
		}
		_, err := b.AccountBackup(ctx(t), acc)
		wantErr(t, "AccountBackup after erasure", err, store.ErrNotFound)
	}
}
