package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// holdID returns a deterministic legal hold id.
func holdID(n byte) [16]byte {
	var h [16]byte
	copy(h[:], "hold-")
	h[15] = n
	return h
}

// legalHolds returns s as store.LegalHolds, or skips (a store wrapper
// may not pass the interface through; both backends implement it).
func legalHolds(t *testing.T, s store.Store) store.LegalHolds {
	t.Helper()
	lh, ok := s.(store.LegalHolds)
	if !ok {
		t.Skipf("%T does not implement store.LegalHolds (the backends do)", s)
	}
	return lh
}

func newHold(id [16]byte, acc store.AccountID, record string, at time.Time) store.Hold {
	return store.Hold{ID: id, Account: acc, State: store.HoldPending, Record: []byte(record), UpdatedAt: at}
}

// complianceDevice is the registration of a compliance device whose keys
// are tagged with tag (so its bundle is recognisable).
func complianceDevice(tag uint32, now time.Time) store.NewDevice {
	return store.NewDevice{RegistrationID: 5000 + tag, CredentialHash: hash(fmt.Sprintf("compliance %d", tag)),
		PreKeys: Upload(100+tag, 1, 2), Now: now}
}

func holdIDs(hs []store.Hold) [][16]byte {
	var out [][16]byte
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return out
}

func deviceIDs(t *testing.T, s store.Store, acc store.AccountID) []uint32 {
	t.Helper()
	ds, err := s.Devices(ctx(t), acc)
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	var out []uint32
	for _, d := range ds {
		out = append(out, d.DeviceID)
	}
	return out
}

func checkHold(t *testing.T, what string, got store.Hold, want store.Hold) {
	t.Helper()
	if got.ID != want.ID || got.Account != want.Account || got.State != want.State || got.DeviceID != want.DeviceID ||
		!bytes.Equal(got.IdentityKey, want.IdentityKey) || (got.IdentityKey == nil) != (want.IdentityKey == nil) ||
		!bytes.Equal(got.Record, want.Record) || got.Version != want.Version || !got.UpdatedAt.Equal(want.UpdatedAt) ||
		got.UpdatedAt.Location() != time.UTC {
		t.Fatalf("%s: hold = %+v\nwant %+v", what, got, want)
	}
}

