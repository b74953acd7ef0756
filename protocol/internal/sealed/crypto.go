package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/subtle"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/veil-e2ee/veil/protocol/internal/curve"
	"github.com/veil-e2ee/veil/protocol/internal/primitives"
)

// Key pairs here are X25519 private scalars and libsignal's 33-byte public
// keys (0x05 ‖ u).

// Identity is a long-term key pair (ours).
type Identity struct {
	Private [32]byte
	Public  [KeySize]byte
}

func dh(dst, priv *[32]byte, pub *[KeySize]byte) error {
	if err := curve.X25519(dst, priv, (*[32]byte)(pub[1:])); err != nil {
		return ErrDecrypt
	}
	return nil
}

// staticCache remembers agreements between two identity keys: v1 and v2
// both need DH(sender identity, recipient identity), which is the same for
// every message between the same two identities, and an X25519 costs as
// much as everything else in a sealed message together. Entries are keyed
// by both public keys (the private key is a function of ours, up to
// clamping, which does not change the result); the cache is bounded and
// dropped wholesale when full. It holds secrets: each is as sensitive as
// the identity key it came from, which the process holds anyway.
var staticCache = struct {
	sync.Mutex
	m map[[64]byte][32]byte
}{m: map[[64]byte][32]byte{}}

const staticCacheMax = 1 << 14

// StaticAgreement is DH(our identity, their identity key), cached.
func StaticAgreement(ours *Identity, theirs *[KeySize]byte) ([32]byte, error) {
	var k [64]byte
	copy(k[:32], ours.Public[1:])
	copy(k[32:], theirs[1:])
	staticCache.Lock()
	s, ok := staticCache.m[k]
	staticCache.Unlock()
	if ok {
		return s, nil
	}
	if err := dh(&s, &ours.Private, theirs); err != nil {
		return s, err
	}
	staticCache.Lock()
	if len(staticCache.m) >= staticCacheMax {
		clear(staticCache.m)
	}
	staticCache.m[k] = s
	staticCache.Unlock()
	return s, nil
}

// --- v1 ---

var v1SaltPrefix = []byte("UnidentifiedDelivery")

const v1MACSize = 10

// v1EphemeralKeys derives (chain, cipher, MAC) keys from the agreement
// between the ephemeral key and the recipient's identity.
func v1EphemeralKeys(agreement *[32]byte, recipient, ephemeral *[KeySize]byte) (chain, cipherKey, macKey [32]byte) {
	salt := make([]byte, 0, len(v1SaltPrefix)+2*KeySize)
	salt = append(append(append(salt, v1SaltPrefix...), recipient[:]...), ephemeral[:]...)
	var out [96]byte
	primitives.HKDF(out[:], agreement[:], salt, nil)
	copy(chain[:], out[:32])
	copy(cipherKey[:], out[32:64])
	copy(macKey[:], out[64:])
	clear(out[:])
	return
}

// v1StaticKeys derives the (cipher, MAC) keys for the message from the
// identities' agreement, salted with the chain key and the encrypted
// sender identity (96 bytes are derived and the first 32 dropped, as
// libsignal does).
func v1StaticKeys(agreement, chain *[32]byte, encryptedStatic []byte) (cipherKey, macKey [32]byte) {
	salt := make([]byte, 0, 32+len(encryptedStatic))
	salt = append(append(salt, chain[:]...), encryptedStatic...)
	var out [96]byte
	primitives.HKDF(out[:], agreement[:], salt, nil)
	copy(cipherKey[:], out[32:64])
	copy(macKey[:], out[64:])
	clear(out[:])
	return
}

// ctrHMACSeal appends AES-256-CTR(zero IV) of pt and the first 10 bytes
// of HMAC-SHA256 over the ciphertext.
func ctrHMACSeal(dst []byte, cipherKey, macKey *[32]byte, pt []byte) []byte {
	b, _ := aes.NewCipher(cipherKey[:])
	var iv [16]byte
	n := len(dst)
	dst = append(dst, make([]byte, len(pt))...)
	cipher.NewCTR(b, iv[:]).XORKeyStream(dst[n:], pt)
	var mac [32]byte
	primitives.HMACSHA256(mac[:0], macKey[:], dst[n:])
	return append(dst, mac[:v1MACSize]...)
}

