// Package storetest is the conformance suite of the [store.Store]
// contract. Every implementation runs the same [Run] from its own test
// file, so SQLite and PostgreSQL are held to exactly the same behaviour.
//
// # Writing an open function
//
// Run calls open once per subtest. The first call with a given *testing.T
// must return a store over fresh, empty state; a later call with the same
// *testing.T (after the suite closed the previous store) must return a
// store over the same state: that is how the suite checks that what was
// acknowledged survives reopening. open should register the store's
// Close (and the removal of the state) with t.Cleanup; closing twice must
// be harmless.
//
// # Fixtures
//
// The helpers build deterministic accounts and keys; key bytes encode the
// device and key id so a wrong hand-out is visible in a failure message.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// Epoch is the suite's fixed clock: a time with seconds and nanoseconds,
// so coarsening is visible.
var Epoch = time.Date(2026, 11, 25, 13, 47, 31, 123456789, time.UTC)

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"Accounts", testAccounts},
		{"AccountValidation", testAccountValidation},
		{"Devices", testDevices},
		{"AddRemoveDevice", testAddRemoveDevice},
		{"PreKeyUploadAndCounts", testPreKeyUpload},
		{"TakeBundlesOrder", testTakeBundlesOrder},
		{"TakeBundlesMultiDevice", testTakeBundlesMultiDevice},
		{"TakeBundlesConcurrent", testTakeBundlesConcurrent},
		{"DeliverAndPending", testDeliverAndPending},
		{"DeliverSealed", testDeliverSealed},
		{"DeviceMismatch", testDeviceMismatch},
		{"ExcludeDevice", testExcludeDevice},
		{"DeliverErrors", testDeliverErrors},
		{"Duplicate", testDuplicate},
		{"DuplicateAfterReopen", testDuplicateAfterReopen},
		{"DedupWindow", testDedupWindow},
		{"QueueFull", testQueueFull},
		{"PendingPaging", testPendingPaging},
		{"AckScoped", testAckScoped},
		{"AckBatch", testAckBatch},
		{"SeqNeverGoesBack", testSeqNeverGoesBack},
		{"ConcurrentDeliver", testConcurrentDeliver},
		{"ConcurrentDuplicate", testConcurrentDuplicate},
		{"PendingNeverSkips", testPendingNeverSkips},
		{"Sweep", testSweep},
		{"TakeToken", testTakeToken},
		{"TakeTokenSweep", testTakeTokenSweep},
		{"Model", testModel},
		{"Provisioning", testProvisioning},
		{"Blobs", testBlobs},
		{"ExpireDevices", testExpireDevices},
		{"DeviceNames", testDeviceNames},
		{"SealedAccess", testSealedAccess},
		{"Recovery", testRecovery},
		{"AccountBackup", testAccountBackup},
		{"DataSubject", testDataSubject},
		{"InactiveAccounts", testInactiveAccounts},
		{"Audit", testAudit}, {"AuditConcurrent", testAuditConcurrent},
		{"LegalHolds", testLegalHolds},
		{"ComplianceDeviceNotOldest", testComplianceDeviceNotOldest},
		{"LegalHoldsConcurrent", testLegalHoldsConcurrent},
		{"LegalHoldsErasure", testLegalHoldsErasure},
		{"Settings", testSettings},
		{"Ping", testPing},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// --- fixtures ---------------------------------------------------------

func ctx(t *testing.T) context.Context { return t.Context() }

// ID returns a deterministic account id.
func ID(n byte) store.AccountID {
	var a store.AccountID
	for i := range a {
		a[i] = n ^ byte(i*37)
	}
	a[6] = 0x40 | a[6]&0x0f
	a[8] = 0x80 | a[8]&0x3f
	return a
}

// MsgID returns a deterministic message id.
func MsgID(n int) [16]byte {
	var m [16]byte
	copy(m[:], "msg-")
	binary.BigEndian.PutUint64(m[8:], uint64(n))
	return m
}

func keyBytes(tag string, dev, id uint32) []byte {
	return fmt.Appendf(nil, "%s/dev%d/key%d", tag, dev, id)
}

func signed(tag string, dev, id uint32) *store.SignedPreKey {
	return &store.SignedPreKey{KeyID: id, PublicKey: keyBytes(tag, dev, id), Signature: keyBytes(tag+"-sig", dev, id)}
}

// Upload builds an upload for device dev with n one-time keys of each
// kind, key ids first..first+n-1.
func Upload(dev uint32, first uint32, n int) store.PreKeyUpload {
	up := store.PreKeyUpload{SignedPreKey: signed("spk", dev, 1), LastResortKEM: signed("lrk", dev, 1)}
	for i := range uint32(n) {
		up.OneTimeEC = append(up.OneTimeEC, store.PreKey{KeyID: first + i, PublicKey: keyBytes("ec", dev, first+i)})
		up.OneTimeKEM = append(up.OneTimeKEM, *signed("kem", dev, first+i))
	}
	return up
}

func credHash(acc store.AccountID, dev uint32) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "credential %x %d", acc[:], dev))
	return h[:]
}

func regID(dev uint32) uint32 { return 1000 + dev }

// mkAccount registers account n with its first device and nKeys one-time
// keys of each kind.
func mkAccount(t *testing.T, s store.Store, n byte, nKeys int) store.AccountID {
	t.Helper()
	id := ID(n)
	_, err := s.CreateAccount(ctx(t), store.NewAccount{
		ID: id, Username: fmt.Sprintf("user%d", n), IdentityKey: []byte(fmt.Sprintf("identity-%d", n)),
		RegistrationID: regID(1), CredentialHash: credHash(id, 1), PreKeys: Upload(1, 1, nKeys), Now: Epoch,
	})
	if err != nil {
		t.Fatalf("CreateAccount(%d): %v", n, err)
	}
	return id
}

// addDevices links devices until the account has n.
func addDevices(t *testing.T, s store.Store, acc store.AccountID, n int, nKeys int) {
	t.Helper()
	for {
		devs, err := s.Devices(ctx(t), acc)
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) >= n {
			return
		}
		next := devs[len(devs)-1].DeviceID + 1
		d, err := s.AddDevice(ctx(t), acc, store.NewDevice{RegistrationID: regID(next), CredentialHash: credHash(acc, next),
			PreKeys: Upload(next, 1, nKeys), Now: Epoch}, 0)
		if err != nil {
			t.Fatalf("AddDevice: %v", err)
		}
		if d.DeviceID != next {
			t.Fatalf("AddDevice gave id %d, want %d", d.DeviceID, next)
		}
	}
}

func content(msg int, dev uint32) []byte {
	return fmt.Appendf(nil, "opaque ciphertext of message %d for device %d", msg, dev)
}

