package senderkey

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"sort"

	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// RecordFormat is the version of the stored record encoding. ParseRecord accepts every version
// up to this one and refuses newer ones rather than misreading them.
const RecordFormat = 1

var (
	// ErrRecordMalformed: a stored record does not decode.
	ErrRecordMalformed = errors.New("senderkey: malformed record")
	// ErrRecordVersion: a stored record was written by a newer version.
	ErrRecordVersion = errors.New("senderkey: record from a newer version")
)

// SkippedKey is the message-key seed of an iteration that was skipped over. It must be kept
// secret.
type SkippedKey struct {
	Iteration uint32
	Seed      [ChainKeySize]byte
}

// State is one sender chain: ours (with the private signing key) or a peer's.
type State struct {
	ChainID        uint32
	Chain          ChainKey
	SigningPublic  [PublicKeySize]byte
	SigningPrivate *[PrivateKeySize]byte // nil for a peer's chain; must be kept secret
	// Skipped holds skipped seeds in strictly increasing iteration order, all below
	// Chain.Iteration, at most MaxMessageKeys of them.
	Skipped []SkippedKey
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	c := *s
	if s.SigningPrivate != nil {
		p := *s.SigningPrivate
		c.SigningPrivate = &p
	}
	c.Skipped = append([]SkippedKey(nil), s.Skipped...)
	return &c
}

// Record is the sender-key state for one (sender, distribution id): up to MaxStates chains,
// newest first. The zero value is an empty record.
type Record struct {
	States []*State
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := &Record{States: make([]*State, len(r.States))}
	for i, s := range r.States {
		c.States[i] = s.Clone()
	}
	return c
}

// Current is the newest chain, the one a sender encrypts with, or nil.
func (r *Record) Current() *State {
	if len(r.States) == 0 {
		return nil
	}
	return r.States[0]
}

// ForChain returns the chain with the given id, or nil.
func (r *Record) ForChain(chainID uint32) *State {
	for _, s := range r.States {
		if s.ChainID == chainID {
			return s
		}
	}
	return nil
}

// Add makes s the newest chain, as libsignal's add_sender_key_state does: a chain already held
// with the same id and signing key is kept as it is (with its progress) and moved to the front;
// any other chain with that id is dropped; then the oldest chains go until there is room.
func (r *Record) Add(s *State) {
	var existing *State
	kept := r.States[:0]
	for _, old := range r.States {
		switch {
		case old.ChainID != s.ChainID:
			kept = append(kept, old)
		case existing == nil && subtle.ConstantTimeCompare(old.SigningPublic[:], s.SigningPublic[:]) == 1:
			existing = old
		}
	}
	clear(r.States[len(kept):])
	r.States = kept
	if existing != nil {
		s = existing
	}
	if len(r.States) >= MaxStates {
		clear(r.States[MaxStates-1:])
		r.States = r.States[:MaxStates-1]
	}
	r.States = append(r.States, nil)
	copy(r.States[1:], r.States)
	r.States[0] = s
}

// Plan is the change decrypting one message makes to its chain, computed without touching the
// chain. It must be kept secret.
type Plan struct {
	Seed      [ChainKeySize]byte // the message's key seed
	Iteration uint32

	skippedIndex int // ≥ 0: the seed came from Skipped[skippedIndex]
	next         ChainKey
	newSkipped   []SkippedKey
}

// Plan finds the key seed for iteration without changing s. It is ErrDuplicate for an
// iteration whose key was used or dropped, ErrTooFarAhead beyond MaxForwardJumps, and
// ErrChainExhausted for iteration 2^32−1.
func (s *State) Plan(iteration uint32) (Plan, error) {
	p := Plan{Iteration: iteration, skippedIndex: -1}
	cur := s.Chain.Iteration
	if iteration < cur {
		i := sort.Search(len(s.Skipped), func(i int) bool { return s.Skipped[i].Iteration >= iteration })
		if i == len(s.Skipped) || s.Skipped[i].Iteration != iteration {
			return Plan{}, ErrDuplicate
		}
		p.Seed, p.skippedIndex = s.Skipped[i].Seed, i
		return p, nil
	}
	jump := iteration - cur
	if jump > MaxForwardJumps {
		return Plan{}, ErrTooFarAhead
	}
	// Only the newest MaxMessageKeys skipped seeds could survive Apply, so only those are
	// computed.
	keepFrom := 0
	if int(jump) > MaxMessageKeys {
		keepFrom = int(jump) - MaxMessageKeys
	}
	if jump > 0 {
		p.newSkipped = make([]SkippedKey, 0, int(jump)-keepFrom)
	}
	c := s.Chain
	for i := 0; i < int(jump); i++ {
		if i >= keepFrom {
			p.newSkipped = append(p.newSkipped, SkippedKey{Iteration: c.Iteration, Seed: c.Seed()})
		}
		c, _ = c.Next() // c.Iteration < iteration ≤ MaxUint32
	}
	next, ok := c.Next()
	if !ok {
		return Plan{}, ErrChainExhausted
	}
	p.Seed, p.next = c.Seed(), next
	return p, nil
}

