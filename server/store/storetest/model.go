package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/veil-e2ee/veil/server/store"
)

// testModel drives random sequences of device, prekey and mailbox
// operations against the store and against a plain in-memory model of
// the contract, and compares every answer. Each check uses fresh
// accounts in the one store, so checks do not see each other.
func testModel(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		m := newModel(rt, s, n)
		rt.Repeat(map[string]func(*rapid.T){
			"AddDevice":    m.addDevice,
			"RemoveDevice": m.removeDevice,
			"Upload":       m.upload,
			"TakeBundles":  m.takeBundles,
			"Deliver":      m.deliver,
			"Pending":      m.pending,
			"Ack":          m.ack,
			"":             m.check,
		})
	})
}

const (
	modelMaxDevices = 4
	modelMaxQueue   = 3
)

type modelEnv struct {
	seq       int64
	messageID [16]byte
	content   []byte
}

type modelDevice struct {
	reg     uint32
	lastSeq int64
	ec, kem []uint32 // one-time key ids, in hand-out order
	nextKey uint32
	queue   []modelEnv
}

type model struct {
	s        store.Store
	ctx      context.Context
	sender   store.AccountID
	acc      store.AccountID
	devices  map[uint32]*modelDevice
	nextDev  uint32
	accepted map[[16]byte]bool
	nextMsg  int
}

func newModel(rt *rapid.T, s store.Store, n int) *model {
	m := &model{s: s, ctx: context.Background(), devices: map[uint32]*modelDevice{}, nextDev: 2, accepted: map[[16]byte]bool{}}
	m.acc = modelID(n, 1)
	m.sender = modelID(n, 2)
	for _, id := range []store.AccountID{m.sender, m.acc} {
		if _, err := s.CreateAccount(m.ctx, store.NewAccount{ID: id, Username: fmt.Sprintf("model-%x", id[:]), IdentityKey: []byte("ik"),
			RegistrationID: 1, CredentialHash: []byte("h"), PreKeys: Upload(1, 1, 0), Now: Epoch}); err != nil {
			rt.Fatalf("CreateAccount: %v", err)
		}
	}
	m.devices[1] = &modelDevice{reg: 1, nextKey: 1}
	return m
}

func modelID(n, k int) store.AccountID {
	var a store.AccountID
	copy(a[:], "model")
	a[10], a[11], a[12], a[15] = byte(n>>16), byte(n>>8), byte(n), byte(k)
	return a
}

