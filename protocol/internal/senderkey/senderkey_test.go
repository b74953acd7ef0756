package senderkey

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"math"
	"testing"
)

func testMessage() Message {
	return Message{
		DistributionID: [16]byte{0xd1, 0xd1, 0xd1, 0xd1, 0x70, 0x00, 0x11, 0xeb, 0xb3, 0x2a, 0x33, 0xb8, 0xa8, 0xa4, 0x87, 0xa6},
		ChainID:        0x7fffffff,
		Iteration:      300,
		Ciphertext:     bytes.Repeat([]byte{0xC7}, 32),
	}
}

func testDistribution() Distribution {
	d := Distribution{
		DistributionID: testMessage().DistributionID,
		ChainID:        12345,
		Iteration:      0,
	}
	for i := range d.ChainKey {
		d.ChainKey[i] = byte(i)
	}
	d.SigningKey[0] = 0x05
	d.SigningKey[1] = 9
	return d
}

func signedMessage(m *Message) []byte {
	b := AppendMessage(nil, m)
	return append(b, bytes.Repeat([]byte{0x5A}, SignatureSize)...)
}

func TestMessageEncoding(t *testing.T) {
	m := testMessage()
	b := signedMessage(&m)
	if len(b) != MessageSize(&m) || b[0] != 0x33 {
		t.Fatalf("encoded %x (size %d, MessageSize %d)", b, len(b), MessageSize(&m))
	}
	got, signed, sig, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.DistributionID != m.DistributionID || got.ChainID != m.ChainID || got.Iteration != m.Iteration ||
		!bytes.Equal(got.Ciphertext, m.Ciphertext) || !bytes.Equal(signed, b[:len(b)-64]) || !bytes.Equal(sig, b[len(b)-64:]) {
		t.Fatalf("ParseMessage = %+v", got)
	}
	// Zero values are still written (proto2 optional fields are present).
	z := Message{}
	zb := signedMessage(&z)
	if want := []byte{0x33, 0x0a, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0x18, 0, 0x22, 0}; !bytes.HasPrefix(zb, want) {
		t.Fatalf("zero message encodes as %x, want prefix %x", zb, want)
	}
	if _, _, _, err := ParseMessage(zb); err != nil {
		t.Fatal(err)
	}

	proto := b[1 : len(b)-64]
	sig64 := b[len(b)-64:]
	with := func(version byte, p []byte) []byte {
		return append(append([]byte{version}, p...), sig64...)
	}
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"short":             {b[:64], ErrMalformed},
		"legacy version":    {with(0x23, proto), ErrLegacyVersion},
		"newer version":     {with(0x43, proto), ErrUnknownVersion},
		"low nibble":        {with(0x34, proto), ErrMalformed},
		"missing chain id":  {with(0x33, bytes.Replace(proto, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x07}, nil, 1)), ErrMalformed},
		"unknown field":     {with(0x33, append(bytes.Clone(proto), 0x28, 0x01)), ErrMalformed},
		"out of order":      {with(0x33, append(append([]byte{}, proto[18:]...), proto[:18]...)), ErrMalformed},
		"non-minimal":       {with(0x33, bytes.Replace(proto, []byte{0x18, 0xac, 0x02}, []byte{0x18, 0xac, 0x82, 0x00}, 1)), ErrMalformed},
		"short uuid":        {with(0x33, append([]byte{0x0a, 0x0f}, proto[3:]...)), ErrMalformed},
		"iteration > 2^32":  {with(0x33, bytes.Replace(proto, []byte{0x18, 0xac, 0x02}, []byte{0x18, 0x80, 0x80, 0x80, 0x80, 0x10}, 1)), ErrMalformed},
		"truncated content": {with(0x33, proto[:len(proto)-1]), ErrMalformed},
	}
	for name, c := range cases {
		if _, _, _, err := ParseMessage(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

func TestDistributionEncoding(t *testing.T) {
	d := testDistribution()
	b := AppendDistribution(nil, &d)
	got, err := ParseDistribution(b)
	if err != nil || got != d {
		t.Fatalf("ParseDistribution = %+v, %v", got, err)
	}
	badKey := bytes.Clone(b)
	badKey[len(b)-33] = 0x06
	for name, bad := range map[string][]byte{
		"empty":      nil,
		"version":    append([]byte{0x44}, b[1:]...),
		"truncated":  b[:len(b)-1],
		"trailing":   append(bytes.Clone(b), 0x30, 0x00),
		"key type":   badKey,
		"no key":     b[:len(b)-35],
		"short key":  append(bytes.Clone(b[:len(b)-35]), append([]byte{0x2a, 32}, b[len(b)-33:len(b)-1]...)...),
		"long chain": append(append(bytes.Clone(b[:len(b)-35-34]), 0x22, 33), append(bytes.Repeat([]byte{1}, 33), b[len(b)-35:]...)...),
	} {
		if _, err := ParseDistribution(bad); err == nil {
			t.Errorf("%s: accepted %x", name, bad)
		}
	}
}

// TestChainDerivation recomputes the chain and message keys with the
// standard library's HMAC and HKDF.
func TestChainDerivation(t *testing.T) {
	var c ChainKey
	for i := range c.Key {
		c.Key[i] = byte(0xA0 + i)
	}
	mac := func(key []byte, b byte) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte{b})
		return h.Sum(nil)
	}
	key := bytes.Clone(c.Key[:])
	for i := range 5 {
		seed := c.Seed()
		if !bytes.Equal(seed[:], mac(key, 1)) {
			t.Fatalf("iteration %d: seed differs", i)
		}
		okm, err := hkdf.Key(sha256.New, seed[:], nil, "WhisperGroup", 48)
		if err != nil {
			t.Fatal(err)
		}
		mk := DeriveMessageKey(&seed)
		if !bytes.Equal(mk.IV[:], okm[:16]) || !bytes.Equal(mk.Cipher[:], okm[16:]) {
			t.Fatalf("iteration %d: message key differs", i)
		}
		ct := Encrypt(nil, &seed, []byte("hello"))
		if pt, err := Decrypt(nil, &seed, ct); err != nil || string(pt) != "hello" || len(ct) != 16 {
			t.Fatalf("CBC round trip: %q, %v", pt, err)
		}
		var ok bool
		c, ok = c.Next()
		key = mac(key, 2)
		if !ok || c.Iteration != uint32(i+1) || !bytes.Equal(c.Key[:], key) {
			t.Fatalf("iteration %d: next chain key differs", i)
		}
	}
	last := ChainKey{Iteration: math.MaxUint32}
	if _, ok := last.Next(); ok {
		t.Fatal("advanced past iteration 2^32-1")
	}
}

