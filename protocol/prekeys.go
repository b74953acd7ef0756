package protocol

import (
	"fmt"
	"io"
	"time"

	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// PreKeyRecord is a one-time EC prekey, kept by its owner until a
// PreKey message uses it.
type PreKeyRecord struct {
	ID      uint32
	KeyPair KeyPair
}

// SignedPreKeyRecord is a medium-term EC prekey signed by the identity key.
type SignedPreKeyRecord struct {
	ID        uint32
	Timestamp time.Time
	KeyPair   KeyPair
	Signature []byte
}

// KyberPreKeyRecord is a signed Kyber1024 prekey: one-time, or the
// last-resort key used when the one-time keys have run out.
type KyberPreKeyRecord struct {
	ID         uint32
	Timestamp  time.Time
	KeyPair    KEMKeyPair
	Signature  []byte
	LastResort bool
}

// GeneratePreKeys makes count one-time prekeys with ids start, start+1, …
func GeneratePreKeys(rand io.Reader, start uint32, count int) ([]PreKeyRecord, error) {
	out := make([]PreKeyRecord, count)
	for i := range out {
		kp, err := GenerateKeyPair(rand)
		if err != nil {
			return nil, err
		}
		out[i] = PreKeyRecord{ID: start + uint32(i), KeyPair: kp}
	}
	return out, nil
}

// GenerateSignedPreKey makes a signed prekey: the identity key signs the
// 33-byte serialized public key (type byte included), as libsignal does.
func GenerateSignedPreKey(rand io.Reader, identity IdentityKeyPair, id uint32, now time.Time) (SignedPreKeyRecord, error) {
	kp, err := GenerateKeyPair(rand)
	if err != nil {
		return SignedPreKeyRecord{}, err
	}
	sig, err := identity.Sign(rand, kp.Public.b[:])
	if err != nil {
		return SignedPreKeyRecord{}, err
	}
	return SignedPreKeyRecord{ID: id, Timestamp: now, KeyPair: kp, Signature: sig}, nil
}

// GenerateKyberPreKey makes a signed Kyber1024 prekey (the signature
// covers the serialized public key, 0x08 type byte included).
func GenerateKyberPreKey(rand io.Reader, identity IdentityKeyPair, id uint32, lastResort bool, now time.Time) (KyberPreKeyRecord, error) {
	kp, err := GenerateKEMKeyPair(rand)
	if err != nil {
		return KyberPreKeyRecord{}, err
	}
	sig, err := identity.Sign(rand, kp.Public.b)
	if err != nil {
		return KyberPreKeyRecord{}, err
	}
	return KyberPreKeyRecord{ID: id, Timestamp: now, KeyPair: kp, Signature: sig, LastResort: lastResort}, nil
}

// PreKeyBundle is what a server hands out so that a peer can start a
// session with one device without it being online.
type PreKeyBundle struct {
	RegistrationID uint32
	DeviceID       uint32
	IdentityKey    PublicKey

	// The one-time EC prekey is optional: servers run out.
	HasPreKey bool
	PreKeyID  uint32
	PreKey    PublicKey

	SignedPreKeyID        uint32
	SignedPreKey          PublicKey
	SignedPreKeySignature []byte

	// The Kyber prekey is required (PQXDH); it is a one-time key or the
	// last-resort key.
	KyberPreKeyID        uint32
	KyberPreKey          KEMPublicKey
	KyberPreKeySignature []byte
}

// Stored forms of the prekey records: our own versioned encoding
// (protobuf field syntax), for device stores.
const prekeyRecordFormat = 1

// Marshal returns the stored form. It contains the private key and must
// be kept secret (encrypted at rest).
func (r PreKeyRecord) Marshal() []byte {
	b := wire.AppendUint(nil, 1, prekeyRecordFormat)
	b = wire.AppendUint(b, 2, uint64(r.ID))
	b = wire.AppendBytes(b, 3, r.KeyPair.Private.b[:])
	return b
}

// ParsePreKeyRecord decodes PreKeyRecord.Marshal's output.
func ParsePreKeyRecord(b []byte) (PreKeyRecord, error) {
	var r PreKeyRecord
	fs, err := recordFields(b, 3)
	if err != nil {
		return r, err
	}
	if r.ID, err = fs[2].Uint32(); err != nil {
		return r, ErrInvalidRecord
	}
	priv, err := ParsePrivateKey(fs[3].Bytes)
	if err != nil {
		return r, ErrInvalidRecord
	}
	r.KeyPair = NewKeyPair(priv)
	return r, nil
}

// Marshal returns the stored form. It must be kept secret.
func (r SignedPreKeyRecord) Marshal() []byte {
	b := wire.AppendUint(nil, 1, prekeyRecordFormat)
	b = wire.AppendUint(b, 2, uint64(r.ID))
	b = wire.AppendUint(b, 3, uint64(r.Timestamp.UnixMilli()))
	b = wire.AppendBytes(b, 4, r.KeyPair.Private.b[:])
	b = wire.AppendBytes(b, 5, r.Signature)
	return b
}

// ParseSignedPreKeyRecord decodes SignedPreKeyRecord.Marshal's output.
func ParseSignedPreKeyRecord(b []byte) (SignedPreKeyRecord, error) {
	var r SignedPreKeyRecord
	fs, err := recordFields(b, 5)
	if err != nil {
		return r, err
	}
	ts, err1 := fs[3].Uint64()
	id, err2 := fs[2].Uint32()
	priv, err3 := ParsePrivateKey(fs[4].Bytes)
	if err1 != nil || err2 != nil || err3 != nil || len(fs[5].Bytes) != SignatureSize || ts > 1<<62 {
		return r, ErrInvalidRecord
	}
	return SignedPreKeyRecord{ID: id, Timestamp: time.UnixMilli(int64(ts)), KeyPair: NewKeyPair(priv),
		Signature: append([]byte(nil), fs[5].Bytes...)}, nil
}

// Marshal returns the stored form. It must be kept secret.
func (r KyberPreKeyRecord) Marshal() []byte {
	b := wire.AppendUint(nil, 1, prekeyRecordFormat)
	b = wire.AppendUint(b, 2, uint64(r.ID))
	b = wire.AppendUint(b, 3, uint64(r.Timestamp.UnixMilli()))
	b = wire.AppendBytes(b, 4, r.KeyPair.Private.Bytes())
	b = wire.AppendBytes(b, 5, r.KeyPair.Public.b)
	b = wire.AppendBytes(b, 6, r.Signature)
	if r.LastResort {
		b = wire.AppendUint(b, 7, 1)
	}
	return b
}

// ParseKyberPreKeyRecord decodes KyberPreKeyRecord.Marshal's output.
func ParseKyberPreKeyRecord(b []byte) (KyberPreKeyRecord, error) {
	var r KyberPreKeyRecord
	fs, err := recordFields(b, 7)
	if err != nil {
		return r, err
	}
	id, err1 := fs[2].Uint32()
	ts, err2 := fs[3].Uint64()
	priv, err3 := ParseKEMPrivateKey(fs[4].Bytes)
	pub, err4 := ParseKEMPublicKey(fs[5].Bytes)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(fs[6].Bytes) != SignatureSize || ts > 1<<62 {
		return r, ErrInvalidRecord
	}
	r = KyberPreKeyRecord{ID: id, Timestamp: time.UnixMilli(int64(ts)),
		KeyPair: KEMKeyPair{Public: pub, Private: priv}, Signature: append([]byte(nil), fs[6].Bytes...)}
	if fs[7].Num != 0 {
		if r.LastResort, err = fs[7].Bool(); err != nil {
			return r, ErrInvalidRecord
		}
	}
	return r, nil
}

// recordFields reads a flat record whose fields 1..required-ish are
// present (field 1 is the format version); fields beyond the last
// required one may be absent. It returns the fields indexed by number.
func recordFields(b []byte, max int) ([]wire.Field, error) {
	fs := make([]wire.Field, max+1)
	r := wire.NewReader(b)
	for !r.Done() {
		f, err := r.Next()
		if err != nil || int(f.Num) > max {
			return nil, ErrInvalidRecord
		}
		fs[f.Num] = f
	}
	v, err := fs[1].Uint32()
	if err != nil || v == 0 {
		return nil, ErrInvalidRecord
	}
	if v > prekeyRecordFormat {
		return nil, ErrRecordVersion
	}
	// Every field but the optional last flag of a Kyber record is required.
	for i := 2; i <= max; i++ {
		if fs[i].Num == 0 && !(max == 7 && i == 7) {
			return nil, fmt.Errorf("%w: field %d missing", ErrInvalidRecord, i)
		}
	}
	return fs, nil
}
