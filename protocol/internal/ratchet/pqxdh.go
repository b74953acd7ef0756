package ratchet

import (
	"github.com/veil-e2ee/veil/protocol/internal/primitives"
	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// AliceParams are the initiator's inputs to PQXDH: its identity and
// ephemeral base key, the responder's bundle keys, the Kyber shared secret
// it encapsulated, and a fresh ratchet key pair.
type AliceParams struct {
	OurIdentity       KeyPair
	OurBase           KeyPair
	OurRatchet        KeyPair
	TheirIdentity     [33]byte
	TheirSignedPreKey [33]byte
	TheirOneTimeKey   *[33]byte
	KyberShared       []byte
}

// BobParams are the responder's inputs to PQXDH.
type BobParams struct {
	OurIdentity     KeyPair
	OurSignedPreKey KeyPair
	OurOneTimeKey   *KeyPair
	TheirIdentity   [33]byte
	TheirBaseKey    [33]byte
	KyberShared     []byte
}

// deriveInitial is libsignal's derive_keys: HKDF(no salt, secrets,
// "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024") → root ‖ chain ‖ SPQR
// authentication key (unused: Veil does not run SPQR).
func deriveInitial(secrets []byte) (root [32]byte, chain ChainKey) {
	var out [96]byte
	primitives.HKDF(out[:], secrets, nil, labelText)
	copy(root[:], out[:32])
	copy(chain.Key[:], out[32:64])
	clear(out[:])
	clear(secrets)
	return root, chain
}

// secrets accumulates PQXDH's input key material: 0xFF×32, then each DH
// output in order, then the Kyber shared secret. The first failing DH
// (a low-order point) sticks.
type secrets struct {
	b   []byte
	err error
}

func newSecrets() *secrets {
	s := &secrets{b: make([]byte, 0, 32*6)}
	s.b = append(s.b, discontinuity[:]...)
	return s
}

func (s *secrets) dh(priv *[32]byte, pub *[33]byte) {
	if s.err != nil {
		return
	}
	var shared [32]byte
	s.err = dh(&shared, priv, pub)
	s.b = append(s.b, shared[:]...)
	clear(shared[:])
}

// InitAlice builds the initiator's state after PQXDH.
func InitAlice(p *AliceParams) (*State, error) {
	in := newSecrets()
	in.dh(&p.OurIdentity.Private, &p.TheirSignedPreKey)
	in.dh(&p.OurBase.Private, &p.TheirIdentity)
	in.dh(&p.OurBase.Private, &p.TheirSignedPreKey)
	if p.TheirOneTimeKey != nil {
		in.dh(&p.OurBase.Private, p.TheirOneTimeKey)
	}
	if in.err != nil {
		clear(in.b)
		return nil, in.err
	}
	root, recvChain := deriveInitial(append(in.b, p.KyberShared...))

	sendRoot, sendChain, err := createChain(&root, &p.TheirSignedPreKey, &p.OurRatchet.Private)
	if err != nil {
		return nil, err
	}
	return &State{
		Version:        wire.CurrentVersion,
		LocalIdentity:  p.OurIdentity.Public,
		RemoteIdentity: p.TheirIdentity,
		RootKey:        sendRoot,
		Sender:         SenderChain{Ratchet: p.OurRatchet, Chain: sendChain},
		Receivers:      []ReceiverChain{{RatchetKey: p.TheirSignedPreKey, Chain: recvChain}},
		AliceBaseKey:   p.OurBase.Public,
	}, nil
}

// InitBob builds the responder's state after PQXDH. Its first sending
// chain uses the signed prekey as its ratchet key.
func InitBob(p *BobParams) (*State, error) {
	in := newSecrets()
	in.dh(&p.OurSignedPreKey.Private, &p.TheirIdentity)
	in.dh(&p.OurIdentity.Private, &p.TheirBaseKey)
	in.dh(&p.OurSignedPreKey.Private, &p.TheirBaseKey)
	if p.OurOneTimeKey != nil {
		in.dh(&p.OurOneTimeKey.Private, &p.TheirBaseKey)
	}
	if in.err != nil {
		clear(in.b)
		return nil, in.err
	}
	root, chain := deriveInitial(append(in.b, p.KyberShared...))
	return &State{
		Version:        wire.CurrentVersion,
		LocalIdentity:  p.OurIdentity.Public,
		RemoteIdentity: p.TheirIdentity,
		RootKey:        root,
		Sender:         SenderChain{Ratchet: p.OurSignedPreKey, Chain: chain},
		AliceBaseKey:   p.TheirBaseKey,
	}, nil
}