func newState(chainID uint32, key byte) *State {
	s := &State{ChainID: chainID}
	s.Chain.Key[0] = key
	s.SigningPublic[0] = 0x05
	s.SigningPublic[1] = key
	return s
}

func chainIDs(r *Record) []uint32 {
	var ids []uint32
	for _, s := range r.States {
		ids = append(ids, s.ChainID)
	}
	return ids
}

func TestRecordAdd(t *testing.T) {
	r := &Record{}
	for i := uint32(1); i <= 6; i++ {
		r.Add(newState(i, byte(i)))
	}
	if got := chainIDs(r); len(got) != MaxStates || got[0] != 6 || got[4] != 2 {
		t.Fatalf("after 6 adds: %v, want [6 5 4 3 2]", got)
	}
	// The same chain again keeps its progress and moves to the front.
	r.ForChain(3).Chain.Iteration = 77
	r.Add(newState(3, 3))
	if got := chainIDs(r); got[0] != 3 || len(got) != 5 || r.States[0].Chain.Iteration != 77 {
		t.Fatalf("re-adding chain 3: %v, iteration %d", got, r.States[0].Chain.Iteration)
	}
	// The same chain id with another signing key replaces it.
	r.Add(newState(3, 99))
	if got := chainIDs(r); got[0] != 3 || len(got) != 5 || r.States[0].Chain.Iteration != 0 || r.States[0].SigningPublic[1] != 99 {
		t.Fatalf("replacing chain 3: %v", got)
	}
	if r.ForChain(1) != nil || r.ForChain(42) != nil || r.Current() != r.States[0] {
		t.Fatal("ForChain / Current")
	}
	if (&Record{}).Current() != nil {
		t.Fatal("empty record has a current state")
	}
}