// send builds a send of message msg from sender (device 1) to every
// listed device of recipient, with the registration ids regID gives.
func send(msg int, from, to store.AccountID, devs ...uint32) store.Send {
	s := store.Send{MessageID: MsgID(msg), Recipient: to, Sender: from, SenderDevice: 1, Now: Epoch}
	for _, d := range devs {
		s.Envelopes = append(s.Envelopes, store.OutgoingEnvelope{DeviceID: d, RegistrationID: regID(d), Type: 3, Content: content(msg, d)})
	}
	return s
}

func deliver(t *testing.T, s store.Store, snd store.Send) store.SendResult {
	t.Helper()
	res, err := s.Deliver(ctx(t), snd)
	if err != nil {
		t.Fatalf("Deliver(%x): %v", snd.MessageID, err)
	}
	return res
}

func depth(t *testing.T, s store.Store, acc store.AccountID, dev uint32) int {
	t.Helper()
	n, err := s.QueueDepth(ctx(t), acc, dev)
	if err != nil {
		t.Fatalf("QueueDepth: %v", err)
	}
	return n
}

func pending(t *testing.T, s store.Store, acc store.AccountID, dev uint32) []store.Envelope {
	t.Helper()
	envs, err := s.Pending(ctx(t), acc, dev, 0, 10000)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return envs
}

func seqs(envs []store.Envelope) []int64 {
	var out []int64
	for _, e := range envs {
		out = append(out, e.Seq)
	}
	return out
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// --- accounts and devices ---------------------------------------------

func testAccounts(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	id := ID(1)
	a, err := s.CreateAccount(ctx(t), store.NewAccount{ID: id, Username: "alice", IdentityKey: []byte("alice-ik"),
		RegistrationID: 77, CredentialHash: []byte("hash-a"), PreKeys: Upload(1, 1, 2), Now: Epoch})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	want := store.Account{ID: id, Username: "alice", IdentityKey: []byte("alice-ik"), CreatedAt: day}
	check := func(what string, got store.Account, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.ID != want.ID || got.Username != want.Username || !bytes.Equal(got.IdentityKey, want.IdentityKey) || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("%s = %+v, want %+v", what, got, want)
		}
	}
	check("CreateAccount", a, nil)
	a, err = s.Account(ctx(t), id)
	check("Account", a, err)
	a, err = s.AccountByUsername(ctx(t), "alice")
	check("AccountByUsername", a, err)

	_, err = s.Account(ctx(t), ID(2))
	wantErr(t, "Account(unknown)", err, store.ErrNotFound)
	_, err = s.AccountByUsername(ctx(t), "bob")
	wantErr(t, "AccountByUsername(unknown)", err, store.ErrNotFound)
	_, err = s.AccountByUsername(ctx(t), "Alice")
	wantErr(t, "AccountByUsername is exact", err, store.ErrNotFound)

	// Username taken: nothing of the second account is stored.
	_, err = s.CreateAccount(ctx(t), store.NewAccount{ID: ID(2), Username: "alice", IdentityKey: []byte("x"),
		RegistrationID: 1, CredentialHash: []byte("h"), PreKeys: Upload(1, 1, 1), Now: Epoch})
	wantErr(t, "CreateAccount(taken)", err, store.ErrUsernameTaken)
	_, err = s.Account(ctx(t), ID(2))
	wantErr(t, "Account after failed create", err, store.ErrNotFound)
	_, err = s.Device(ctx(t), ID(2), 1)
	wantErr(t, "Device after failed create", err, store.ErrNotFound)
	a, err = s.AccountByUsername(ctx(t), "alice")
	check("AccountByUsername after failed create", a, err)

	// The same id again (a server-side id collision): refused, and the
	// new username is not taken by it.
	_, err = s.CreateAccount(ctx(t), store.NewAccount{ID: id, Username: "alice2", IdentityKey: []byte("x"),
		RegistrationID: 1, CredentialHash: []byte("h"), PreKeys: Upload(1, 1, 1), Now: Epoch})
	wantErr(t, "CreateAccount(existing id)", err, store.ErrInvalid)
	_, err = s.AccountByUsername(ctx(t), "alice2")
	wantErr(t, "AccountByUsername after id collision", err, store.ErrNotFound)
	a, err = s.Account(ctx(t), id)
	check("Account after id collision", a, err)
}

func testAccountValidation(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	base := store.NewAccount{ID: ID(1), Username: "alice", IdentityKey: []byte("ik"), RegistrationID: 1,
		CredentialHash: []byte("h"), PreKeys: Upload(1, 1, 1), Now: Epoch}
	for name, mut := range map[string]func(a *store.NewAccount){
		"no signed prekey":      func(a *store.NewAccount) { a.PreKeys.SignedPreKey = nil },
		"no last-resort key":    func(a *store.NewAccount) { a.PreKeys.LastResortKEM = nil },
		"unsigned KEM key":      func(a *store.NewAccount) { a.PreKeys.OneTimeKEM[0].Signature = nil },
		"empty one-time EC key": func(a *store.NewAccount) { a.PreKeys.OneTimeEC[0].PublicKey = nil },
		"no credential hash":    func(a *store.NewAccount) { a.CredentialHash = nil },
	} {
		a := base
		a.PreKeys = Upload(1, 1, 1)
		mut(&a)
		_, err := s.CreateAccount(ctx(t), a)
		wantErr(t, "CreateAccount("+name+")", err, store.ErrInvalid)
		_, err = s.AccountByUsername(ctx(t), "alice")
		wantErr(t, "account after "+name, err, store.ErrNotFound)
	}
	if _, err := s.CreateAccount(ctx(t), base); err != nil {
		t.Fatalf("valid CreateAccount after rejected ones: %v", err)
	}
}

func testDevices(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	acc := mkAccount(t, s, 1, 0)
	d, err := s.Device(ctx(t), acc, 1)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	if d.Account != acc || d.DeviceID != 1 || d.RegistrationID != regID(1) || !bytes.Equal(d.CredentialHash, credHash(acc, 1)) ||
		!d.CreatedAt.Equal(day) || !d.LastSeen.Equal(day) {
		t.Fatalf("Device = %+v", d)
	}
	_, err = s.Device(ctx(t), acc, 2)
	wantErr(t, "Device(2)", err, store.ErrNotFound)
	_, err = s.Device(ctx(t), ID(9), 1)
	wantErr(t, "Device(unknown account)", err, store.ErrNotFound)

	// LastSeen is coarse and never moves back.
	later := Epoch.Add(50 * time.Hour)
	if err := s.TouchDevice(ctx(t), acc, 1, later); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchDevice(ctx(t), acc, 1, Epoch); err != nil {
		t.Fatal(err)
	}
	d, _ = s.Device(ctx(t), acc, 1)
	if want := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC); !d.LastSeen.Equal(want) || !d.CreatedAt.Equal(day) {
		t.Fatalf("after touches LastSeen=%v CreatedAt=%v, want %v and %v", d.LastSeen, d.CreatedAt, want, day)
	}
	wantErr(t, "TouchDevice(unknown)", s.TouchDevice(ctx(t), acc, 5, later.Add(48*time.Hour)), store.ErrNotFound)

	devs, err := s.Devices(ctx(t), ID(9))
	if err != nil || len(devs) != 0 {
		t.Fatalf("Devices(unknown) = %v, %v; want empty", devs, err)
	}
}

