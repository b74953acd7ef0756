package protocol_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/veil-e2ee/veil/protocol"
	"github.com/veil-e2ee/veil/protocol/internal/senderkey"
)

// skMember is one device taking part in a group: its address, its
// sender-key store and a GroupCipher over it.
type skMember struct {
	addr   protocol.Address
	store  *protocol.InMemorySenderKeyStore
	cipher *protocol.GroupCipher
}

func newSKMember(name string) *skMember {
	st := protocol.NewInMemorySenderKeyStore()
	return &skMember{
		addr:   protocol.Address{Name: name, DeviceID: 1},
		store:  st,
		cipher: protocol.NewGroupCipher(st, rand.Reader),
	}
}

// record returns the stored form of m's record for (sender, id), or nil.
func (m *skMember) record(t testing.TB, sender protocol.Address, id protocol.DistributionID) []byte {
	t.Helper()
	r, err := m.store.LoadSenderKey(context.Background(), sender, id)
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		return nil
	}
	return r.Marshal()
}

func newSKDistributionID(t testing.TB) protocol.DistributionID {
	t.Helper()
	var id protocol.DistributionID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	id[6] = id[6]&0x0F | 0x40
	id[8] = id[8]&0x3F | 0x80
	return id
}

// distribute gives members the sender's current distribution message.
func skDistribute(t testing.TB, sender *skMember, id protocol.DistributionID, members ...*skMember) []byte {
	t.Helper()
	ctx := context.Background()
	skdm, err := sender.cipher.NewDistribution(ctx, sender.addr, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		got, err := m.cipher.ProcessDistribution(ctx, sender.addr, skdm)
		if err != nil {
			t.Fatal(err)
		}
		if got != id {
			t.Fatalf("ProcessDistribution returned %s, want %s", got, id)
		}
	}
	return skdm
}