// ctrHMACOpen checks the truncated MAC and decrypts.
func ctrHMACOpen(cipherKey, macKey *[32]byte, ct []byte) ([]byte, error) {
	if len(ct) < v1MACSize {
		return nil, ErrDecrypt
	}
	body, tag := ct[:len(ct)-v1MACSize], ct[len(ct)-v1MACSize:]
	var mac [32]byte
	primitives.HMACSHA256(mac[:0], macKey[:], body)
	if !hmac.Equal(mac[:v1MACSize], tag) {
		return nil, ErrDecrypt
	}
	b, _ := aes.NewCipher(cipherKey[:])
	var iv [16]byte
	pt := make([]byte, len(body))
	cipher.NewCTR(b, iv[:]).XORKeyStream(pt, body)
	return pt, nil
}

// SealV1 wraps usmc for the holder of recipient with sealed sender v1:
// 0x11 ‖ UnidentifiedSenderMessage{ephemeralPublic, encryptedStatic,
// encryptedMessage}. ephemeral is a fresh private scalar.
func SealV1(ours *Identity, recipient *[KeySize]byte, ephemeral *[32]byte, usmc []byte) ([]byte, error) {
	var ephPub [KeySize]byte
	ephPub[0] = 0x05
	curve.PublicKey((*[32]byte)(ephPub[1:]), ephemeral)
	var a1 [32]byte
	if err := dh(&a1, ephemeral, recipient); err != nil {
		return nil, err
	}
	chain, ck, mk := v1EphemeralKeys(&a1, recipient, &ephPub)
	clear(a1[:])
	encStatic := ctrHMACSeal(make([]byte, 0, KeySize+v1MACSize), &ck, &mk, ours.Public[:])
	a2, err := StaticAgreement(ours, recipient)
	if err != nil {
		return nil, err
	}
	ck, mk = v1StaticKeys(&a2, &chain, encStatic)
	clear(a2[:])
	encMsg := ctrHMACSeal(make([]byte, 0, len(usmc)+v1MACSize), &ck, &mk, usmc)
	clear(ck[:])
	clear(mk[:])
	out := make([]byte, 0, 1+2+KeySize+2+len(encStatic)+4+len(encMsg))
	out = append(out, V1Version)
	out = appendBytes(out, 1, ephPub[:])
	out = appendBytes(out, 2, encStatic)
	return appendBytes(out, 3, encMsg), nil
}