func testAddRemoveDevice(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	acc := mkAccount(t, s, 1, 1)
	nd := func(reg uint32) store.NewDevice {
		return store.NewDevice{RegistrationID: reg, CredentialHash: []byte{byte(reg)}, PreKeys: Upload(9, 1, 1), Now: Epoch}
	}
	for want := uint32(2); want <= 3; want++ {
		d, err := s.AddDevice(ctx(t), acc, nd(regID(want)), 3)
		if err != nil {
			t.Fatal(err)
		}
		if d.DeviceID != want || d.RegistrationID != regID(want) || d.Account != acc || !bytes.Equal(d.CredentialHash, []byte{byte(regID(want))}) {
			t.Fatalf("AddDevice = %+v, want id %d", d, want)
		}
	}
	_, err := s.AddDevice(ctx(t), acc, nd(4), 3)
	wantErr(t, "AddDevice over limit", err, store.ErrDeviceLimit)
	_, err = s.AddDevice(ctx(t), ID(9), nd(4), 0)
	wantErr(t, "AddDevice(unknown account)", err, store.ErrNotFound)
	_, err = s.AddDevice(ctx(t), acc, store.NewDevice{RegistrationID: 4, CredentialHash: []byte{4}, Now: Epoch}, 0)
	wantErr(t, "AddDevice without signed keys", err, store.ErrInvalid)
	devs, err := s.Devices(ctx(t), acc)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for _, d := range devs {
		ids = append(ids, d.DeviceID)
	}
	if !slices.Equal(ids, []uint32{1, 2, 3}) {
		t.Fatalf("Devices = %v, want [1 2 3] (failed adds must store nothing)", ids)
	}

	// Removing device 3 deletes its queue and prekeys; its id is never
	// reused.
	deliver(t, s, send(1, ID(7), acc, 1, 2, 3))
	if err := s.RemoveDevice(ctx(t), acc, 3); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "RemoveDevice again", s.RemoveDevice(ctx(t), acc, 3), store.ErrNotFound)
	if n := depth(t, s, acc, 3); n != 0 {
		t.Fatalf("removed device still has %d envelopes", n)
	}
	if n := depth(t, s, acc, 2); n != 1 {
		t.Fatalf("device 2 depth %d after removing 3, want 1", n)
	}
	_, err = s.TakeBundles(ctx(t), acc, 3)
	wantErr(t, "TakeBundles(removed)", err, store.ErrNotFound)
	d, err := s.AddDevice(ctx(t), acc, nd(5), 3)
	if err != nil {
		t.Fatal(err)
	}
	if d.DeviceID != 4 {
		t.Fatalf("device id after removal = %d, want 4 (never reuse 3)", d.DeviceID)
	}
	c, err := s.PreKeyCounts(ctx(t), acc, 4)
	if err != nil || c != (store.PreKeyCounts{EC: 1, KEM: 1}) {
		t.Fatalf("PreKeyCounts(new device) = %+v, %v", c, err)
	}
}

// --- prekeys ----------------------------------------------------------

func counts(t *testing.T, s store.Store, acc store.AccountID, dev uint32) store.PreKeyCounts {
	t.Helper()
	c, err := s.PreKeyCounts(ctx(t), acc, dev)
	if err != nil {
		t.Fatalf("PreKeyCounts: %v", err)
	}
	return c
}

func takeOne(t *testing.T, s store.Store, acc store.AccountID, dev uint32) store.Bundle {
	t.Helper()
	bs, err := s.TakeBundles(ctx(t), acc, dev)
	if err != nil {
		t.Fatalf("TakeBundles: %v", err)
	}
	if len(bs) != 1 {
		t.Fatalf("TakeBundles returned %d bundles, want 1", len(bs))
	}
	return bs[0]
}

func testPreKeyUpload(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	acc := mkAccount(t, s, 1, 3)
	if c := counts(t, s, acc, 1); c != (store.PreKeyCounts{EC: 3, KEM: 3}) {
		t.Fatalf("counts after registration = %+v", c)
	}
	// Append 2 more EC keys only; the repeat of key 3 is ignored.
	up := store.PreKeyUpload{OneTimeEC: []store.PreKey{
		{KeyID: 3, PublicKey: []byte("replacement must be ignored")},
		{KeyID: 4, PublicKey: keyBytes("ec", 1, 4)},
		{KeyID: 5, PublicKey: keyBytes("ec", 1, 5)},
	}}
	if err := s.StorePreKeys(ctx(t), acc, 1, up); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, s, acc, 1); c != (store.PreKeyCounts{EC: 5, KEM: 3}) {
		t.Fatalf("counts after upload = %+v, want EC 5 KEM 3", c)
	}
	// Replace the signed prekey.
	if err := s.StorePreKeys(ctx(t), acc, 1, store.PreKeyUpload{SignedPreKey: signed("spk", 1, 2)}); err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 5; i++ {
		b := takeOne(t, s, acc, 1)
		if b.PreKey == nil || b.PreKey.KeyID != i || !bytes.Equal(b.PreKey.PublicKey, keyBytes("ec", 1, i)) {
			t.Fatalf("take %d: PreKey = %+v, want key %d", i, b.PreKey, i)
		}
		if b.SignedPreKey.KeyID != 2 || !bytes.Equal(b.SignedPreKey.PublicKey, keyBytes("spk", 1, 2)) || !bytes.Equal(b.SignedPreKey.Signature, keyBytes("spk-sig", 1, 2)) {
			t.Fatalf("take %d: SignedPreKey = %+v, want the replacement", i, b.SignedPreKey)
		}
	}
	if c := counts(t, s, acc, 1); c != (store.PreKeyCounts{}) {
		t.Fatalf("counts after draining = %+v", c)
	}

	wantErr(t, "StorePreKeys(unknown device)", s.StorePreKeys(ctx(t), acc, 2, Upload(2, 1, 1)), store.ErrNotFound)
	wantErr(t, "StorePreKeys(unknown account)", s.StorePreKeys(ctx(t), ID(9), 1, Upload(1, 1, 1)), store.ErrNotFound)
	wantErr(t, "StorePreKeys(invalid)", s.StorePreKeys(ctx(t), acc, 1, store.PreKeyUpload{
		OneTimeEC:  []store.PreKey{{KeyID: 10, PublicKey: []byte("k")}},
		OneTimeKEM: []store.SignedPreKey{{KeyID: 10, PublicKey: []byte("k")}}}), store.ErrInvalid)
	if c := counts(t, s, acc, 1); c != (store.PreKeyCounts{}) {
		t.Fatalf("a rejected upload stored keys: %+v", c)
	}
	_, err := s.PreKeyCounts(ctx(t), acc, 2)
	wantErr(t, "PreKeyCounts(unknown)", err, store.ErrNotFound)
}