func skEncrypt(t testing.TB, sender *skMember, id protocol.DistributionID, pts ...string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, pt := range pts {
		m, err := sender.cipher.Encrypt(context.Background(), sender.addr, id, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestGroupOutOfOrderAndDuplicates(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newSKMember("alice"), newSKMember("bob"), newSKMember("carol")
	id := newSKDistributionID(t)
	skDistribute(t, alice, id, bob, carol)

	var pts []string
	for i := range 40 {
		pts = append(pts, fmt.Sprintf("message %d %s", i, bytes.Repeat([]byte{'x'}, i)))
	}
	msgs := skEncrypt(t, alice, id, pts...)
	for i, m := range msgs {
		if m[0] != 0x33 {
			t.Fatalf("message %d starts %#x, want 0x33", i, m[0])
		}
		if got, err := protocol.DistributionIDOf(m); err != nil || got != id {
			t.Fatalf("DistributionIDOf = %s, %v; want %s", got, err, id)
		}
	}
	// Carol reads in order, Bob in a random order.
	for i, m := range msgs {
		pt, err := carol.cipher.Decrypt(ctx, alice.addr, m)
		if err != nil || string(pt) != pts[i] {
			t.Fatalf("carol, message %d: %q, %v", i, pt, err)
		}
	}
	order := mrand.Perm(len(msgs))
	t.Logf("bob's order: %v", order)
	for _, i := range order {
		pt, err := bob.cipher.Decrypt(ctx, alice.addr, msgs[i])
		if err != nil || string(pt) != pts[i] {
			t.Fatalf("bob, message %d: %q, %v", i, pt, err)
		}
	}
	// Every message a second time: a duplicate, and nothing changes.
	for _, m := range []*skMember{bob, carol} {
		before := m.record(t, alice.addr, id)
		for i, msg := range msgs {
			if _, err := m.cipher.Decrypt(ctx, alice.addr, msg); !errors.Is(err, protocol.ErrDuplicateMessage) {
				t.Fatalf("replayed message %d: err = %v, want ErrDuplicateMessage", i, err)
			}
		}
		if !bytes.Equal(before, m.record(t, alice.addr, id)) {
			t.Fatal("replays changed the record")
		}
	}
	// The chain goes on.
	next := skEncrypt(t, alice, id, "after")
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, next[0]); err != nil || string(pt) != "after" {
		t.Fatalf("after replays: %q, %v", pt, err)
	}
}

func TestGroupTamperingFailsAndLeavesRecordUnchanged(t *testing.T) {
	ctx := context.Background()
	alice, bob := newSKMember("alice"), newSKMember("bob")
	id := newSKDistributionID(t)
	skDistribute(t, alice, id, bob)
	msgs := skEncrypt(t, alice, id, "zero", "one", "two")
	// Bob has read message 2, so message 0 and 1 are stored skipped keys.
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, msgs[2]); err != nil {
		t.Fatal(err)
	}
	before := bob.record(t, alice.addr, id)
	m := msgs[1]
	for i := range len(m) {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(m)
			bad[i] ^= bit
			_, err := bob.cipher.Decrypt(ctx, alice.addr, bad)
			if err == nil {
				t.Fatalf("flipping bit %#x of byte %d: accepted", bit, i)
			}
			// A flip in the distribution id or chain id names a chain Bob
			// does not have; anything else is a plain decryption failure.
			if !errors.Is(err, protocol.ErrDecryption) && !errors.Is(err, protocol.ErrNoSenderKey) {
				t.Fatalf("flipping bit %#x of byte %d: err = %v", bit, i, err)
			}
			if errors.Is(err, protocol.ErrDuplicateMessage) {
				t.Fatalf("flipping bit %#x of byte %d: reported as a duplicate", bit, i)
			}
		}
	}
	for _, bad := range [][]byte{nil, {0x33}, m[:len(m)-1], append(bytes.Clone(m), 0), append([]byte{0x33}, m[2:]...)} {
		if _, err := bob.cipher.Decrypt(ctx, alice.addr, bad); !errors.Is(err, protocol.ErrDecryption) {
			t.Fatalf("malformed message %x: err = %v, want ErrDecryption", bad, err)
		}
	}
	legacy := bytes.Clone(m)
	legacy[0] = 0x22
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, legacy); !errors.Is(err, protocol.ErrLegacyMessage) || !errors.Is(err, protocol.ErrDecryption) {
		t.Fatalf("version 2 message: err = %v", err)
	}
	// A message from someone else, or signed by a key Bob does not hold for Alice.
	mallory := newSKMember("mallory")
	skDistribute(t, mallory, id, newSKMember("dummy"))
	forged := skEncrypt(t, mallory, id, "forged")[0]
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, forged); !errors.Is(err, protocol.ErrNoSenderKey) {
		t.Fatalf("message from an unknown chain: err = %v, want ErrNoSenderKey", err)
	}
	if !bytes.Equal(before, bob.record(t, alice.addr, id)) {
		t.Fatal("failed decryptions changed the record")
	}
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, m); err != nil || string(pt) != "one" {
		t.Fatalf("the untouched message: %q, %v", pt, err)
	}
}

// skAdvance moves the sender's chain forward by n iterations without
// sending, through the record's stored form.
func skAdvance(t *testing.T, m *skMember, id protocol.DistributionID, n int) {
	t.Helper()
	r, err := senderkey.ParseRecord(m.record(t, m.addr, id))
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		r.States[0].Chain, _ = r.States[0].Chain.Next()
	}
	rec, err := protocol.ParseSenderKeyRecord(r.Marshal(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.store.StoreSenderKey(context.Background(), m.addr, id, rec); err != nil {
		t.Fatal(err)
	}
}

func TestGroupForwardJumpLimit(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newSKMember("alice"), newSKMember("bob"), newSKMember("carol")
	id := newSKDistributionID(t)
	skDistribute(t, alice, id, bob, carol)

	skAdvance(t, alice, id, 25_000)
	atLimit := skEncrypt(t, alice, id, "25000 ahead")[0]
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, atLimit); err != nil || string(pt) != "25000 ahead" {
		t.Fatalf("a message 25,000 ahead: %q, %v", pt, err)
	}
	// Bob kept only the newest 2,000 skipped keys.
	r, err := senderkey.ParseRecord(bob.record(t, alice.addr, id))
	if err != nil {
		t.Fatal(err)
	}
	if s := r.States[0].Skipped; len(s) != 2_000 || s[0].Iteration != 23_000 || s[len(s)-1].Iteration != 24_999 {
		t.Fatalf("skipped keys: %d, from %d to %d", len(s), s[0].Iteration, s[len(s)-1].Iteration)
	}

	beyond := skEncrypt(t, alice, id, "25001 ahead")[0] // iteration 25,001
	before := carol.record(t, alice.addr, id)
	if _, err := carol.cipher.Decrypt(ctx, alice.addr, beyond); !errors.Is(err, protocol.ErrDecryption) {
		t.Fatalf("a message 25,001 ahead: err = %v, want ErrDecryption", err)
	}
	if !bytes.Equal(before, carol.record(t, alice.addr, id)) {
		t.Fatal("the refused jump changed the record")
	}
	// Bob is at 25,001 by now, so the same message is one step for him.
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, beyond); err != nil || string(pt) != "25001 ahead" {
		t.Fatalf("next message: %q, %v", pt, err)
	}
}