// OpenV1 removes the v1 layer: it returns the sender's identity key (as
// the sender encrypted it) and the USMC bytes. body includes the version
// byte.
func OpenV1(ours *Identity, body []byte) (sender [KeySize]byte, usmc []byte, err error) {
	if len(body) == 0 {
		return sender, nil, ErrMalformed
	}
	var eph [KeySize]byte
	var encStatic, encMsg []byte
	var haveEph, haveStatic, haveMsg bool
	err = visit(body[1:], func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) (bool, error) {
		var err error
		switch num {
		case 1:
			err = ecKey(typ, data, &eph)
			haveEph = true
		case 2:
			encStatic, err = bytesField(typ, data)
			haveStatic = true
		case 3:
			encMsg, err = bytesField(typ, data)
			haveMsg = true
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil || !haveEph || !haveStatic || !haveMsg {
		return sender, nil, ErrMalformed
	}
	var a1 [32]byte
	if err := dh(&a1, &ours.Private, &eph); err != nil {
		return sender, nil, err
	}
	chain, ck, mk := v1EphemeralKeys(&a1, &ours.Public, &eph)
	clear(a1[:])
	st, err := ctrHMACOpen(&ck, &mk, encStatic)
	if err != nil {
		return sender, nil, err
	}
	if len(st) != KeySize || st[0] != 0x05 {
		return sender, nil, ErrDecrypt
	}
	copy(sender[:], st)
	a2, err := StaticAgreement(ours, &sender)
	if err != nil {
		return sender, nil, err
	}
	ck, mk = v1StaticKeys(&a2, &chain, encStatic)
	clear(a2[:])
	usmc, err = ctrHMACOpen(&ck, &mk, encMsg)
	clear(ck[:])
	clear(mk[:])
	return sender, usmc, err
}

// --- v2 ---

var (
	labelR   = []byte("Sealed Sender v2: r (2023-08)")
	labelK   = []byte("Sealed Sender v2: K")
	labelDH  = []byte("Sealed Sender v2: DH")
	labelDHS = []byte("Sealed Sender v2: DH-sender")
)

// v2Derive derives the ephemeral key pair E and the AES-GCM-SIV key K
// from the message secret M.
func v2Derive(m *[32]byte) (ePriv [32]byte, ePub [KeySize]byte, k [32]byte) {
	primitives.HKDF(ePriv[:], m[:], nil, labelR)
	ePub[0] = 0x05
	curve.PublicKey((*[32]byte)(ePub[1:]), &ePriv)
	primitives.HKDF(k[:], m[:], nil, labelK)
	return
}

// v2KeyXOR is M ⊕ HKDF(DH(E, recipient) ‖ E ‖ recipient, "DH"): C_i from M
// when sending, M from C_i when receiving (agreement is the same DH seen
// from either side).
func v2KeyXOR(dst *[32]byte, agreement *[32]byte, ePub, recipient *[KeySize]byte, in []byte) {
	var ikm [32 + 2*KeySize]byte
	copy(ikm[:], agreement[:])
	copy(ikm[32:], ePub[:])
	copy(ikm[32+KeySize:], recipient[:])
	primitives.HKDF(dst[:], ikm[:], nil, labelDH)
	clear(ikm[:])
	subtle.XORBytes(dst[:], dst[:], in)
}

// v2AuthTag is AT_i: HKDF(DH(sender, recipient) ‖ E ‖ C_i ‖ sender ‖
// recipient, "DH-sender"), 16 bytes.
func v2AuthTag(dst *[AuthTagSize]byte, agreement *[32]byte, ePub *[KeySize]byte, c []byte, sender, recipient *[KeySize]byte) {
	var ikm [32 + KeySize + MessageKeySize + 2*KeySize]byte
	i := copy(ikm[:], agreement[:])
	i += copy(ikm[i:], ePub[:])
	i += copy(ikm[i:], c)
	i += copy(ikm[i:], sender[:])
	copy(ikm[i:], recipient[:])
	primitives.HKDF(dst[:], ikm[:], nil, labelDHS)
	clear(ikm[:])
}

// V2Device is one device of a v2 recipient.
type V2Device struct {
	DeviceID       uint8
	RegistrationID uint16 // at most 14 bits
}

// V2Recipient is one recipient (ServiceId) of a v2 message.
type V2Recipient struct {
	Kind     byte
	UUID     [16]byte
	Identity [KeySize]byte
	Devices  []V2Device // at least one
}

// V2Sealer builds a v2 message: NewV2Sealer encrypts the USMC once,
// Recipient computes one recipient's key material (safe to call from
// several goroutines, each with its own destination buffer), and the
// caller assembles the result with AppendV2Header / the returned parts.
type V2Sealer struct {
	ours       *Identity
	m          [32]byte
	ePriv      [32]byte
	ePub       [KeySize]byte
	Ciphertext []byte // AES-GCM-SIV(K, USMC) ‖ tag
}

// NewV2Sealer derives E and K from the fresh 32-byte secret m and encrypts
// usmc.
func NewV2Sealer(ours *Identity, m *[32]byte, usmc []byte) *V2Sealer {
	s := &V2Sealer{ours: ours, m: *m}
	var k [32]byte
	s.ePriv, s.ePub, k = v2Derive(m)
	var nonce [12]byte
	s.Ciphertext = SIVSeal(make([]byte, 0, len(usmc)+SIVTagSize), &k, nonce[:], nil, usmc)
	clear(k[:])
	return s
}

// Clear forgets the secrets.
func (s *V2Sealer) Clear() {
	clear(s.m[:])
	clear(s.ePriv[:])
}

// EPublic is E's public key without the type byte, as the message carries it.
func (s *V2Sealer) EPublic() []byte { return s.ePub[1:] }

// AppendRecipient appends r's entry: ServiceId (17 bytes for 0x23), its
// devices, C_i and AT_i.
func (s *V2Sealer) AppendRecipient(dst []byte, r *V2Recipient) ([]byte, error) {
	dst = append(dst, r.Kind)
	dst = append(dst, r.UUID[:]...)
	for i, d := range r.Devices {
		reg := d.RegistrationID & RegistrationIDMask
		if i < len(r.Devices)-1 {
			reg |= hasMoreDevices
		}
		dst = append(dst, d.DeviceID, byte(reg>>8), byte(reg))
	}
	var a [32]byte
	if err := dh(&a, &s.ePriv, &r.Identity); err != nil {
		return nil, err
	}
	var c [32]byte
	v2KeyXOR(&c, &a, &s.ePub, &r.Identity, s.m[:])
	clear(a[:])
	st, err := StaticAgreement(s.ours, &r.Identity)
	if err != nil {
		return nil, err
	}
	var at [AuthTagSize]byte
	v2AuthTag(&at, &st, &s.ePub, c[:], &s.ours.Public, &r.Identity)
	clear(st[:])
	dst = append(dst, c[:]...)
	return append(dst, at[:]...), nil
}

// V2RecipientSize is the size of a recipient's entry with n devices.
func V2RecipientSize(n int) int { return serviceIDSize + 3*n + MessageKeySize + AuthTagSize }

// V2Opened is a received v2 message with its layer removed; the tag can
// be checked only once the USMC names the sender (CheckSender).
type V2Opened struct {
	USMC []byte
	ePub [KeySize]byte
	c    [MessageKeySize]byte
	at   [AuthTagSize]byte
}

// OpenV2 removes a received v2 layer (0x2? ‖ C ‖ AT ‖ E ‖ ciphertext).
func OpenV2(ours *Identity, body []byte) (*V2Opened, error) {
	const prefix = 1 + MessageKeySize + AuthTagSize + X25519Size
	if len(body) < prefix {
		return nil, ErrMalformed
	}
	o := &V2Opened{}
	copy(o.c[:], body[1:])
	copy(o.at[:], body[1+MessageKeySize:])
	o.ePub[0] = 0x05
	copy(o.ePub[1:], body[1+MessageKeySize+AuthTagSize:])
	var a [32]byte
	if err := dh(&a, &ours.Private, &o.ePub); err != nil {
		return nil, err
	}
	var m [32]byte
	v2KeyXOR(&m, &a, &o.ePub, &ours.Public, o.c[:])
	clear(a[:])
	_, ePub, k := v2Derive(&m)
	clear(m[:])
	if subtle.ConstantTimeCompare(ePub[:], o.ePub[:]) != 1 {
		clear(k[:])
		return nil, ErrDecrypt
	}
	var nonce [12]byte
	usmc, err := SIVOpen(nil, &k, nonce[:], nil, body[prefix:])
	clear(k[:])
	if err != nil {
		return nil, err
	}
	o.USMC = usmc
	return o, nil
}

// CheckSender verifies AT against the sender identity key the USMC's
// certificate names: only the holder of that identity could have made it.
func (o *V2Opened) CheckSender(ours *Identity, sender *[KeySize]byte) error {
	st, err := StaticAgreement(ours, sender)
	if err != nil {
		return err
	}
	var at [AuthTagSize]byte
	v2AuthTag(&at, &st, &o.ePub, o.c[:], sender, &ours.Public)
	clear(st[:])
	if subtle.ConstantTimeCompare(at[:], o.at[:]) != 1 {
		return ErrDecrypt
	}
	return nil
}

// ForgetStaticAgreements empties the agreement cache (for benchmarks of
// the cold path, and for tests).
func ForgetStaticAgreements() {
	staticCache.Lock()
	clear(staticCache.m)
	staticCache.Unlock()
}