func (m *model) deviceIDs() []uint32 {
	var ids []uint32
	for id := range m.devices {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m *model) pickDevice(rt *rapid.T) uint32 {
	ids := m.deviceIDs()
	if len(ids) == 0 {
		rt.Skip("no devices")
	}
	return rapid.SampledFrom(ids).Draw(rt, "device")
}

func (m *model) addDevice(rt *rapid.T) {
	reg := rapid.Uint32Range(1, 5).Draw(rt, "reg")
	d, err := m.s.AddDevice(m.ctx, m.acc, store.NewDevice{RegistrationID: reg, CredentialHash: []byte("h"), PreKeys: Upload(1, 1, 0), Now: Epoch}, modelMaxDevices)
	if len(m.devices) >= modelMaxDevices {
		if !errors.Is(err, store.ErrDeviceLimit) {
			rt.Fatalf("AddDevice at the limit: %v", err)
		}
		return
	}
	if err != nil || d.DeviceID != m.nextDev {
		rt.Fatalf("AddDevice = %d, %v; want id %d", d.DeviceID, err, m.nextDev)
	}
	m.devices[d.DeviceID] = &modelDevice{reg: reg, nextKey: 1}
	m.nextDev++
}

func (m *model) removeDevice(rt *rapid.T) {
	id := m.pickDevice(rt)
	if err := m.s.RemoveDevice(m.ctx, m.acc, id); err != nil {
		rt.Fatalf("RemoveDevice(%d): %v", id, err)
	}
	delete(m.devices, id)
}

func (m *model) upload(rt *rapid.T) {
	id := m.pickDevice(rt)
	d := m.devices[id]
	nEC := rapid.IntRange(0, 3).Draw(rt, "ec")
	nKEM := rapid.IntRange(0, 3).Draw(rt, "kem")
	var up store.PreKeyUpload
	for range nEC {
		up.OneTimeEC = append(up.OneTimeEC, store.PreKey{KeyID: d.nextKey, PublicKey: keyBytes("ec", id, d.nextKey)})
		d.ec = append(d.ec, d.nextKey)
		d.nextKey++
	}
	for range nKEM {
		up.OneTimeKEM = append(up.OneTimeKEM, *signed("kem", id, d.nextKey))
		d.kem = append(d.kem, d.nextKey)
		d.nextKey++
	}
	if err := m.s.StorePreKeys(m.ctx, m.acc, id, up); err != nil {
		rt.Fatalf("StorePreKeys: %v", err)
	}
}

func (m *model) takeBundles(rt *rapid.T) {
	var only uint32
	if rapid.Bool().Draw(rt, "one device") {
		only = m.pickDevice(rt)
	}
	bs, err := m.s.TakeBundles(m.ctx, m.acc, only)
	if err != nil {
		rt.Fatalf("TakeBundles: %v", err)
	}
	want := m.deviceIDs()
	if only != 0 {
		want = []uint32{only}
	}
	if len(bs) != len(want) {
		rt.Fatalf("TakeBundles returned %d bundles, want %d", len(bs), len(want))
	}
	for i, b := range bs {
		d := m.devices[want[i]]
		if b.DeviceID != want[i] || b.RegistrationID != d.reg {
			rt.Fatalf("bundle %d is device %d reg %d; want %d reg %d", i, b.DeviceID, b.RegistrationID, want[i], d.reg)
		}
		if len(d.ec) == 0 {
			if b.PreKey != nil {
				rt.Fatalf("device %d: EC key %d handed out, model has none", b.DeviceID, b.PreKey.KeyID)
			}
		} else {
			if b.PreKey == nil || b.PreKey.KeyID != d.ec[0] {
				rt.Fatalf("device %d: EC key %+v, want %d", b.DeviceID, b.PreKey, d.ec[0])
			}
			d.ec = d.ec[1:]
		}
		if len(d.kem) == 0 {
			if !b.KEMIsLastResort {
				rt.Fatalf("device %d: one-time KEM %d handed out, model has none", b.DeviceID, b.KEM.KeyID)
			}
		} else {
			if b.KEMIsLastResort || b.KEM.KeyID != d.kem[0] {
				rt.Fatalf("device %d: KEM %d (last resort %v), want %d", b.DeviceID, b.KEM.KeyID, b.KEMIsLastResort, d.kem[0])
			}
			d.kem = d.kem[1:]
		}
	}
}

func (m *model) deliver(rt *rapid.T) {
	// Mostly new messages, sometimes a repeat.
	msg := m.nextMsg
	if m.nextMsg > 0 && rapid.IntRange(0, 4).Draw(rt, "repeat") == 0 {
		msg = rapid.IntRange(0, m.nextMsg-1).Draw(rt, "repeated")
	} else {
		m.nextMsg++
	}
	mid := MsgID(msg)
	ids := m.deviceIDs()
	// Address the current devices, then maybe perturb: drop one, add a
	// bogus one, make one stale.
	addr := map[uint32]uint32{}
	for _, id := range ids {
		addr[id] = m.devices[id].reg
	}
	if len(ids) > 0 && rapid.IntRange(0, 5).Draw(rt, "drop") == 0 {
		delete(addr, rapid.SampledFrom(ids).Draw(rt, "dropped"))
	}
	if rapid.IntRange(0, 5).Draw(rt, "extra") == 0 {
		addr[m.nextDev+uint32(rapid.IntRange(0, 2).Draw(rt, "bogus"))] = 1
	}
	if len(ids) > 0 && rapid.IntRange(0, 5).Draw(rt, "stale") == 0 {
		id := rapid.SampledFrom(ids).Draw(rt, "staled")
		if _, ok := addr[id]; ok {
			addr[id] += 100
		}
	}
	var order []uint32
	for id := range addr {
		order = append(order, id)
	}
	slices.Sort(order)
	order = rapid.Permutation(order).Draw(rt, "order")
	snd := store.Send{MessageID: mid, Recipient: m.acc, Sender: m.sender, SenderDevice: 1, Now: Epoch, MaxQueue: modelMaxQueue}
	for _, id := range order {
		snd.Envelopes = append(snd.Envelopes, store.OutgoingEnvelope{DeviceID: id, RegistrationID: addr[id], Type: 1, Content: content(msg, id)})
	}
	res, err := m.s.Deliver(m.ctx, snd)

	// The model's answer, in the contract's order of checks.
	if m.accepted[mid] {
		if err != nil || !res.Duplicate {
			rt.Fatalf("repeat of message %d: %+v, %v; want Duplicate", msg, res, err)
		}
		return
	}
	var missing, extra, stale []uint32
	for _, id := range ids {
		if r, ok := addr[id]; !ok {
			missing = append(missing, id)
		} else if r != m.devices[id].reg {
			stale = append(stale, id)
		}
	}
	for _, id := range order {
		if _, ok := m.devices[id]; !ok {
			extra = append(extra, id)
		}
	}
	slices.Sort(extra)
	if missing != nil || extra != nil || stale != nil {
		var mm *store.DeviceMismatchError
		if !errors.As(err, &mm) || !slices.Equal(mm.Missing, missing) || !slices.Equal(mm.Extra, extra) || !slices.Equal(mm.Stale, stale) {
			rt.Fatalf("Deliver = %v; want mismatch missing %v extra %v stale %v", err, missing, extra, stale)
		}
		return
	}
	for _, id := range order {
		if len(m.devices[id].queue) >= modelMaxQueue {
			if !errors.Is(err, store.ErrQueueFull) {
				rt.Fatalf("Deliver to a full queue = %+v, %v; want ErrQueueFull", res, err)
			}
			return
		}
	}
	if err != nil || res.Duplicate || len(res.Seqs) != len(order) {
		rt.Fatalf("Deliver = %+v, %v; want %d new seqs", res, err, len(order))
	}
	m.accepted[mid] = true
	for i, id := range order {
		d := m.devices[id]
		if res.Seqs[i] <= d.lastSeq {
			rt.Fatalf("device %d: seq %d after %d", id, res.Seqs[i], d.lastSeq)
		}
		d.lastSeq = res.Seqs[i]
		d.queue = append(d.queue, modelEnv{seq: res.Seqs[i], messageID: mid, content: content(msg, id)})
	}
}

func (m *model) pending(rt *rapid.T) {
	id := m.pickDevice(rt)
	d := m.devices[id]
	var after int64
	if len(d.queue) > 0 && rapid.Bool().Draw(rt, "after") {
		after = rapid.SampledFrom(d.queue).Draw(rt, "after seq").seq
	}
	limit := rapid.IntRange(1, 4).Draw(rt, "limit")
	envs, err := m.s.Pending(m.ctx, m.acc, id, after, limit)
	if err != nil {
		rt.Fatal(err)
	}
	var want []modelEnv
	for _, e := range d.queue {
		if e.seq > after && len(want) < limit {
			want = append(want, e)
		}
	}
	if len(envs) != len(want) {
		rt.Fatalf("Pending(after %d, limit %d) = %d envelopes, want %d", after, limit, len(envs), len(want))
	}
	for i, e := range envs {
		w := want[i]
		if e.Seq != w.seq || e.MessageID != w.messageID || string(e.Content) != string(w.content) || e.Sender != m.sender {
			rt.Fatalf("Pending[%d] = seq %d msg %x; want seq %d msg %x", i, e.Seq, e.MessageID, w.seq, w.messageID)
		}
	}
}

func (m *model) ack(rt *rapid.T) {
	id := m.pickDevice(rt)
	d := m.devices[id]
	seq := d.lastSeq + 1 // unknown unless we pick a queued one
	if len(d.queue) > 0 && rapid.IntRange(0, 4).Draw(rt, "ack unknown") != 0 {
		seq = rapid.SampledFrom(d.queue).Draw(rt, "acked").seq
	}
	if err := m.s.Ack(m.ctx, m.acc, id, seq); err != nil {
		rt.Fatalf("Ack: %v", err)
	}
	d.queue = slices.DeleteFunc(d.queue, func(e modelEnv) bool { return e.seq == seq })
}

// check compares counts and depths after every step.
func (m *model) check(rt *rapid.T) {
	devs, err := m.s.Devices(m.ctx, m.acc)
	if err != nil {
		rt.Fatal(err)
	}
	var ids []uint32
	for _, d := range devs {
		ids = append(ids, d.DeviceID)
	}
	if !slices.Equal(ids, m.deviceIDs()) {
		rt.Fatalf("Devices = %v, model %v", ids, m.deviceIDs())
	}
	for _, id := range ids {
		d := m.devices[id]
		c, err := m.s.PreKeyCounts(m.ctx, m.acc, id)
		if err != nil || c.EC != len(d.ec) || c.KEM != len(d.kem) {
			rt.Fatalf("device %d PreKeyCounts = %+v, %v; model EC %d KEM %d", id, c, err, len(d.ec), len(d.kem))
		}
		n, err := m.s.QueueDepth(m.ctx, m.acc, id)
		if err != nil || n != len(d.queue) {
			rt.Fatalf("device %d QueueDepth = %d, %v; model %d", id, n, err, len(d.queue))
		}
	}
}