func TestGroupRotation(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newSKMember("alice"), newSKMember("bob"), newSKMember("carol")
	id := newSKDistributionID(t)
	oldSKDM := skDistribute(t, alice, id, bob, carol)
	old := skEncrypt(t, alice, id, "before")[0]
	if _, err := carol.cipher.Decrypt(ctx, alice.addr, old); err != nil {
		t.Fatal(err)
	}
	// Before a rotation, asking again returns the same chain.
	again, err := alice.cipher.NewDistribution(ctx, alice.addr, id)
	if err != nil {
		t.Fatal(err)
	}
	d0, err0 := senderkey.ParseDistribution(oldSKDM)
	d1, err1 := senderkey.ParseDistribution(again)
	if err0 != nil || err1 != nil || d1.ChainID != d0.ChainID || d1.SigningKey != d0.SigningKey || d1.Iteration != d0.Iteration+1 {
		t.Fatalf("second distribution before rotation: %+v, %v; first %+v, %v", d1, err1, d0, err0)
	}

	// Carol leaves: Alice rotates and sends the new distribution to Bob only.
	if err := alice.cipher.Rotate(ctx, alice.addr, id); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.cipher.Encrypt(ctx, alice.addr, id, []byte("x")); !errors.Is(err, protocol.ErrNoSenderKey) {
		t.Fatalf("encrypt after Rotate without a distribution: err = %v, want ErrNoSenderKey", err)
	}
	newSKDM := skDistribute(t, alice, id, bob)
	if d2, err := senderkey.ParseDistribution(newSKDM); err != nil || d2.ChainID == d0.ChainID || d2.SigningKey == d0.SigningKey || d2.ChainKey == d0.ChainKey || d2.Iteration != 0 {
		t.Fatalf("distribution after rotation: %+v, %v; before %+v", d2, err, d0)
	}
	after := skEncrypt(t, alice, id, "after")[0]
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, after); err != nil || string(pt) != "after" {
		t.Fatalf("bob after rotation: %q, %v", pt, err)
	}
	if _, err := carol.cipher.Decrypt(ctx, alice.addr, after); !errors.Is(err, protocol.ErrNoSenderKey) {
		t.Fatalf("carol after rotation: err = %v, want ErrNoSenderKey", err)
	}
	// Bob keeps the old chain as well, for messages still in flight.
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, old); err != nil || string(pt) != "before" {
		t.Fatalf("bob, in-flight message of the old chain: %q, %v", pt, err)
	}
}

func TestGroupNoSenderKey(t *testing.T) {
	ctx := context.Background()
	alice, bob := newSKMember("alice"), newSKMember("bob")
	id := newSKDistributionID(t)
	if _, err := alice.cipher.Encrypt(ctx, alice.addr, id, []byte("x")); !errors.Is(err, protocol.ErrNoSenderKey) {
		t.Fatalf("encrypt without a chain: err = %v", err)
	}
	if err := alice.cipher.Rotate(ctx, alice.addr, id); err != nil { // nothing to forget
		t.Fatal(err)
	}
	skDistribute(t, alice, id)
	m := skEncrypt(t, alice, id, "hi")[0]
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, m); !errors.Is(err, protocol.ErrNoSenderKey) {
		t.Fatalf("decrypt without a distribution: err = %v", err)
	}
	// Keyed by sender: Alice's chain does not decrypt as Carol's.
	skDistribute(t, alice, id, bob)
	if _, err := bob.cipher.Decrypt(ctx, protocol.Address{Name: "carol", DeviceID: 1}, m); !errors.Is(err, protocol.ErrNoSenderKey) {
		t.Fatalf("decrypt as another sender: err = %v", err)
	}
	// Bob holds Alice's chain but not her private key: he cannot send on it.
	if _, err := bob.cipher.Encrypt(ctx, alice.addr, id, []byte("x")); !errors.Is(err, protocol.ErrNoSenderKey) {
		t.Fatalf("encrypt on someone else's chain: err = %v", err)
	}
}

