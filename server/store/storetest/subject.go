package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// testDataSubject: an export lists what the database holds about an
// account; an erasure removes all of it (and the envelopes it sent to
// others), leaves other accounts whole, and leaves no trace.
func testDataSubject(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ds, ok := s.(store.DataSubject)
	if !ok {
		t.Fatalf("%T does not implement store.DataSubject", s)
	}
	acc, other := mkAccount(t, s, 1, 3), mkAccount(t, s, 2, 2)
	addDevices(t, s, acc, 2, 1)
	if n, ok := s.(store.DeviceNamer); ok {
		if err := n.SetDeviceName(ctx(t), acc, 2, []byte("sealed name")); err != nil {
			t.Fatal(err)
		}
	}
	if b, ok := s.(store.Blobs); ok {
		if err := b.PutBlob(ctx(t), hash("blob"), acc, []byte("opaque archive"), Epoch.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if a, ok := s.(store.SealedAccess); ok {
		if err := a.SetAccess(ctx(t), acc, store.Access{KeyHash: hash("k"), Unrestricted: true}); err != nil {
			t.Fatal(err)
		}
	}
	deliver(t, s, store.Send{MessageID: [16]byte{1}, Recipient: acc, Now: Epoch, Envelopes: []store.OutgoingEnvelope{
		{DeviceID: 1, RegistrationID: regID(1), Type: 1, Content: []byte("12345")},
		{DeviceID: 2, RegistrationID: regID(2), Type: 1, Content: []byte("678")}}})
	// Sent by acc to other: it names acc as its sender.
	deliver(t, s, store.Send{MessageID: [16]byte{2}, Recipient: other, Sender: acc, SenderDevice: 1, Now: Epoch,
		Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: regID(1), Type: 1, Content: []byte("to other")}}})
	deliver(t, s, store.Send{MessageID: [16]byte{3}, Recipient: other, Now: Epoch,
		Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: regID(1), Type: 6, Content: []byte("sealed, stays")}}})

	d, err := ds.ExportAccount(ctx(t), acc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Account.ID != acc || d.Account.Username != "user1" || len(d.Devices) != 2 || d.Queued[1] != (store.QueueStat{Count: 1, Bytes: 5}) ||
		d.Queued[2] != (store.QueueStat{Count: 1, Bytes: 3}) || d.PreKeys[1].EC != 3 || !d.AccessKeySet || !d.SealedFromAnyone {
		t.Fatalf("export: %+v", d)
	}
	if _, ok := s.(store.Blobs); ok && d.Blobs.Count != 1 {
		t.Errorf("export blobs: %+v", d.Blobs)
	}
	if _, ok := s.(store.DeviceNamer); ok && !bytes.Equal(d.DeviceNames[2], []byte("sealed name")) {
		t.Errorf("export names: %v", d.DeviceNames)
	}
	_, err = ds.ExportAccount(ctx(t), ID(9))
	wantErr(t, "ExportAccount(unknown)", err, store.ErrNotFound)

	e, err := ds.EraseAccount(ctx(t), acc)
	if err != nil {
		t.Fatal(err)
	}
	if e.Devices != 2 || e.Envelopes != 3 || e.EnvelopeBytes != 16 || e.PreKeys == 0 {
		t.Fatalf("erased: %+v", e)
	}
	if tr, err := ds.AccountTraces(ctx(t), acc); err != nil || len(tr) != 0 {
		t.Fatalf("traces after erasure: %v, %v", tr, err)
	}
	_, err = s.Account(ctx(t), acc)
	wantErr(t, "Account(erased)", err, store.ErrNotFound)
	_, err = ds.EraseAccount(ctx(t), acc)
	wantErr(t, "EraseAccount(again)", err, store.ErrNotFound)
	// The other account keeps its devices and what others sent it.
	if env, err := s.Pending(ctx(t), other, 1, 0, 10); err != nil || len(env) != 1 || string(env[0].Content) != "sealed, stays" {
		t.Fatalf("the other account's queue: %+v, %v", env, err)
	}
	if tr, err := ds.AccountTraces(ctx(t), other); err != nil || len(tr) == 0 {
		t.Fatalf("the other account's traces: %v, %v", tr, err)
	}
}

// testInactiveAccounts: an account none of whose devices was seen since
// the cutoff is inactive; one device seen since keeps it active.
func testInactiveAccounts(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ds := s.(store.DataSubject)
	quiet, busy := mkAccount(t, s, 1, 1), mkAccount(t, s, 2, 1)
	addDevices(t, s, busy, 2, 1)
	later := Epoch.Add(400 * 24 * time.Hour)
	if err := s.TouchDevice(ctx(t), busy, 2, later); err != nil {
		t.Fatal(err)
	}
	got, err := ds.InactiveAccounts(ctx(t), later.Add(-30*24*time.Hour), 10)
	if err != nil || len(got) != 1 || got[0] != quiet {
		t.Fatalf("InactiveAccounts = %v, %v; want only the quiet account", got, err)
	}
	if got, err := ds.InactiveAccounts(ctx(t), Epoch, 10); err != nil || len(got) != 0 {
		t.Fatalf("nothing is inactive at creation: %v, %v", got, err)
	}
}