// Apply commits a plan made by s.Plan (and nothing else since) to s.
func (s *State) Apply(p *Plan) {
	if p.skippedIndex >= 0 {
		s.Skipped = append(s.Skipped[:p.skippedIndex], s.Skipped[p.skippedIndex+1:]...)
		return
	}
	all := append(s.Skipped, p.newSkipped...)
	if drop := len(all) - MaxMessageKeys; drop > 0 {
		all = append([]SkippedKey(nil), all[drop:]...)
	}
	s.Skipped = all
	s.Chain = p.next
}

// Marshal appends the record's stored form to dst:
//
//	{1: format, 2: state (repeated, newest first)}
//	state = {1: chain id, 2: iteration, 3: chain key, 4: signing public key,
//	         5: signing private key (ours only), 6: skipped keys (iteration BE32 ‖ seed)*, if any}
func (r *Record) Marshal(dst []byte) []byte {
	dst = wire.AppendUint(dst, 1, RecordFormat)
	for _, s := range r.States {
		dst = wire.AppendBytes(dst, 2, s.marshal(nil))
	}
	return dst
}

const skippedSize = 4 + ChainKeySize

func (s *State) marshal(b []byte) []byte {
	b = wire.AppendUint(b, 1, uint64(s.ChainID))
	b = wire.AppendUint(b, 2, uint64(s.Chain.Iteration))
	b = wire.AppendBytes(b, 3, s.Chain.Key[:])
	b = wire.AppendBytes(b, 4, s.SigningPublic[:])
	if s.SigningPrivate != nil {
		b = wire.AppendBytes(b, 5, s.SigningPrivate[:])
	}
	if len(s.Skipped) > 0 {
		packed := make([]byte, 0, skippedSize*len(s.Skipped))
		for _, k := range s.Skipped {
			packed = binary.BigEndian.AppendUint32(packed, k.Iteration)
			packed = append(packed, k.Seed[:]...)
		}
		b = wire.AppendBytes(b, 6, packed)
	}
	return b
}

// ParseRecord decodes a stored record. It accepts only what Marshal writes: canonical
// encoding, at most MaxStates chains with distinct ids, skipped keys in increasing order below
// their chain's iteration and at most MaxMessageKeys of them.
func ParseRecord(b []byte) (*Record, error) {
	rd := wire.NewReader(b)
	rd.Repeated = 1 << 2
	f, err := rd.Next()
	if err != nil || f.Num != 1 {
		return nil, ErrRecordMalformed
	}
	v, err := f.Uint32()
	switch {
	case err != nil || v == 0:
		return nil, ErrRecordMalformed
	case v > RecordFormat:
		return nil, ErrRecordVersion
	}
	r := &Record{}
	for !rd.Done() {
		f, err := rd.Next()
		if err != nil || f.Num != 2 || f.Type != 2 || len(r.States) == MaxStates {
			return nil, ErrRecordMalformed
		}
		s, err := parseState(f.Bytes)
		if err != nil || r.ForChain(s.ChainID) != nil {
			return nil, ErrRecordMalformed
		}
		r.States = append(r.States, s)
	}
	return r, nil
}

func parseState(b []byte) (*State, error) {
	rd := wire.NewReader(b)
	s := &State{}
	var seen uint
	for !rd.Done() {
		f, err := rd.Next()
		if err != nil {
			return nil, ErrRecordMalformed
		}
		switch f.Num {
		case 1:
			s.ChainID, err = f.Uint32()
		case 2:
			s.Chain.Iteration, err = f.Uint32()
		case 3:
			err = f.Fixed(s.Chain.Key[:])
		case 4:
			if err = f.Fixed(s.SigningPublic[:]); err == nil && s.SigningPublic[0] != 0x05 {
				err = ErrRecordMalformed
			}
		case 5:
			s.SigningPrivate = new([PrivateKeySize]byte)
			err = f.Fixed(s.SigningPrivate[:])
		case 6:
			s.Skipped, err = parseSkipped(f)
		default:
			err = ErrRecordMalformed
		}
		if err != nil {
			return nil, ErrRecordMalformed
		}
		seen |= 1 << f.Num
	}
	const required = 1<<1 | 1<<2 | 1<<3 | 1<<4
	if seen&required != required {
		return nil, ErrRecordMalformed
	}
	if n := len(s.Skipped); n > 0 && s.Skipped[n-1].Iteration >= s.Chain.Iteration {
		return nil, ErrRecordMalformed
	}
	return s, nil
}

func parseSkipped(f wire.Field) ([]SkippedKey, error) {
	packed, err := f.Data(skippedSize, skippedSize*MaxMessageKeys)
	if err != nil || len(packed)%skippedSize != 0 {
		return nil, ErrRecordMalformed
	}
	out := make([]SkippedKey, len(packed)/skippedSize)
	for i := range out {
		e := packed[i*skippedSize:]
		out[i].Iteration = binary.BigEndian.Uint32(e)
		copy(out[i].Seed[:], e[4:skippedSize])
		if i > 0 && out[i].Iteration <= out[i-1].Iteration {
			return nil, ErrRecordMalformed
		}
	}
	return out, nil
}
