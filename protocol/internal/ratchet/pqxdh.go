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

// InitAlice builds the initiator's state after PQXDH.
func InitAlice(p *AliceParams) (*State, error) {
	secrets := make([]byte, 0, 32*6)
	secrets = append(secrets, discontinuity[:]...)
	var shared [32]byte
	appendDH := func(priv *[32]byte, pub *[33]byte) error {
		if err := dh(&shared, priv, pub); err != nil {
			return err
		}
		secrets = append(secrets, shared[:]...)
		return nil
	}
	if err := appendDH(&p.OurIdentity.Private, &p.TheirSignedPreKey); err != nil {
		return nil, err
	}
	if err := appendDH(&p.OurBase.Private, &p.TheirIdentity); err != nil {
		return nil, err
	}
	if err := appendDH(&p.OurBase.Private, &p.TheirSignedPreKey); err != nil {
		return nil, err
	}
	if p.TheirOneTimeKey != nil {
		if err := appendDH(&p.OurBase.Private, p.TheirOneTimeKey); err != nil {
			return nil, err
		}
	}
	clear(shared[:])
	secrets = append(secrets, p.KyberShared...)
	root, recvChain := deriveInitial(secrets)

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
	secrets := make([]byte, 0, 32*6)
	secrets = append(secrets, discontinuity[:]...)
	var shared [32]byte
	appendDH := func(priv *[32]byte, pub *[33]byte) error {
		if err := dh(&shared, priv, pub); err != nil {
			return err
		}
		secrets = append(secrets, shared[:]...)
		return nil
	}
	if err := appendDH(&p.OurSignedPreKey.Private, &p.TheirIdentity); err != nil {
		return nil, err
	}
	if err := appendDH(&p.OurIdentity.Private, &p.TheirBaseKey); err != nil {
		return nil, err
	}
	if err := appendDH(&p.OurSignedPreKey.Private, &p.TheirBaseKey); err != nil {
		return nil, err
	}
	if p.OurOneTimeKey != nil {
		if err := appendDH(&p.OurOneTimeKey.Private, &p.TheirBaseKey); err != nil {
			return nil, err
		}
	}
	clear(shared[:])
	secrets = append(secrets, p.KyberShared...)
	root, chain := deriveInitial(secrets)
	return &State{
		Version:        wire.CurrentVersion,
		LocalIdentity:  p.OurIdentity.Public,
		RemoteIdentity: p.TheirIdentity,
		RootKey:        root,
		Sender:         SenderChain{Ratchet: p.OurSignedPreKey, Chain: chain},
		AliceBaseKey:   p.TheirBaseKey,
	}, nil
}