func TestPlanAndApply(t *testing.T) {
	s := newState(1, 1)
	before := (&Record{States: []*State{s}}).Marshal(nil)
	for _, it := range []uint32{MaxForwardJumps + 1, math.MaxUint32} {
		if _, err := s.Plan(it); !errors.Is(err, ErrTooFarAhead) {
			t.Fatalf("Plan(%d): %v", it, err)
		}
	}
	p, err := s.Plan(MaxForwardJumps)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, (&Record{States: []*State{s}}).Marshal(nil)) {
		t.Fatal("Plan changed the state")
	}
	s.Apply(&p)
	if s.Chain.Iteration != MaxForwardJumps+1 || len(s.Skipped) != MaxMessageKeys || s.Skipped[0].Iteration != MaxForwardJumps-MaxMessageKeys {
		t.Fatalf("after a full jump: iteration %d, %d skipped from %d", s.Chain.Iteration, len(s.Skipped), s.Skipped[0].Iteration)
	}
	// The seed for a skipped iteration is the one the chain gave.
	c := ChainKey{Key: newState(1, 1).Chain.Key}
	for c.Iteration < MaxForwardJumps-1 {
		c, _ = c.Next()
	}
	p, err = s.Plan(MaxForwardJumps - 1)
	if err != nil || p.Seed != c.Seed() {
		t.Fatalf("skipped seed: %v", err)
	}
	s.Apply(&p)
	if _, err := s.Plan(MaxForwardJumps - 1); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("used skipped key: %v", err)
	}
	for _, it := range []uint32{0, MaxForwardJumps - MaxMessageKeys - 1, MaxForwardJumps} {
		if _, err := s.Plan(it); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("Plan(%d): %v, want ErrDuplicate", it, err)
		}
	}
	// Filling up further drops the oldest.
	p, _ = s.Plan(s.Chain.Iteration + 10)
	s.Apply(&p)
	if len(s.Skipped) != MaxMessageKeys || s.Skipped[0].Iteration != MaxForwardJumps-MaxMessageKeys+9 {
		t.Fatalf("after 10 more: %d skipped from %d", len(s.Skipped), s.Skipped[0].Iteration)
	}
	if _, err := ParseRecord((&Record{States: []*State{s}}).Marshal(nil)); err != nil {
		t.Fatalf("state after plans does not round-trip: %v", err)
	}

	end := newState(2, 2)
	end.Chain.Iteration = math.MaxUint32 - 1
	p, err = end.Plan(math.MaxUint32 - 1)
	if err != nil {
		t.Fatal(err)
	}
	end.Apply(&p)
	if _, err := end.Plan(math.MaxUint32); !errors.Is(err, ErrChainExhausted) {
		t.Fatalf("last iteration: %v", err)
	}
}

func TestRecordEncoding(t *testing.T) {
	ours := newState(7, 7)
	ours.SigningPrivate = &[32]byte{1, 2, 3}
	theirs := newState(8, 8)
	p, _ := theirs.Plan(5)
	theirs.Apply(&p)
	r := &Record{States: []*State{ours, theirs}}
	b := r.Marshal(nil)
	got, err := ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(nil), b) || got.States[0].SigningPrivate == nil || *got.States[0].SigningPrivate != *ours.SigningPrivate ||
		got.States[1].SigningPrivate != nil || len(got.States[1].Skipped) != 5 {
		t.Fatalf("record does not round-trip: %+v", got)
	}
	if _, err := ParseRecord([]byte{0x08, 0x02}); !errors.Is(err, ErrRecordVersion) {
		t.Fatalf("format 2: %v", err)
	}
	dup := &Record{States: []*State{newState(7, 1), newState(7, 2)}}
	six := &Record{}
	for i := range 6 {
		six.States = append(six.States, newState(uint32(i), 1))
	}
	unsorted := newState(9, 9)
	unsorted.Chain.Iteration = 10
	unsorted.Skipped = []SkippedKey{{Iteration: 3}, {Iteration: 2}}
	ahead := newState(9, 9)
	ahead.Chain.Iteration = 3
	ahead.Skipped = []SkippedKey{{Iteration: 3}}
	badKey := newState(9, 9)
	badKey.SigningPublic[0] = 0
	for name, bad := range map[string][]byte{
		"empty":            nil,
		"format 0":         {0x08, 0x00},
		"no format":        {0x12, 0x00},
		"empty state":      {0x08, 0x01, 0x12, 0x00},
		"duplicate chains": dup.Marshal(nil),
		"six states":       six.Marshal(nil),
		"unsorted skipped": (&Record{States: []*State{unsorted}}).Marshal(nil),
		"skipped ahead":    (&Record{States: []*State{ahead}}).Marshal(nil),
		"bad signing key":  (&Record{States: []*State{badKey}}).Marshal(nil),
		"trailing":         append(r.Marshal(nil), 0x08, 0x01),
	} {
		if _, err := ParseRecord(bad); !errors.Is(err, ErrRecordMalformed) {
			t.Errorf("%s: err = %v, want ErrRecordMalformed", name, err)
		}
	}
}