// testLegalHolds: the life of a hold (pending → active → lifted) and
// what its compliance device is: an ordinary recipient device (listed,
// bundles, deliveries) that the device limit, RemoveDevice, device expiry
// and account recovery leave alone, and that lifting removes with its
// keys and queue.
func testLegalHolds(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	lh := legalHolds(t, s)
	acc, other := mkAccount(t, s, 1, 2), mkAccount(t, s, 2, 1)
	addDevices(t, s, acc, 2, 1)
	h1, h2, h3 := holdID(1), holdID(2), holdID(3)
	sec := Epoch.Truncate(time.Second)

	// Create, read, list.
	for _, h := range []store.Hold{newHold(h1, acc, `{"reason":"one"}`, Epoch), newHold(h2, other, `{"reason":"two"}`, Epoch),
		newHold(h3, acc, `{"reason":"three"}`, Epoch)} {
		if err := lh.CreateHold(ctx(t), h); err != nil {
			t.Fatalf("CreateHold(%x): %v", h.ID, err)
		}
	}
	wantErr(t, "CreateHold(unknown account)", lh.CreateHold(ctx(t), newHold(holdID(9), ID(9), "{}", Epoch)), store.ErrNotFound)
	wantErr(t, "CreateHold(id taken)", lh.CreateHold(ctx(t), newHold(h1, other, "{}", Epoch)), store.ErrInvalid)
	active := newHold(holdID(9), acc, "{}", Epoch)
	active.State = store.HoldActive
	wantErr(t, "CreateHold(active)", lh.CreateHold(ctx(t), active), store.ErrInvalid)
	_, err := lh.Hold(ctx(t), holdID(9))
	wantErr(t, "Hold(unknown)", err, store.ErrNotFound)

	want1 := store.Hold{ID: h1, Account: acc, State: store.HoldPending, Record: []byte(`{"reason":"one"}`), Version: 1, UpdatedAt: sec}
	got, err := lh.Hold(ctx(t), h1)
	if err != nil {
		t.Fatal(err)
	}
	checkHold(t, "Hold(new)", got, want1)
	if hs, err := lh.Holds(ctx(t), &acc, false); err != nil || !slices.Equal(holdIDs(hs), [][16]byte{h1, h3}) {
		t.Fatalf("Holds(acc) = %x, %v; want h1, h3", holdIDs(hs), err)
	} else {
		checkHold(t, "Holds(acc)[0]", hs[0], want1)
	}
	if hs, err := lh.Holds(ctx(t), nil, false); err != nil || !slices.Equal(holdIDs(hs), [][16]byte{h1, h2, h3}) {
		t.Fatalf("Holds(all) = %x, %v; want h1, h2, h3 (oldest first)", holdIDs(hs), err)
	}
	if hs, err := lh.Holds(ctx(t), nil, true); err != nil || len(hs) != 0 {
		t.Fatalf("Holds(active) before any activation = %x, %v", holdIDs(hs), err)
	}
	unknown := ID(9)
	if hs, err := lh.Holds(ctx(t), &unknown, false); err != nil || len(hs) != 0 {
		t.Fatalf("Holds(unknown account) = %x, %v", holdIDs(hs), err)
	}

	// Compare-and-swap on the record.
	got, err = lh.UpdateHoldRecord(ctx(t), h1, 1, []byte(`{"approvals":1}`), Epoch.Add(time.Hour))
	want1.Record, want1.Version, want1.UpdatedAt = []byte(`{"approvals":1}`), 2, sec.Add(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	checkHold(t, "UpdateHoldRecord", got, want1)
	_, err = lh.UpdateHoldRecord(ctx(t), h1, 1, []byte(`{"stale":true}`), Epoch.Add(2*time.Hour))
	wantErr(t, "UpdateHoldRecord(stale version)", err, store.ErrConflict)
	_, err = lh.UpdateHoldRecord(ctx(t), holdID(9), 1, []byte("{}"), Epoch)
	wantErr(t, "UpdateHoldRecord(unknown)", err, store.ErrNotFound)
	got, err = lh.Hold(ctx(t), h1)
	if err != nil {
		t.Fatal(err)
	}
	checkHold(t, "Hold after a stale update (nothing changed)", got, want1)

	// Failed activations change nothing, not even the device counter.
	ik := []byte("compliance identity key")
	_, _, err = lh.ActivateHold(ctx(t), h1, 1, []byte("{}"), ik, complianceDevice(1, Epoch))
	wantErr(t, "ActivateHold(stale version)", err, store.ErrConflict)
	_, _, err = lh.ActivateHold(ctx(t), holdID(9), 1, []byte("{}"), ik, complianceDevice(1, Epoch))
	wantErr(t, "ActivateHold(unknown)", err, store.ErrNotFound)
	bad := complianceDevice(1, Epoch)
	bad.PreKeys.SignedPreKey = nil
	_, _, err = lh.ActivateHold(ctx(t), h1, 2, []byte("{}"), ik, bad)
	wantErr(t, "ActivateHold(no signed prekey)", err, store.ErrInvalid)
	_, _, err = lh.ActivateHold(ctx(t), h1, 2, []byte("{}"), nil, complianceDevice(1, Epoch))
	wantErr(t, "ActivateHold(no identity key)", err, store.ErrInvalid)
	if ids := deviceIDs(t, s, acc); !slices.Equal(ids, []uint32{1, 2}) {
		t.Fatalf("devices after failed activations: %v", ids)
	}
	if got, _ := lh.Hold(ctx(t), h1); got.State != store.HoldPending || got.Version != 2 {
		t.Fatalf("hold after failed activations: %+v", got)
	}

	// Activation.
	at := Epoch.Add(2 * time.Hour)
	got, dev, err := lh.ActivateHold(ctx(t), h1, 2, []byte(`{"certificate":"c"}`), ik, complianceDevice(1, at))
	if err != nil {
		t.Fatal(err)
	}
	want1 = store.Hold{ID: h1, Account: acc, State: store.HoldActive, DeviceID: 3, IdentityKey: ik, Record: []byte(`{"certificate":"c"}`),
		Version: 3, UpdatedAt: sec.Add(2 * time.Hour)}
	checkHold(t, "ActivateHold", got, want1)
	if dev.Account != acc || dev.DeviceID != 3 || dev.RegistrationID != 5001 || !bytes.Equal(dev.CredentialHash, hash("compliance 1")) || !dev.Compliance {
		t.Fatalf("ActivateHold device = %+v; want compliance device 3 (the next id), registration 5001", dev)
	}
	if got, err := lh.Hold(ctx(t), h1); err != nil {
		t.Fatal(err)
	} else {
		checkHold(t, "Hold(active)", got, want1)
	}
	if ids := deviceIDs(t, s, acc); !slices.Equal(ids, []uint32{1, 2, 3}) {
		t.Fatalf("Devices after activation = %v, want [1 2 3]", ids)
	}
	if d, err := s.Device(ctx(t), acc, 3); err != nil || !bytes.Equal(d.CredentialHash, hash("compliance 1")) || d.RegistrationID != 5001 || !d.Compliance {
		t.Fatalf("Device(compliance) = %+v, %v; want Compliance", d, err)
	}
	if d, err := s.Device(ctx(t), acc, 1); err != nil || d.Compliance {
		t.Fatalf("Device(ordinary) = %+v, %v; want not Compliance", d, err)
	}
	if ds, err := s.Devices(ctx(t), acc); err != nil || len(ds) != 3 || ds[0].Compliance || ds[1].Compliance || !ds[2].Compliance {
		t.Fatalf("Devices = %+v, %v; want only device 3 marked Compliance", ds, err)
	}
	if ds, err := s.Devices(ctx(t), other); err != nil || len(ds) != 1 || ds[0].Compliance {
		t.Fatalf("Devices(other) = %+v, %v; want no compliance device", ds, err)
	}
	if cd, err := lh.ComplianceDevices(ctx(t), acc); err != nil || !maps.Equal(cd, map[uint32][16]byte{3: h1}) {
		t.Fatalf("ComplianceDevices = %v, %v; want {3: h1}", cd, err)
	}
	if cd, err := lh.ComplianceDevices(ctx(t), other); err != nil || len(cd) != 0 {
		t.Fatalf("ComplianceDevices(other) = %v, %v", cd, err)
	}
	if hs, err := lh.Holds(ctx(t), nil, true); err != nil || !slices.Equal(holdIDs(hs), [][16]byte{h1}) {
		t.Fatalf("Holds(active) = %x, %v; want h1", holdIDs(hs), err)
	}
	if hs, err := lh.Holds(ctx(t), &other, true); err != nil || len(hs) != 0 {
		t.Fatalf("Holds(other, active) = %x, %v", holdIDs(hs), err)
	}
	if c := counts(t, s, acc, 3); c != (store.PreKeyCounts{EC: 2, KEM: 2}) {
		t.Fatalf("compliance device prekeys = %+v, want 2 and 2", c)
	}
	bs, err := s.TakeBundles(ctx(t), acc, 0)
	if err != nil || len(bs) != 3 || bs[2].DeviceID != 3 {
		t.Fatalf("TakeBundles = %+v, %v; want bundles for devices 1, 2, 3", bs, err)
	}
	if b := bs[2]; b.RegistrationID != 5001 || b.PreKey == nil || !bytes.Equal(b.PreKey.PublicKey, keyBytes("ec", 101, 1)) ||
		!bytes.Equal(b.SignedPreKey.PublicKey, keyBytes("spk", 101, 1)) || b.KEMIsLastResort || !bytes.Equal(b.KEM.PublicKey, keyBytes("kem", 101, 1)) {
		t.Fatalf("compliance device bundle = %+v", b)
	}

	// It is a recipient like any device: a send must address it.
	_, err = s.Deliver(ctx(t), send(1, other, acc, 1, 2))
	var mm *store.DeviceMismatchError
	if !errors.As(err, &mm) || !slices.Equal(mm.Missing, []uint32{3}) || len(mm.Extra) != 0 || len(mm.Stale) != 0 {
		t.Fatalf("a send omitting the compliance device: %v, want missing [3]", err)
	}
	snd := send(1, other, acc, 1, 2)
	snd.Envelopes = append(snd.Envelopes, store.OutgoingEnvelope{DeviceID: 3, RegistrationID: 5001, Type: 3, Content: content(1, 3)})
	if r := deliver(t, s, snd); r.Duplicate || len(r.Seqs) != 3 {
		t.Fatalf("send to every device = %+v", r)
	}
	if envs := pending(t, s, acc, 3); len(envs) != 1 || !bytes.Equal(envs[0].Content, content(1, 3)) || envs[0].Sender != other {
		t.Fatalf("compliance device queue = %+v", envs)
	}

	// Not counted for the device limit: two ordinary devices + the
	// compliance device fit a limit of 3, and one more ordinary device
	// reaches it.
	nd := func(n uint32) store.NewDevice {
		return store.NewDevice{RegistrationID: regID(n), CredentialHash: credHash(acc, n), PreKeys: Upload(n, 1, 1), Now: Epoch}
	}
	if d, err := s.AddDevice(ctx(t), acc, nd(4), 3); err != nil || d.DeviceID != 4 {
		t.Fatalf("AddDevice beside a compliance device (limit 3) = %+v, %v; want device 4", d, err)
	}
	_, err = s.AddDevice(ctx(t), acc, nd(5), 3)
	wantErr(t, "AddDevice with 3 ordinary devices (limit 3)", err, store.ErrDeviceLimit)

	// RemoveDevice refuses it, and removes nothing.
	wantErr(t, "RemoveDevice(compliance)", s.RemoveDevice(ctx(t), acc, 3), store.ErrInvalid)
	wantErr(t, "RemoveDevice(unknown)", s.RemoveDevice(ctx(t), acc, 99), store.ErrNotFound)
	if ids := deviceIDs(t, s, acc); !slices.Equal(ids, []uint32{1, 2, 3, 4}) {
		t.Fatalf("Devices after a refused removal = %v", ids)
	}
	if n := depth(t, s, acc, 3); n != 1 {
		t.Fatalf("compliance queue after a refused removal: %d envelopes, want 1", n)
	}

	// Device expiry leaves it (and the account's first device).
	if x, ok := s.(store.DeviceExpirer); ok {
		gone, err := x.ExpireDevices(ctx(t), Epoch.Add(365*24*time.Hour))
		slices.SortFunc(gone, func(a, b store.DeviceRef) int { return int(a.DeviceID) - int(b.DeviceID) })
		want := []store.DeviceRef{{Account: acc, DeviceID: 2}, {Account: acc, DeviceID: 4}}
		if err != nil || !slices.Equal(gone, want) {
			t.Fatalf("ExpireDevices = %+v, %v; want devices 2 and 4 of acc", gone, err)
		}
		if ids := deviceIDs(t, s, acc); !slices.Equal(ids, []uint32{1, 3}) {
			t.Fatalf("Devices after expiry = %v, want [1 3]", ids)
		}
	}

	// Account recovery replaces every device but the compliance device.
	if r, ok := s.(store.Recovery); ok {
		before := deviceIDs(t, s, acc)
		nd, removed, err := r.ReplaceDevices(ctx(t), acc, store.NewDevice{RegistrationID: 77, CredentialHash: hash("recovered"),
			PreKeys: Upload(77, 1, 1), Now: Epoch})
		var wantRemoved []uint32
		for _, id := range before {
			if id != 3 {
				wantRemoved = append(wantRemoved, id)
			}
		}
		slices.Sort(removed)
		if err != nil || !slices.Equal(removed, wantRemoved) {
			t.Fatalf("ReplaceDevices removed %v, %v; want %v (not the compliance device)", removed, err, wantRemoved)
		}
		if ids := deviceIDs(t, s, acc); !slices.Equal(ids, []uint32{3, nd.DeviceID}) {
			t.Fatalf("Devices after recovery = %v, want [3 %d]", ids, nd.DeviceID)
		}
		if n := depth(t, s, acc, 3); n != 1 {
			t.Fatalf("compliance queue after recovery: %d envelopes, want 1", n)
		}
		if cd, err := lh.ComplianceDevices(ctx(t), acc); err != nil || !maps.Equal(cd, map[uint32][16]byte{3: h1}) {
			t.Fatalf("ComplianceDevices after recovery = %v, %v", cd, err)
		}
	}

	// Lifting: stale version first, then for real.
	_, err = lh.LiftHold(ctx(t), h1, 2, []byte("{}"), Epoch)
	wantErr(t, "LiftHold(stale version)", err, store.ErrConflict)
	if ids := deviceIDs(t, s, acc); !slices.Contains(ids, 3) {
		t.Fatalf("a stale LiftHold removed the compliance device: %v", ids)
	}
	_, err = lh.LiftHold(ctx(t), holdID(9), 1, []byte("{}"), Epoch)
	wantErr(t, "LiftHold(unknown)", err, store.ErrNotFound)
	got, err = lh.LiftHold(ctx(t), h1, 3, []byte(`{"lifted":true}`), Epoch.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want1.State, want1.Record, want1.Version, want1.UpdatedAt = store.HoldLifted, []byte(`{"lifted":true}`), 4, sec.Add(3*time.Hour)
	checkHold(t, "LiftHold", got, want1) // DeviceID and IdentityKey stay: the device it had
	if ids := deviceIDs(t, s, acc); slices.Contains(ids, 3) {
		t.Fatalf("Devices after lifting = %v, still with the compliance device", ids)
	}
	if n := depth(t, s, acc, 3); n != 0 {
		t.Fatalf("compliance device still has %d envelopes after lifting", n)
	}
	_, err = s.PreKeyCounts(ctx(t), acc, 3)
	wantErr(t, "PreKeyCounts(lifted compliance device)", err, store.ErrNotFound)
	_, err = s.TakeBundles(ctx(t), acc, 3)
	wantErr(t, "TakeBundles(lifted compliance device)", err, store.ErrNotFound)
	_, err = s.Device(ctx(t), acc, 3)
	wantErr(t, "Device(lifted compliance device)", err, store.ErrNotFound)
	if cd, err := lh.ComplianceDevices(ctx(t), acc); err != nil || len(cd) != 0 {
		t.Fatalf("ComplianceDevices after lifting = %v, %v", cd, err)
	}
	if hs, err := lh.Holds(ctx(t), nil, true); err != nil || len(hs) != 0 {
		t.Fatalf("Holds(active) after lifting = %x, %v", holdIDs(hs), err)
	}
	if ds, ok := s.(store.DataSubject); ok {
		d, err := ds.ExportAccount(ctx(t), acc)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Queued[3]; ok || slices.ContainsFunc(d.Devices, func(d store.Device) bool { return d.DeviceID == 3 }) {
			t.Fatalf("export after lifting still lists the compliance device: %+v", d)
		}
	}
	// Nothing goes back.
	_, err = lh.LiftHold(ctx(t), h1, 4, []byte("{}"), Epoch)
	wantErr(t, "LiftHold(again)", err, store.ErrConflict)
	_, _, err = lh.ActivateHold(ctx(t), h1, 4, []byte("{}"), ik, complianceDevice(2, Epoch))
	wantErr(t, "ActivateHold(lifted)", err, store.ErrConflict)
	_, err = lh.UpdateHoldRecord(ctx(t), h1, 4, []byte("{}"), Epoch)
	wantErr(t, "UpdateHoldRecord(lifted)", err, store.ErrConflict)
	if got, err := lh.Hold(ctx(t), h1); err != nil {
		t.Fatal(err)
	} else {
		checkHold(t, "Hold after refused changes", got, want1)
	}

	// A pending hold can be withdrawn: lifted with no device.
	got, err = lh.LiftHold(ctx(t), h3, 1, []byte(`{"withdrawn":true}`), Epoch)
	if err != nil {
		t.Fatal(err)
	}
	checkHold(t, "LiftHold(pending)", got, store.Hold{ID: h3, Account: acc, State: store.HoldLifted, Record: []byte(`{"withdrawn":true}`), Version: 2, UpdatedAt: sec})
	_, _, err = lh.ActivateHold(ctx(t), h3, 2, []byte("{}"), ik, complianceDevice(3, Epoch))
	wantErr(t, "ActivateHold(withdrawn)", err, store.ErrConflict)
	if hs, err := lh.Holds(ctx(t), &acc, false); err != nil || !slices.Equal(holdIDs(hs), [][16]byte{h1, h3}) {
		t.Fatalf("Holds(acc) at the end = %x, %v", holdIDs(hs), err)
	}
}

// testComplianceDeviceNotOldest: device expiry keeps an account's oldest
// ordinary device; a compliance device with a lower id is not it.
func testComplianceDeviceNotOldest(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	lh := legalHolds(t, s)
	x, ok := s.(store.DeviceExpirer)
	if !ok {
		t.Skip("no store.DeviceExpirer")
	}
	acc := mkAccount(t, s, 1, 1)
	if err := lh.CreateHold(ctx(t), newHold(holdID(1), acc, "{}", Epoch)); err != nil {
		t.Fatal(err)
	}
	if _, d, err := lh.ActivateHold(ctx(t), holdID(1), 1, []byte("{}"), []byte("ik"), complianceDevice(1, Epoch)); err != nil || d.DeviceID != 2 {
		t.Fatalf("ActivateHold = %+v, %v; want device 2", d, err)
	}
	addDevices(t, s, acc, 3, 1) // device 3
	addDevices(t, s, acc, 4, 1) // device 4
	if err := s.RemoveDevice(ctx(t), acc, 1); err != nil {
		t.Fatal(err)
	}
	// Devices 2 (compliance), 3 and 4, none seen for a year: 3 is the
	// oldest ordinary device and stays, 4 goes, 2 never expires.
	gone, err := x.ExpireDevices(ctx(t), Epoch.Add(365*24*time.Hour))
	if err != nil || !slices.Equal(gone, []store.DeviceRef{{Account: acc, DeviceID: 4}}) {
		t.Fatalf("ExpireDevices = %+v, %v; want device 4 only", gone, err)
	}
	if ids := deviceIDs(t, s, acc); !slices.Equal(ids, []uint32{2, 3}) {
		t.Fatalf("Devices after expiry = %v, want [2 3]", ids)
	}
}

// testLegalHoldsConcurrent: concurrent activations of one hold at the
// same version: exactly one wins, the rest conflict, and exactly one
// compliance device exists.
func testLegalHoldsConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	lh := legalHolds(t, s)
	acc := mkAccount(t, s, 1, 1)
	if err := lh.CreateHold(ctx(t), newHold(holdID(1), acc, "{}", Epoch)); err != nil {
		t.Fatal(err)
	}
	const n = 10
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		devs    = make([]store.Device, n)
		errs    = make([]error, n)
		records = make([]string, n)
	)
	for i := range n {
		records[i] = fmt.Sprintf(`{"winner":%d}`, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, devs[i], errs[i] = lh.ActivateHold(ctx(t), holdID(1), 1, []byte(records[i]), fmt.Appendf(nil, "ik %d", i), complianceDevice(uint32(i), Epoch))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("ActivateHold succeeded twice (%d and %d)", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("ActivateHold %d: %v, want success or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no ActivateHold succeeded")
	}
	h, err := lh.Hold(ctx(t), holdID(1))
	if err != nil || h.State != store.HoldActive || h.Version != 2 || h.DeviceID != devs[winner].DeviceID ||
		string(h.Record) != records[winner] || string(h.IdentityKey) != fmt.Sprintf("ik %d", winner) {
		t.Fatalf("hold after the race = %+v, %v; want the winner's (%d, device %d)", h, err, winner, devs[winner].DeviceID)
	}
	if ids := deviceIDs(t, s, acc); !slices.Equal(ids, []uint32{1, devs[winner].DeviceID}) {
		t.Fatalf("Devices after the race = %v, want [1 %d]", ids, devs[winner].DeviceID)
	}
	if cd, err := lh.ComplianceDevices(ctx(t), acc); err != nil || !maps.Equal(cd, map[uint32][16]byte{devs[winner].DeviceID: holdID(1)}) {
		t.Fatalf("ComplianceDevices after the race = %v, %v", cd, err)
	}
	if d, err := s.Device(ctx(t), acc, devs[winner].DeviceID); err != nil || !bytes.Equal(d.CredentialHash, hash(fmt.Sprintf("compliance %d", winner))) {
		t.Fatalf("the compliance device is not the winner's: %+v, %v", d, err)
	}
}

// testLegalHoldsErasure: erasing an account removes its holds, whatever
// their state, with the compliance device; other accounts' holds stay,
// and AccountTraces reports legal_holds while a row remains.
func testLegalHoldsErasure(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	lh := legalHolds(t, s)
	ds, ok := s.(store.DataSubject)
	if !ok {
		t.Skip("no store.DataSubject")
	}
	acc, other := mkAccount(t, s, 1, 1), mkAccount(t, s, 2, 1)
	for i, h := range []store.Hold{newHold(holdID(1), acc, "{}", Epoch), newHold(holdID(2), acc, "{}", Epoch),
		newHold(holdID(3), acc, "{}", Epoch), newHold(holdID(4), other, `{"stays":true}`, Epoch)} {
		if err := lh.CreateHold(ctx(t), h); err != nil {
			t.Fatalf("CreateHold %d: %v", i, err)
		}
	}
	// Hold 1 active with a queued envelope, hold 2 lifted, hold 3 pending.
	if _, _, err := lh.ActivateHold(ctx(t), holdID(1), 1, []byte("{}"), []byte("ik"), complianceDevice(1, Epoch)); err != nil {
		t.Fatal(err)
	}
	if _, err := lh.LiftHold(ctx(t), holdID(2), 1, []byte("{}"), Epoch); err != nil {
		t.Fatal(err)
	}
	snd := send(1, other, acc, 1)
	snd.Envelopes = append(snd.Envelopes, store.OutgoingEnvelope{DeviceID: 2, RegistrationID: 5001, Type: 3, Content: []byte("for compliance")})
	deliver(t, s, snd)
	if tr, err := ds.AccountTraces(ctx(t), other); err != nil || !slices.Contains(tr, "legal_holds") {
		t.Fatalf("traces of an account with a hold = %v, %v; want legal_holds among them", tr, err)
	}

	e, err := ds.EraseAccount(ctx(t), acc)
	if err != nil {
		t.Fatal(err)
	}
	if e.Devices != 2 || e.Envelopes != 2 {
		t.Fatalf("erased %+v; want 2 devices (one the compliance device) and 2 envelopes", e)
	}
	if tr, err := ds.AccountTraces(ctx(t), acc); err != nil || len(tr) != 0 {
		t.Fatalf("traces after erasure: %v, %v", tr, err)
	}
	if hs, err := lh.Holds(ctx(t), &acc, false); err != nil || len(hs) != 0 {
		t.Fatalf("Holds(erased account) = %x, %v", holdIDs(hs), err)
	}
	for i := byte(1); i <= 3; i++ {
		_, err := lh.Hold(ctx(t), holdID(i))
		wantErr(t, fmt.Sprintf("Hold(%d) after erasure", i), err, store.ErrNotFound)
	}
	if hs, err := lh.Holds(ctx(t), nil, false); err != nil || !slices.Equal(holdIDs(hs), [][16]byte{holdID(4)}) {
		t.Fatalf("Holds(all) after erasure = %x, %v; want the other account's only", holdIDs(hs), err)
	}
	if cd, err := lh.ComplianceDevices(ctx(t), acc); err != nil || len(cd) != 0 {
		t.Fatalf("ComplianceDevices(erased) = %v, %v", cd, err)
	}
}

// testSettings: server-wide settings, "" when unset, overwritten by the
// next SetSetting, kept across reopening.
func testSettings(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	lh := legalHolds(t, s)
	if v, err := lh.Setting(ctx(t), "legal_hold_disabled"); err != nil || v != "" {
		t.Fatalf("Setting(unset) = %q, %v", v, err)
	}
	for _, v := range []string{"true", "for good"} {
		if err := lh.SetSetting(ctx(t), "legal_hold_disabled", v); err != nil {
			t.Fatal(err)
		}
		if got, err := lh.Setting(ctx(t), "legal_hold_disabled"); err != nil || got != v {
			t.Fatalf("Setting = %q, %v; want %q", got, err, v)
		}
	}
	if err := lh.SetSetting(ctx(t), "other", "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t)
	lh = legalHolds(t, s)
	for name, want := range map[string]string{"legal_hold_disabled": "for good", "other": "x", "unknown": ""} {
		if got, err := lh.Setting(ctx(t), name); err != nil || got != want {
			t.Fatalf("Setting(%q) after reopening = %q, %v; want %q", name, got, err, want)
		}
	}
}