func TestGroupLateJoinerAndRedistribution(t *testing.T) {
	ctx := context.Background()
	alice, bob, dave := newSKMember("alice"), newSKMember("bob"), newSKMember("dave")
	id := newSKDistributionID(t)
	skDistribute(t, alice, id, bob)
	early := skEncrypt(t, alice, id, "e0", "e1", "e2")
	skDistribute(t, alice, id, dave) // at iteration 3
	late := skEncrypt(t, alice, id, "l3", "l4")
	for i, m := range early {
		if _, err := dave.cipher.Decrypt(ctx, alice.addr, m); !errors.Is(err, protocol.ErrDuplicateMessage) {
			t.Fatalf("dave, message %d from before he joined: err = %v, want ErrDuplicateMessage (as libsignal)", i, err)
		}
	}
	for i, m := range late {
		if pt, err := dave.cipher.Decrypt(ctx, alice.addr, m); err != nil || string(pt) != fmt.Sprintf("l%d", i+3) {
			t.Fatalf("dave, message %d: %q, %v", i+3, pt, err)
		}
	}
	// Bob reads message 1 and then gets the (newer) distribution again:
	// he keeps his progress and his skipped keys.
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, early[1]); err != nil {
		t.Fatal(err)
	}
	skDistribute(t, alice, id, bob)
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, early[1]); !errors.Is(err, protocol.ErrDuplicateMessage) {
		t.Fatalf("replay after re-processing the distribution: err = %v", err)
	}
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, early[0]); err != nil || string(pt) != "e0" {
		t.Fatalf("skipped message after re-processing the distribution: %q, %v", pt, err)
	}
}

func TestGroupDistributionRejectsMalformed(t *testing.T) {
	ctx := context.Background()
	alice, bob := newSKMember("alice"), newSKMember("bob")
	id := newSKDistributionID(t)
	skdm, err := alice.cipher.NewDistribution(ctx, alice.addr, id)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     nil,
		"truncated": skdm[:len(skdm)-1],
		"trailing":  append(bytes.Clone(skdm), 0),
		"bad key":   append(bytes.Clone(skdm[:len(skdm)-33]), append([]byte{0x06}, skdm[len(skdm)-32:]...)...),
	}
	for name, b := range cases {
		if _, err := bob.cipher.ProcessDistribution(ctx, alice.addr, b); !errors.Is(err, protocol.ErrInvalidMessage) {
			t.Errorf("%s: err = %v, want ErrInvalidMessage", name, err)
		}
	}
	v4 := bytes.Clone(skdm)
	v4[0] = 0x44
	if _, err := bob.cipher.ProcessDistribution(ctx, alice.addr, v4); !errors.Is(err, protocol.ErrUnknownVersion) {
		t.Errorf("version 4: err = %v, want ErrUnknownVersion", err)
	}
	if r := bob.record(t, alice.addr, id); r != nil {
		t.Fatal("a refused distribution message was stored")
	}
}