func testTakeBundlesOrder(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	acc := mkAccount(t, s, 1, 2)
	// One more KEM key than EC keys.
	if err := s.StorePreKeys(ctx(t), acc, 1, store.PreKeyUpload{OneTimeKEM: []store.SignedPreKey{*signed("kem", 1, 3)}}); err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 4; i++ {
		b := takeOne(t, s, acc, 1)
		if b.DeviceID != 1 || b.RegistrationID != regID(1) {
			t.Fatalf("bundle ids = %d/%d", b.DeviceID, b.RegistrationID)
		}
		if !bytes.Equal(b.SignedPreKey.PublicKey, keyBytes("spk", 1, 1)) {
			t.Fatalf("signed prekey = %q", b.SignedPreKey.PublicKey)
		}
		switch {
		case i <= 2 && (b.PreKey == nil || b.PreKey.KeyID != i):
			t.Fatalf("take %d: EC prekey %+v, want key %d", i, b.PreKey, i)
		case i > 2 && b.PreKey != nil:
			t.Fatalf("take %d: EC prekey %+v after exhaustion, want nil", i, b.PreKey)
		}
		if i <= 3 {
			if b.KEMIsLastResort || b.KEM.KeyID != i || !bytes.Equal(b.KEM.PublicKey, keyBytes("kem", 1, i)) || !bytes.Equal(b.KEM.Signature, keyBytes("kem-sig", 1, i)) {
				t.Fatalf("take %d: KEM %+v lastResort=%v, want one-time key %d", i, b.KEM, b.KEMIsLastResort, i)
			}
		} else if !b.KEMIsLastResort || !bytes.Equal(b.KEM.PublicKey, keyBytes("lrk", 1, 1)) || !bytes.Equal(b.KEM.Signature, keyBytes("lrk-sig", 1, 1)) {
			t.Fatalf("take %d: KEM %+v lastResort=%v, want the last-resort key", i, b.KEM, b.KEMIsLastResort)
		}
	}
	_, err := s.TakeBundles(ctx(t), ID(9), 0)
	wantErr(t, "TakeBundles(unknown account)", err, store.ErrNotFound)
	_, err = s.TakeBundles(ctx(t), acc, 2)
	wantErr(t, "TakeBundles(unknown device)", err, store.ErrNotFound)
}