func TestSenderKeyRecordRoundTrip(t *testing.T) {
	ctx := context.Background()
	alice, bob := newSKMember("alice"), newSKMember("bob")
	id := newSKDistributionID(t)
	for range 3 { // three chains, as after two rotations
		skDistribute(t, alice, id, bob)
		skEncrypt(t, alice, id, "a", "b")
		if err := alice.cipher.Rotate(ctx, alice.addr, id); err != nil {
			t.Fatal(err)
		}
	}
	skDistribute(t, alice, id, bob)
	msgs := skEncrypt(t, alice, id, "m0", "m1", "m2", "m3")
	if _, err := bob.cipher.Decrypt(ctx, alice.addr, msgs[3]); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*skMember{alice, bob} {
		b := m.record(t, alice.addr, id)
		r, err := protocol.ParseSenderKeyRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatal("record does not round-trip")
		}
	}
	// A reloaded record keeps working on both sides.
	for _, m := range []*skMember{alice, bob} {
		r, _ := protocol.ParseSenderKeyRecord(m.record(t, alice.addr, id))
		fresh := protocol.NewInMemorySenderKeyStore()
		fresh.StoreSenderKey(ctx, alice.addr, id, r)
		m.store, m.cipher = fresh, protocol.NewGroupCipher(fresh, rand.Reader)
	}
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, msgs[1]); err != nil || string(pt) != "m1" {
		t.Fatalf("skipped message after reload: %q, %v", pt, err)
	}
	next := skEncrypt(t, alice, id, "m4")[0]
	if pt, err := bob.cipher.Decrypt(ctx, alice.addr, next); err != nil || string(pt) != "m4" {
		t.Fatalf("after reload: %q, %v", pt, err)
	}

	if _, err := protocol.ParseSenderKeyRecord([]byte{0x08, 0x02}); !errors.Is(err, protocol.ErrRecordVersion) {
		t.Fatalf("format 2: err = %v, want ErrRecordVersion", err)
	}
	for _, bad := range [][]byte{nil, {0x08, 0x00}, {0x08, 0x01, 0x12, 0x00}, {0x08, 0x01, 0x08, 0x01}} {
		if _, err := protocol.ParseSenderKeyRecord(bad); !errors.Is(err, protocol.ErrInvalidRecord) {
			t.Fatalf("record %x: err = %v, want ErrInvalidRecord", bad, err)
		}
	}
}

func TestDistributionIDText(t *testing.T) {
	const s = "d1d1d1d1-7000-11eb-b32a-33b8a8a487a6"
	id, err := protocol.ParseDistributionID(s)
	if err != nil {
		t.Fatal(err)
	}
	if id[0] != 0xd1 || id[15] != 0xa6 || id.String() != s {
		t.Fatalf("ParseDistributionID(%q) = %x (%s)", s, id[:], id)
	}
	if up, err := protocol.ParseDistributionID("D1D1D1D1-7000-11EB-B32A-33B8A8A487A6"); err != nil || up != id {
		t.Fatalf("upper case: %s, %v", up, err)
	}
	for _, bad := range []string{"", s[:35], s + "0", "d1d1d1d1x7000-11eb-b32a-33b8a8a487a6", "g1d1d1d1-7000-11eb-b32a-33b8a8a487a6", "d1d1d1d17000-11eb-b32a-33b8a8a487a6-"} {
		if _, err := protocol.ParseDistributionID(bad); err == nil {
			t.Errorf("ParseDistributionID(%q) accepted", bad)
		}
	}
}

// Alice sends to a group of which Bob is a member. Her distribution message
// reaches Bob over their one-to-one session (not shown); then every group
// message is encrypted once for all members.
func ExampleGroupCipher() {
	ctx := context.Background()
	alice := protocol.Address{Name: "9d0652a3-dcc3-4d11-975f-74d61598733f", DeviceID: 1}
	group, _ := protocol.ParseDistributionID("d1d1d1d1-7000-11eb-b32a-33b8a8a487a6")

	aliceGroups := protocol.NewGroupCipher(protocol.NewInMemorySenderKeyStore(), rand.Reader)
	bobGroups := protocol.NewGroupCipher(protocol.NewInMemorySenderKeyStore(), rand.Reader)

	skdm, err := aliceGroups.NewDistribution(ctx, alice, group)
	if err != nil {
		panic(err)
	}
	if _, err := bobGroups.ProcessDistribution(ctx, alice, skdm); err != nil {
		panic(err)
	}

	msg, err := aliceGroups.Encrypt(ctx, alice, group, []byte("hello, group"))
	if err != nil {
		panic(err)
	}
	id, _ := protocol.DistributionIDOf(msg)
	pt, err := bobGroups.Decrypt(ctx, alice, msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(id)
	fmt.Println(string(pt))
	_, err = bobGroups.Decrypt(ctx, alice, msg)
	fmt.Println(errors.Is(err, protocol.ErrDuplicateMessage))
	// Output:
	// d1d1d1d1-7000-11eb-b32a-33b8a8a487a6
	// hello, group
	// true
}