func testTakeBundlesMultiDevice(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	acc := mkAccount(t, s, 1, 2)
	addDevices(t, s, acc, 3, 2)
	bs, err := s.TakeBundles(ctx(t), acc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 {
		t.Fatalf("got %d bundles, want 3", len(bs))
	}
	for i, b := range bs {
		dev := uint32(i + 1)
		if b.DeviceID != dev || b.RegistrationID != regID(dev) || b.PreKey == nil ||
			!bytes.Equal(b.PreKey.PublicKey, keyBytes("ec", dev, 1)) || !bytes.Equal(b.KEM.PublicKey, keyBytes("kem", dev, 1)) ||
			!bytes.Equal(b.SignedPreKey.PublicKey, keyBytes("spk", dev, 1)) {
			t.Fatalf("bundle %d = %+v", i, b)
		}
	}
	// Only device 2.
	b := takeOne(t, s, acc, 2)
	if b.DeviceID != 2 || b.PreKey == nil || b.PreKey.KeyID != 2 {
		t.Fatalf("device-2 bundle = %+v", b)
	}
	for dev, want := range map[uint32]store.PreKeyCounts{1: {EC: 1, KEM: 1}, 2: {}, 3: {EC: 1, KEM: 1}} {
		if c := counts(t, s, acc, dev); c != want {
			t.Fatalf("device %d counts %+v, want %+v", dev, c, want)
		}
	}
}

func testTakeBundlesConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	const keys, fetchers = 30, 50
	acc := mkAccount(t, s, 1, keys)
	var (
		mu       sync.Mutex
		ec, kem  []uint32
		nilEC    int
		lastRes  int
		wg       sync.WaitGroup
		firstErr error
	)
	start := make(chan struct{})
	for range fetchers {
		wg.Go(func() {
			<-start
			bs, err := s.TakeBundles(context.Background(), acc, 0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || len(bs) != 1 {
				if firstErr == nil {
					firstErr = fmt.Errorf("TakeBundles = %d bundles, %v", len(bs), err)
				}
				return
			}
			b := bs[0]
			if b.PreKey == nil {
				nilEC++
			} else {
				ec = append(ec, b.PreKey.KeyID)
			}
			if b.KEMIsLastResort {
				lastRes++
			} else {
				kem = append(kem, b.KEM.KeyID)
			}
		})
	}
	close(start)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	slices.Sort(ec)
	slices.Sort(kem)
	if len(slices.Compact(slices.Clone(ec))) != len(ec) || len(slices.Compact(slices.Clone(kem))) != len(kem) {
		t.Fatalf("a one-time key was handed out twice: EC %v KEM %v", ec, kem)
	}
	if len(ec) != keys || nilEC != fetchers-keys || len(kem) != keys || lastRes != fetchers-keys {
		t.Fatalf("handed out %d EC (%d nil), %d KEM (%d last resort); want %d and %d", len(ec), nilEC, len(kem), lastRes, keys, fetchers-keys)
	}
	if c := counts(t, s, acc, 1); c != (store.PreKeyCounts{}) {
		t.Fatalf("counts after concurrent drain = %+v", c)
	}
}

// --- delivery -----------------------------------------------------------

func testDeliverAndPending(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	addDevices(t, s, bob, 2, 0)
	r1 := deliver(t, s, send(1, alice, bob, 1, 2))
	r2 := deliver(t, s, send(2, alice, bob, 2, 1)) // any order of envelopes
	if r1.Duplicate || r2.Duplicate || len(r1.Seqs) != 2 || len(r2.Seqs) != 2 {
		t.Fatalf("results %+v %+v", r1, r2)
	}
	// r2.Seqs follows the envelope order: device 2 first.
	if !(r2.Seqs[1] > r1.Seqs[0]) || !(r2.Seqs[0] > r1.Seqs[1]) {
		t.Fatalf("seqs not increasing per device: %v then %v", r1.Seqs, r2.Seqs)
	}
	for i, dev := range []uint32{1, 2} {
		envs := pending(t, s, bob, dev)
		if len(envs) != 2 {
			t.Fatalf("device %d has %d envelopes", dev, len(envs))
		}
		wantSeqs := []int64{r1.Seqs[i], r2.Seqs[1-i]}
		if !slices.Equal(seqs(envs), wantSeqs) {
			t.Fatalf("device %d seqs %v, want %v", dev, seqs(envs), wantSeqs)
		}
		for j, e := range envs {
			want := store.Envelope{Seq: wantSeqs[j], MessageID: MsgID(j + 1), Recipient: bob, DeviceID: dev, Type: 3,
				Sender: alice, SenderDevice: 1, Content: content(j+1, dev), ReceivedAt: Epoch.Truncate(time.Minute)}
			if !envEqual(e, want) {
				t.Fatalf("envelope %+v\nwant %+v", e, want)
			}
		}
	}
	if n := depth(t, s, bob, 1); n != 2 {
		t.Fatalf("depth = %d", n)
	}
	if n := depth(t, s, alice, 1); n != 0 {
		t.Fatalf("sender's depth = %d", n)
	}
	// Ack both on device 1; device 2 keeps its copies.
	for _, sq := range []int64{r1.Seqs[0], r2.Seqs[1]} {
		if err := s.Ack(ctx(t), bob, 1, sq); err != nil {
			t.Fatal(err)
		}
	}
	if n := depth(t, s, bob, 1); n != 0 {
		t.Fatalf("depth after acks = %d", n)
	}
	if n := depth(t, s, bob, 2); n != 2 {
		t.Fatalf("device 2 depth after device 1's acks = %d", n)
	}
	// An empty-content (but non-nil) envelope is valid.
	snd := send(3, alice, bob, 1, 2)
	snd.Envelopes[0].Content = []byte{}
	deliver(t, s, snd)
	if envs := pending(t, s, bob, 1); len(envs) != 1 || len(envs[0].Content) != 0 {
		t.Fatalf("empty content envelope = %+v", envs)
	}
}

func envEqual(a, b store.Envelope) bool {
	return a.Seq == b.Seq && a.MessageID == b.MessageID && a.Recipient == b.Recipient && a.DeviceID == b.DeviceID &&
		a.Type == b.Type && a.Sender == b.Sender && a.SenderDevice == b.SenderDevice && bytes.Equal(a.Content, b.Content) &&
		a.ReceivedAt.Equal(b.ReceivedAt)
}

func testDeliverSealed(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	bob := mkAccount(t, s, 2, 0)
	snd := send(1, store.AccountID{}, bob, 1)
	snd.SenderDevice = 7 // ignored: no sender device without a sender
	snd.Envelopes[0].Type = 6
	deliver(t, s, snd)
	envs := pending(t, s, bob, 1)
	if len(envs) != 1 || envs[0].Sender != (store.AccountID{}) || envs[0].SenderDevice != 0 || envs[0].Type != 6 {
		t.Fatalf("sealed envelope = %+v, want no sender", envs)
	}
}

func testDeviceMismatch(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	addDevices(t, s, bob, 4, 0)
	cases := []struct {
		name                  string
		devs                  []uint32
		staleDev              uint32
		missing, extra, stale []uint32
	}{
		{"missing", []uint32{1, 3}, 0, []uint32{2, 4}, nil, nil},
		{"extra", []uint32{1, 2, 3, 4, 9, 5}, 0, nil, []uint32{5, 9}, nil},
		{"stale", []uint32{4, 3, 2, 1}, 3, nil, nil, []uint32{3}},
		{"all three", []uint32{2, 7, 3}, 2, []uint32{1, 4}, []uint32{7}, []uint32{2}},
		{"none addressed", nil, 0, []uint32{1, 2, 3, 4}, nil, nil},
	}
	for _, c := range cases {
		snd := send(1, alice, bob, c.devs...)
		for i := range snd.Envelopes {
			if snd.Envelopes[i].DeviceID == c.staleDev {
				snd.Envelopes[i].RegistrationID++
			}
		}
		_, err := s.Deliver(ctx(t), snd)
		var mm *store.DeviceMismatchError
		if !errors.As(err, &mm) {
			t.Fatalf("%s: Deliver error %v, want *DeviceMismatchError", c.name, err)
		}
		if !slices.Equal(mm.Missing, c.missing) || !slices.Equal(mm.Extra, c.extra) || !slices.Equal(mm.Stale, c.stale) {
			t.Fatalf("%s: mismatch %+v, want missing %v extra %v stale %v", c.name, mm, c.missing, c.extra, c.stale)
		}
		for dev := uint32(1); dev <= 4; dev++ {
			if n := depth(t, s, bob, dev); n != 0 {
				t.Fatalf("%s: device %d has %d envelopes after a rejected send", c.name, dev, n)
			}
		}
	}
	// Nothing was remembered either: the same message id is accepted.
	if r := deliver(t, s, send(1, alice, bob, 1, 2, 3, 4)); r.Duplicate || len(r.Seqs) != 4 {
		t.Fatalf("send after mismatches = %+v, want stored", r)
	}
}

func testExcludeDevice(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	addDevices(t, s, alice, 3, 0)
	// A sync message from device 1 to its own other devices.
	snd := send(1, alice, alice, 2, 3)
	snd.ExcludeDevice = 1
	deliver(t, s, snd)
	if depth(t, s, alice, 1) != 0 || depth(t, s, alice, 2) != 1 || depth(t, s, alice, 3) != 1 {
		t.Fatal("sync message not queued on exactly devices 2 and 3")
	}
	snd = send(2, alice, alice, 1, 2, 3)
	snd.ExcludeDevice = 1
	_, err := s.Deliver(ctx(t), snd)
	var mm *store.DeviceMismatchError
	if !errors.As(err, &mm) || !slices.Equal(mm.Extra, []uint32{1}) || mm.Missing != nil || mm.Stale != nil {
		t.Fatalf("addressing the excluded device: %v, want Extra [1]", err)
	}
}

func testDeliverErrors(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	_, err := s.Deliver(ctx(t), send(1, alice, ID(9), 1))
	wantErr(t, "Deliver(unknown recipient)", err, store.ErrNotFound)

	snd := send(2, ID(9), alice, 1)
	snd.Envelopes[0].Content = nil
	_, err = s.Deliver(ctx(t), snd)
	wantErr(t, "Deliver(nil content)", err, store.ErrInvalid)
	snd = send(2, ID(9), alice, 1, 1)
	_, err = s.Deliver(ctx(t), snd)
	wantErr(t, "Deliver(device twice)", err, store.ErrInvalid)
	if n := depth(t, s, alice, 1); n != 0 {
		t.Fatalf("depth %d after rejected sends", n)
	}
	_, err = s.Pending(ctx(t), alice, 1, 0, 0)
	wantErr(t, "Pending(limit 0)", err, store.ErrInvalid)
}

func testDuplicate(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	carol := mkAccount(t, s, 3, 0)
	first := deliver(t, s, send(1, alice, bob, 1))
	again := func(what string) {
		t.Helper()
		r := deliver(t, s, send(1, alice, bob, 1))
		if !r.Duplicate || r.Seqs != nil {
			t.Fatalf("%s: repeat = %+v, want Duplicate and no seqs", what, r)
		}
	}
	again("while queued")
	if n := depth(t, s, bob, 1); n != 1 {
		t.Fatalf("depth after repeat = %d, want 1", n)
	}
	// The same id to another recipient is a different message.
	if r := deliver(t, s, send(1, alice, carol, 1)); r.Duplicate {
		t.Fatal("same message id to another recipient reported duplicate")
	}
	if err := s.Ack(ctx(t), bob, 1, first.Seqs[0]); err != nil {
		t.Fatal(err)
	}
	again("after ack")
	// Within the window (the record is younger than the cutoff).
	if _, err := s.Sweep(ctx(t), Epoch.Add(-time.Hour), Epoch.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	again("after a sweep within the window")
	// A repeat after the recipient's device list changed is still a
	// duplicate, not a mismatch.
	addDevices(t, s, bob, 2, 0)
	again("after a device was added")
	if n := depth(t, s, bob, 1) + depth(t, s, bob, 2); n != 0 {
		t.Fatalf("repeats stored %d envelopes", n)
	}
}

func testDuplicateAfterReopen(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	r1 := deliver(t, s, send(1, alice, bob, 1))
	r2 := deliver(t, s, send(2, alice, bob, 1))
	if err := s.Ack(ctx(t), bob, 1, r1.Seqs[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t)
	envs := pending(t, s, bob, 1)
	if len(envs) != 1 || envs[0].Seq != r2.Seqs[0] || !bytes.Equal(envs[0].Content, content(2, 1)) {
		t.Fatalf("after reopen pending = %+v, want message 2 only", envs)
	}
	for _, m := range []int{1, 2} {
		if r := deliver(t, s, send(m, alice, bob, 1)); !r.Duplicate {
			t.Fatalf("message %d after reopen: %+v, want Duplicate", m, r)
		}
	}
	if _, err := s.AccountByUsername(ctx(t), "user1"); err != nil {
		t.Fatalf("account lost on reopen: %v", err)
	}
}

func testDedupWindow(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	r := deliver(t, s, send(1, alice, bob, 1))
	deliver(t, s, send(2, alice, bob, 1))
	// The dedup window has passed, but message 1 is still queued: still a
	// duplicate.
	if _, err := s.Sweep(ctx(t), Epoch.Add(-time.Hour), Epoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if res := deliver(t, s, send(1, alice, bob, 1)); !res.Duplicate {
		t.Fatal("a queued message was accepted again after its dedup record expired")
	}
	// Delivered, then past both cutoffs: the id is forgotten, and
	// accepted.
	if err := s.Ack(ctx(t), bob, 1, r.Seqs[0]); err != nil {
		t.Fatal(err)
	}
	if res := deliver(t, s, send(1, alice, bob, 1)); !res.Duplicate {
		t.Fatal("a delivered message id was forgotten before the envelope cutoff passed it")
	}
	if _, err := s.Sweep(ctx(t), Epoch.Add(time.Hour), Epoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if res := deliver(t, s, send(1, alice, bob, 1)); res.Duplicate {
		t.Fatal("a message id past the dedup window and delivered was still remembered")
	}
}

func testQueueFull(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	addDevices(t, s, bob, 2, 0)
	bounded := func(msg int, devs ...uint32) store.Send {
		snd := send(msg, alice, bob, devs...)
		snd.MaxQueue = 2
		return snd
	}
	// Fill device 2 only (device 1 acks as it goes).
	for m := 1; m <= 2; m++ {
		r := deliver(t, s, bounded(m, 1, 2))
		if err := s.Ack(ctx(t), bob, 1, r.Seqs[0]); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Deliver(ctx(t), bounded(3, 1, 2))
	wantErr(t, "Deliver to a full queue", err, store.ErrQueueFull)
	if depth(t, s, bob, 1) != 0 || depth(t, s, bob, 2) != 2 {
		t.Fatalf("a rejected send stored something: depths %d %d", depth(t, s, bob, 1), depth(t, s, bob, 2))
	}
	// Unbounded still works, and after device 2 drains, message 3 is not
	// a duplicate (the rejected attempt left no record).
	envs := pending(t, s, bob, 2)
	for _, e := range envs {
		if err := s.Ack(ctx(t), bob, 2, e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if r := deliver(t, s, bounded(3, 1, 2)); r.Duplicate {
		t.Fatal("message rejected for a full queue was remembered as sent")
	}

	// The bound counts envelopes, not the span of their seqs: a queue
	// with a hole in the middle has room.
	one := func(msg int) store.Send {
		snd := send(msg, alice, bob, 1, 2)
		snd.MaxQueue = 3
		return snd
	}
	for _, e := range pending(t, s, bob, 2) {
		if err := s.Ack(ctx(t), bob, 2, e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	var d1 []int64
	for _, e := range pending(t, s, bob, 1) {
		d1 = append(d1, e.Seq)
	}
	for m := 10; len(d1) < 3; m++ {
		d1 = append(d1, deliver(t, s, one(m)).Seqs[0])
	}
	for _, e := range pending(t, s, bob, 2) {
		if err := s.Ack(ctx(t), bob, 2, e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	// Device 1 is full (3); ack its middle envelope: span 3, count 2.
	if err := s.Ack(ctx(t), bob, 1, d1[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx(t), one(20)); err != nil {
		t.Fatalf("send to a queue with a hole below the bound: %v", err)
	}
	_, err = s.Deliver(ctx(t), one(21))
	wantErr(t, "send to a queue full again", err, store.ErrQueueFull)
}

func testPendingPaging(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	var all []int64
	for m := 1; m <= 10; m++ {
		all = append(all, deliver(t, s, send(m, alice, bob, 1)).Seqs[0])
	}
	if !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != 10 {
		t.Fatalf("seqs %v not strictly increasing", all)
	}
	var got []int64
	after := int64(0)
	for {
		page, err := s.Pending(ctx(t), bob, 1, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("page of %d > limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if !bytes.Equal(e.Content, content(len(got)+1, 1)) {
				t.Fatalf("envelope %d content %q", len(got)+1, e.Content)
			}
			got = append(got, e.Seq)
		}
		after = page[len(page)-1].Seq
	}
	if !slices.Equal(got, all) {
		t.Fatalf("paged seqs %v, want %v", got, all)
	}
	// Acking from the middle does not disturb order.
	if err := s.Ack(ctx(t), bob, 1, all[4]); err != nil {
		t.Fatal(err)
	}
	page, err := s.Pending(ctx(t), bob, 1, all[2], 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{all[3], all[5], all[6]}; !slices.Equal(seqs(page), want) {
		t.Fatalf("page after an ack = %v, want %v", seqs(page), want)
	}
	if envs, err := s.Pending(ctx(t), bob, 2, 0, 10); err != nil || len(envs) != 0 {
		t.Fatalf("Pending(unknown device) = %v, %v; want empty", envs, err)
	}
}

func testAckScoped(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	addDevices(t, s, bob, 2, 0)
	r := deliver(t, s, send(1, alice, bob, 1, 2))
	// Same seq numbers exist on both devices and on alice's side.
	deliver(t, s, send(2, bob, alice, 1))
	seq := r.Seqs[0]
	if err := s.Ack(ctx(t), bob, 2, seq+100); err != nil {
		t.Fatalf("Ack of an unknown seq: %v", err)
	}
	if err := s.Ack(ctx(t), alice, 1, seq); err != nil {
		t.Fatal(err)
	}
	if depth(t, s, bob, 1) != 1 || depth(t, s, bob, 2) != 1 {
		t.Fatal("another account's ack deleted bob's envelope")
	}
	if err := s.Ack(ctx(t), bob, 2, r.Seqs[1]); err != nil {
		t.Fatal(err)
	}
	if depth(t, s, bob, 1) != 1 {
		t.Fatal("device 2's ack deleted device 1's envelope")
	}
	for range 2 {
		if err := s.Ack(ctx(t), bob, 1, seq); err != nil {
			t.Fatalf("Ack (repeated): %v", err)
		}
	}
	if depth(t, s, bob, 1) != 0 || depth(t, s, bob, 2) != 0 || depth(t, s, alice, 1) != 0 {
		t.Fatal("acks left envelopes behind")
	}
}

func testAckBatch(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ba, ok := s.(store.BatchAcker)
	if !ok {
		t.Skip("store does not implement store.BatchAcker")
	}
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	addDevices(t, s, bob, 2, 0)
	var d1, d2 []int64
	for m := 1; m <= 5; m++ {
		r := deliver(t, s, send(m, alice, bob, 1, 2))
		d1, d2 = append(d1, r.Seqs[0]), append(d2, r.Seqs[1])
	}
	// Device 1 acks three of its envelopes and a seq it never had.
	if err := ba.AckBatch(ctx(t), bob, 1, []int64{d1[0], d1[2], d1[4], d1[4] + 1000}); err != nil {
		t.Fatal(err)
	}
	if got := seqs(pending(t, s, bob, 1)); !slices.Equal(got, []int64{d1[1], d1[3]}) {
		t.Fatalf("after AckBatch device 1 has %v, want %v", got, []int64{d1[1], d1[3]})
	}
	if n := depth(t, s, bob, 2); n != 5 {
		t.Fatalf("device 1's AckBatch changed device 2's queue: depth %d", n)
	}
	if err := ba.AckBatch(ctx(t), alice, 1, d2); err != nil {
		t.Fatal(err)
	}
	if n := depth(t, s, bob, 2); n != 5 {
		t.Fatalf("another account's AckBatch deleted bob's envelopes: depth %d", n)
	}
	if err := ba.AckBatch(ctx(t), bob, 2, append(d2, d2...)); err != nil {
		t.Fatal(err)
	}
	if err := ba.AckBatch(ctx(t), bob, 2, nil); err != nil {
		t.Fatal(err)
	}
	if n := depth(t, s, bob, 2); n != 0 {
		t.Fatalf("device 2 depth %d after acking all", n)
	}
}

func testSeqNeverGoesBack(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	var last int64
	for m := 1; m <= 3; m++ {
		r := deliver(t, s, send(m, alice, bob, 1))
		if err := s.Ack(ctx(t), bob, 1, r.Seqs[0]); err != nil {
			t.Fatal(err)
		}
		last = r.Seqs[0]
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t)
	r := deliver(t, s, send(4, alice, bob, 1))
	if r.Seqs[0] <= last {
		t.Fatalf("seq after drain and reopen = %d, not above %d", r.Seqs[0], last)
	}
}

func testConcurrentDeliver(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	addDevices(t, s, bob, 2, 0)
	const senders, each = 10, 10
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Deliver(context.Background(), send(g*each+i+1, alice, bob, 1, 2)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, dev := range []uint32{1, 2} {
		envs := pending(t, s, bob, dev)
		if len(envs) != senders*each {
			t.Fatalf("device %d has %d envelopes, want %d", dev, len(envs), senders*each)
		}
		sq := seqs(envs)
		if !slices.IsSorted(sq) || len(slices.Compact(sq)) != senders*each {
			t.Fatalf("device %d seqs not unique and ordered", dev)
		}
	}
}

func testConcurrentDuplicate(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := 0
	for range n {
		wg.Go(func() {
			r, err := s.Deliver(context.Background(), send(1, alice, bob, 1))
			if err != nil {
				t.Error(err)
				return
			}
			if !r.Duplicate {
				mu.Lock()
				stored++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if stored != 1 || depth(t, s, bob, 1) != 1 {
		t.Fatalf("%d concurrent sends of one message: %d stored, depth %d; want 1", n, stored, depth(t, s, bob, 1))
	}
}

// testPendingNeverSkips reads a queue the way the delivery loop does,
// paging with "after the last seq seen" while senders write: a smaller seq
// committed after a larger one was read would be skipped forever.
func testPendingNeverSkips(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Deliver(context.Background(), send(g*each+i+1, alice, bob, 1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[[16]byte]bool{}
	after := int64(0)
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		page, err := s.Pending(ctx(t), bob, 1, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.Seq <= after || seen[e.MessageID] {
				t.Fatalf("envelope seq %d (after %d) seen twice or out of order", e.Seq, after)
			}
			seen[e.MessageID] = true
			after = e.Seq
			if err := s.Ack(ctx(t), bob, 1, e.Seq); err != nil {
				t.Fatal(err)
			}
		}
		if finished && len(page) == 0 {
			break
		}
	}
	if len(seen) != writers*each {
		t.Fatalf("reader paging by seq got %d of %d envelopes: a smaller seq committed after a larger one was read", len(seen), writers*each)
	}
	if n := depth(t, s, bob, 1); n != 0 {
		t.Fatalf("%d envelopes left behind the reader", n)
	}
}

func testSweep(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	alice := mkAccount(t, s, 1, 0)
	bob := mkAccount(t, s, 2, 0)
	old := send(1, alice, bob, 1)
	old.Now = Epoch.Add(-40 * 24 * time.Hour)
	deliver(t, s, old)
	old2 := send(2, alice, bob, 1)
	old2.Now = Epoch.Add(-31 * 24 * time.Hour)
	deliver(t, s, old2)
	deliver(t, s, send(3, alice, bob, 1))
	n, err := s.Sweep(ctx(t), Epoch.Add(-30*24*time.Hour), Epoch.Add(-60*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	envs := pending(t, s, bob, 1)
	if n != 2 || len(envs) != 1 || envs[0].MessageID != MsgID(3) {
		t.Fatalf("Sweep deleted %d, left %d envelopes; want 2 deleted and message 3 left", n, len(envs))
	}
	if n, err := s.Sweep(ctx(t), Epoch.Add(-30*24*time.Hour), Epoch.Add(-60*24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v", n, err)
	}
	// Expired but not past the dedup window: still a duplicate.
	if r := deliver(t, s, send(1, alice, bob, 1)); !r.Duplicate {
		t.Fatal("an expired message id was forgotten before its dedup window")
	}
	// The clock stepped back: an old envelope stored after a current
	// one. It may wait for the current one, but the current one stays.
	back := send(4, alice, bob, 1)
	back.Now = Epoch.Add(-40 * 24 * time.Hour)
	deliver(t, s, back)
	if _, err := s.Sweep(ctx(t), Epoch.Add(-30*24*time.Hour), Epoch.Add(-60*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	envs = pending(t, s, bob, 1)
	if len(envs) == 0 || envs[0].MessageID != MsgID(3) {
		t.Fatalf("after a sweep with the clock stepped back: %d envelopes left, want message 3 first", len(envs))
	}
}

// BucketStep is one spend of TokenSequence: at Epoch+At, the answer
// every token bucket must give.
type BucketStep struct {
	At    time.Duration
	OK    bool
	Retry time.Duration
}

// TokenBurst and TokenInterval are the bucket TokenSequence spends from.
const (
	TokenBurst    = 3
	TokenInterval = 10 * time.Second
)

// TokenSequence spends from one bucket (burst 3, a token every 10 s): the
// burst, refusals with the exact wait, one token regained, and after a
// long pause burst tokens again, never more. Store.TakeToken and the
// server's in-memory buckets both answer it.
var TokenSequence = []BucketStep{
	{0, true, 0},
	{0, true, 0},
	{time.Second, true, 0},
	{time.Second, false, 9 * time.Second},
	{4 * time.Second, false, 6 * time.Second},
	{10 * time.Second, true, 0}, // one token regained
	{10 * time.Second, false, 10 * time.Second},
	{time.Hour, true, 0},
	{time.Hour + 1, true, 0},
	{time.Hour + 2, true, 0},
	{time.Hour + time.Second, false, 9 * time.Second},
}

func testTakeToken(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	key := []byte("bucket-a")
	const burst, iv = TokenBurst, TokenInterval
	for _, st := range TokenSequence {
		ok, retry, err := s.TakeToken(ctx(t), key, burst, iv, Epoch.Add(st.At))
		if err != nil {
			t.Fatal(err)
		}
		if ok != st.OK || retry != st.Retry {
			t.Fatalf("TakeToken at +%v = %v, %v; want %v, %v", st.At, ok, retry, st.OK, st.Retry)
		}
		if st.At == 10*time.Second && !ok {
			// Another key is independent.
			if ok, _, err := s.TakeToken(ctx(t), []byte("bucket-b"), burst, iv, Epoch); err != nil || !ok {
				t.Fatalf("independent bucket: %v, %v", ok, err)
			}
		}
	}
	_, _, err := s.TakeToken(ctx(t), key, 0, iv, Epoch)
	wantErr(t, "TakeToken(burst 0)", err, store.ErrInvalid)
	_, _, err = s.TakeToken(ctx(t), key, 1, 0, Epoch)
	wantErr(t, "TakeToken(interval 0)", err, store.ErrInvalid)
}

func testTakeTokenSweep(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	key := []byte{0, 1, 2, 0xff}
	for range 2 {
		if ok, _, err := s.TakeToken(ctx(t), key, 2, time.Minute, Epoch); err != nil || !ok {
			t.Fatalf("TakeToken = %v, %v", ok, err)
		}
	}
	// The bucket is full again only at Epoch+2m: a sweep with an earlier
	// cutoff must keep it.
	if _, err := s.Sweep(ctx(t), Epoch.Add(-time.Hour), Epoch.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, retry, err := s.TakeToken(ctx(t), key, 2, time.Minute, Epoch); err != nil || ok || retry != time.Minute {
		t.Fatalf("after sweep: TakeToken = %v, %v, %v; want refused for 1m", ok, retry, err)
	}
	// Past its refill a bucket may be dropped; it behaves as full.
	if _, err := s.Sweep(ctx(t), Epoch.Add(-time.Hour), Epoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if ok, _, err := s.TakeToken(ctx(t), key, 2, time.Minute, Epoch.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("take %d after refill: %v, %v", i, ok, err)
		}
	}
}

func testPing(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func testClosed(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	acc := mkAccount(t, s, 1, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	calls := map[string]func() error{
		"CreateAccount": func() error {
			_, err := s.CreateAccount(c, store.NewAccount{ID: ID(2), Username: "b", IdentityKey: []byte("k"), CredentialHash: []byte("h"), PreKeys: Upload(1, 1, 0), Now: Epoch})
			return err
		},
		"Account":           func() error { _, err := s.Account(c, acc); return err },
		"AccountByUsername": func() error { _, err := s.AccountByUsername(c, "user1"); return err },
		"Device":            func() error { _, err := s.Device(c, acc, 1); return err },
		"Devices":           func() error { _, err := s.Devices(c, acc); return err },
		"TouchDevice":       func() error { return s.TouchDevice(c, acc, 1, Epoch.Add(72*time.Hour)) },
		"AddDevice": func() error {
			_, err := s.AddDevice(c, acc, store.NewDevice{CredentialHash: []byte("h"), PreKeys: Upload(2, 1, 0), Now: Epoch}, 0)
			return err
		},
		"RemoveDevice": func() error { return s.RemoveDevice(c, acc, 1) },
		"StorePreKeys": func() error { return s.StorePreKeys(c, acc, 1, Upload(1, 5, 1)) },
		"PreKeyCounts": func() error { _, err := s.PreKeyCounts(c, acc, 1); return err },
		"TakeBundles":  func() error { _, err := s.TakeBundles(c, acc, 0); return err },
		"Deliver":      func() error { _, err := s.Deliver(c, send(1, acc, acc, 1)); return err },
		"Pending":      func() error { _, err := s.Pending(c, acc, 1, 0, 10); return err },
		"Ack":          func() error { return s.Ack(c, acc, 1, 1) },
		"QueueDepth":   func() error { _, err := s.QueueDepth(c, acc, 1); return err },
		"Sweep":        func() error { _, err := s.Sweep(c, Epoch, Epoch); return err },
		"TakeToken":    func() error { _, _, err := s.TakeToken(c, []byte("k"), 1, time.Second, Epoch); return err },
		"Ping":         func() error { return s.Ping(c) },
	}
	for name, call := range calls {
		wantErr(t, name+" after Close", call(), store.ErrClosed)
	}
	// Nothing above reached the database.
	s = open(t)
	if c := counts(t, s, acc, 1); c != (store.PreKeyCounts{EC: 1, KEM: 1}) {
		t.Fatalf("counts after reopen = %+v", c)
	}
	if devs, err := s.Devices(ctx(t), acc); err != nil || len(devs) != 1 {
		t.Fatalf("devices after reopen = %v, %v", devs, err)
	}
}
