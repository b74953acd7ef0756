package interop

import (
	"encoding/json"
	"fmt"
)

// Message types, as libsignal's CiphertextMessageType numbers them.
const (
	MessageTypeWhisper = 2 // a SignalMessage, on an established session
	MessageTypePreKey  = 3 // a PreKeySignalMessage, until the first reply arrives
)

// Identity is a device's public identity.
type Identity struct {
	IdentityKey    []byte `json:"identityKey"` // 33 bytes: 0x05 ‖ X25519 public key
	RegistrationID uint32 `json:"registrationId"`
}

// CreateOptions tune [Peer.CreateWith].
type CreateOptions struct {
	// RegistrationID is the device's registration id; 0 picks a random one.
	RegistrationID uint32
	// IdentityPrivate, if set, is the 32-byte X25519 private key to use as the
	// identity key, so that a test can reproduce a fixed identity.
	IdentityPrivate []byte
	// Replace reinstalls a device that already exists: new stores, new (or
	// the given) identity. Without it, creating an existing device fails.
	Replace bool
}

// Create adds a device with fresh stores and a new identity key pair.
func (p *Peer) Create(device string, regID uint32) (Identity, error) {
	return p.CreateWith(device, CreateOptions{RegistrationID: regID})
}

// CreateWith adds (or, with Replace, reinstalls) a device.
func (p *Peer) CreateWith(device string, o CreateOptions) (Identity, error) {
	req := struct {
		Device          string `json:"device"`
		RegistrationID  uint32 `json:"registrationId,omitempty"`
		IdentityPrivate []byte `json:"identityPrivate,omitempty"`
		Replace         bool   `json:"replace,omitempty"`
	}{device, o.RegistrationID, o.IdentityPrivate, o.Replace}
	var id Identity
	err := p.Call("create", req, &id)
	return id, err
}

// Bundle is a device's public prekey bundle, in libsignal's serialized forms:
// EC keys are 33 bytes (0x05 ‖ X25519), the Kyber key is 1,569 bytes
// (0x08 ‖ Kyber1024 round 3), signatures are 64-byte XEdDSA over the
// serialized key. PreKey is empty when the bundle has no one-time prekey.
type Bundle struct {
	RegistrationID        uint32
	DeviceID              uint32
	IdentityKey           []byte
	PreKeyID              uint32 // meaningful only when PreKey is not empty
	PreKey                []byte
	SignedPreKeyID        uint32
	SignedPreKey          []byte
	SignedPreKeySignature []byte
	KyberPreKeyID         uint32
	KyberPreKey           []byte
	KyberPreKeySignature  []byte
}

// bundleJSON is the wire form: preKeyId and preKey are absent together.
type bundleJSON struct {
	RegistrationID        uint32  `json:"registrationId"`
	DeviceID              uint32  `json:"deviceId"`
	IdentityKey           []byte  `json:"identityKey"`
	PreKeyID              *uint32 `json:"preKeyId,omitempty"`
	PreKey                []byte  `json:"preKey,omitempty"`
	SignedPreKeyID        uint32  `json:"signedPreKeyId"`
	SignedPreKey          []byte  `json:"signedPreKey"`
	SignedPreKeySignature []byte  `json:"signedPreKeySignature"`
	KyberPreKeyID         uint32  `json:"kyberPreKeyId"`
	KyberPreKey           []byte  `json:"kyberPreKey"`
	KyberPreKeySignature  []byte  `json:"kyberPreKeySignature"`
}

// MarshalJSON writes the peer's wire form.
func (b Bundle) MarshalJSON() ([]byte, error) {
	w := bundleJSON{
		RegistrationID: b.RegistrationID, DeviceID: b.DeviceID, IdentityKey: b.IdentityKey,
		SignedPreKeyID: b.SignedPreKeyID, SignedPreKey: b.SignedPreKey, SignedPreKeySignature: b.SignedPreKeySignature,
		KyberPreKeyID: b.KyberPreKeyID, KyberPreKey: b.KyberPreKey, KyberPreKeySignature: b.KyberPreKeySignature,
	}
	if len(b.PreKey) > 0 {
		id := b.PreKeyID
		w.PreKeyID, w.PreKey = &id, b.PreKey
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the peer's wire form.
func (b *Bundle) UnmarshalJSON(data []byte) error {
	var w bundleJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if hasID, hasKey := w.PreKeyID != nil, len(w.PreKey) > 0; hasID != hasKey {
		return fmt.Errorf("%w: bundle has only one of preKeyId and preKey", ErrProtocol)
	}
	*b = Bundle{
		RegistrationID: w.RegistrationID, DeviceID: w.DeviceID, IdentityKey: w.IdentityKey,
		SignedPreKeyID: w.SignedPreKeyID, SignedPreKey: w.SignedPreKey, SignedPreKeySignature: w.SignedPreKeySignature,
		KyberPreKeyID: w.KyberPreKeyID, KyberPreKey: w.KyberPreKey, KyberPreKeySignature: w.KyberPreKeySignature,
	}
	if w.PreKeyID != nil {
		b.PreKeyID, b.PreKey = *w.PreKeyID, w.PreKey
	}
	return nil
}

// BundlePrivate holds the private halves of a bundle, exported on request so
// that a test can check key derivation step by step. Test data only.
type BundlePrivate struct {
	IdentityKey  []byte `json:"identityKey"`  // 32-byte X25519 private key
	PreKey       []byte `json:"preKey"`       // nil without a one-time prekey
	SignedPreKey []byte `json:"signedPreKey"` // 32-byte X25519 private key
	KyberPreKey  []byte `json:"kyberPreKey"`  // 3,169 bytes: 0x08 ‖ Kyber1024 secret key
}

// BundleOptions describe the bundle [Peer.BundleWith] generates.
type BundleOptions struct {
	DeviceID       uint32 // the device id the bundle advertises
	PreKeyID       uint32
	SignedPreKeyID uint32
	KyberPreKeyID  uint32
	WithPreKey     bool // include a one-time EC prekey
	// KyberOneTime makes the Kyber prekey one-time (deleted once used)
	// instead of last-resort (kept).
	KyberOneTime bool
	// ExportPrivate also returns the private halves.
	ExportPrivate bool
}

// Bundle generates a signed prekey, a Kyber prekey (last-resort) and, if
// withPreKey, a one-time prekey; stores their private halves in the device
// and returns the public bundle. Reusing an id replaces the stored key.
func (p *Peer) Bundle(device string, deviceID, preKeyID, signedPreKeyID, kyberPreKeyID uint32, withPreKey bool) (Bundle, error) {
	b, _, err := p.BundleWith(device, BundleOptions{
		DeviceID: deviceID, PreKeyID: preKeyID, SignedPreKeyID: signedPreKeyID,
		KyberPreKeyID: kyberPreKeyID, WithPreKey: withPreKey,
	})
	return b, err
}

// BundleWith is [Peer.Bundle] with every option. The BundlePrivate is zero
// unless o.ExportPrivate is set.
func (p *Peer) BundleWith(device string, o BundleOptions) (Bundle, BundlePrivate, error) {
	req := struct {
		Device         string `json:"device"`
		DeviceID       uint32 `json:"deviceId"`
		PreKeyID       uint32 `json:"preKeyId"`
		SignedPreKeyID uint32 `json:"signedPreKeyId"`
		KyberPreKeyID  uint32 `json:"kyberPreKeyId"`
		WithPreKey     bool   `json:"withPreKey"`
		KyberOneTime   bool   `json:"kyberOneTime,omitempty"`
		ExportPrivate  bool   `json:"exportPrivate,omitempty"`
	}{device, o.DeviceID, o.PreKeyID, o.SignedPreKeyID, o.KyberPreKeyID, o.WithPreKey, o.KyberOneTime, o.ExportPrivate}
	var raw json.RawMessage
	if err := p.Call("bundle", req, &raw); err != nil {
		return Bundle{}, BundlePrivate{}, err
	}
	var b Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return Bundle{}, BundlePrivate{}, fmt.Errorf("%w: bundle: %v", ErrProtocol, err)
	}
	var priv struct {
		Private BundlePrivate `json:"private"`
	}
	if err := json.Unmarshal(raw, &priv); err != nil {
		return Bundle{}, BundlePrivate{}, fmt.Errorf("%w: bundle: %v", ErrProtocol, err)
	}
	return b, priv.Private, nil
}

// remoteReq addresses a remote party from a device.
type remoteReq struct {
	Device   string `json:"device"`
	Name     string `json:"name"`
	DeviceID uint32 `json:"deviceId"`
}

// ProcessBundle starts a session from device to (name, deviceID) with a
// bundle (libsignal's processPreKeyBundle). It fails with
// [CodeUntrustedIdentity] if the bundle's identity differs from a known one.
func (p *Peer) ProcessBundle(device, name string, deviceID uint32, b Bundle) error {
	req := struct {
		remoteReq
		Bundle Bundle `json:"bundle"`
	}{remoteReq{device, name, deviceID}, b}
	return p.Call("process_bundle", req, nil)
}

// Message is an encrypted Signal message.
type Message struct {
	Type int    `json:"type"` // [MessageTypeWhisper] or [MessageTypePreKey]
	Body []byte `json:"body"` // the serialized message, version byte first
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Encrypt encrypts pt from device to (name, deviceID) (signalEncrypt).
func (p *Peer) Encrypt(device, name string, deviceID uint32, pt []byte) (Message, error) {
	req := struct {
		remoteReq
		Plaintext []byte `json:"plaintext"`
	}{remoteReq{device, name, deviceID}, nonNil(pt)}
	var m Message
	err := p.Call("encrypt", req, &m)
	return m, err
}

// EncryptMany encrypts several plaintexts in order in one round trip.
func (p *Peer) EncryptMany(device, name string, deviceID uint32, pts [][]byte) ([]Message, error) {
	in := make([][]byte, len(pts))
	for i, pt := range pts {
		in[i] = nonNil(pt)
	}
	req := struct {
		remoteReq
		Plaintexts [][]byte `json:"plaintexts"`
	}{remoteReq{device, name, deviceID}, in}
	var resp struct {
		Messages []Message `json:"messages"`
	}
	if err := p.Call("encrypt_many", req, &resp); err != nil {
		return nil, err
	}
	if len(resp.Messages) != len(pts) {
		return nil, fmt.Errorf("%w: encrypt_many returned %d messages for %d plaintexts", ErrProtocol, len(resp.Messages), len(pts))
	}
	return resp.Messages, nil
}

// Decrypt decrypts a message that device received from (name, deviceID)
// (signalDecrypt or signalDecryptPreKey by type). A rejected message is a
// [*PeerError] with libsignal's error name and text.
func (p *Peer) Decrypt(device, name string, deviceID uint32, m Message) ([]byte, error) {
	req := struct {
		remoteReq
		Type int    `json:"type"`
		Body []byte `json:"body"`
	}{remoteReq{device, name, deviceID}, m.Type, nonNil(m.Body)}
	var resp struct {
		Plaintext []byte `json:"plaintext"`
	}
	if err := p.Call("decrypt", req, &resp); err != nil {
		return nil, err
	}
	return nonNil(resp.Plaintext), nil
}

// DecryptResult is one outcome of [Peer.DecryptMany]: a plaintext, or Err (a
// [*PeerError]).
type DecryptResult struct {
	Plaintext []byte
	Err       error
}

// DecryptMany decrypts several messages in order in one round trip; one
// message failing does not stop the others.
func (p *Peer) DecryptMany(device, name string, deviceID uint32, ms []Message) ([]DecryptResult, error) {
	in := make([]Message, len(ms))
	for i, m := range ms {
		in[i] = Message{Type: m.Type, Body: nonNil(m.Body)}
	}
	req := struct {
		remoteReq
		Messages []Message `json:"messages"`
	}{remoteReq{device, name, deviceID}, in}
	var resp struct {
		Results []struct {
			Plaintext []byte  `json:"plaintext"`
			Error     *string `json:"error"`
			Code      string  `json:"code"`
		} `json:"results"`
	}
	if err := p.Call("decrypt_many", req, &resp); err != nil {
		return nil, err
	}
	if len(resp.Results) != len(ms) {
		return nil, fmt.Errorf("%w: decrypt_many returned %d results for %d messages", ErrProtocol, len(resp.Results), len(ms))
	}
	out := make([]DecryptResult, len(ms))
	for i, r := range resp.Results {
		if r.Error != nil {
			out[i].Err = &PeerError{Method: "decrypt_many", Code: r.Code, Message: *r.Error}
			continue
		}
		out[i].Plaintext = nonNil(r.Plaintext)
	}
	return out, nil
}

// SessionInfo describes device's session with a remote address.
type SessionInfo struct {
	Exists bool `json:"exists"`
	// Usable reports whether the current session can send (libsignal's
	// hasCurrentState).
	Usable bool `json:"usable"`
	// SessionVersion is the current session's version (4 for PQXDH), read
	// from the serialized record; 0 without a session.
	SessionVersion int `json:"sessionVersion"`
	// PQRatchet reports whether the current session record carries SPQR
	// state (a non-empty pq_ratchet_state). Two 0.90.0 devices negotiate
	// SPQR, so a libsignal-to-libsignal session has it.
	PQRatchet bool `json:"pqRatchet"`
}

// HasSession reports device's session state with (name, deviceID).
func (p *Peer) HasSession(device, name string, deviceID uint32) (SessionInfo, error) {
	var s SessionInfo
	err := p.Call("has_session", remoteReq{device, name, deviceID}, &s)
	return s, err
}

// ArchiveSession archives device's current session with (name, deviceID),
// as a client does before rebuilding a broken session.
func (p *Peer) ArchiveSession(device, name string, deviceID uint32) error {
	return p.Call("archive_session", remoteReq{device, name, deviceID}, nil)
}

// RemoteIdentity returns the identity key device has stored for
// (name, deviceID), or nil if it has none.
func (p *Peer) RemoteIdentity(device, name string, deviceID uint32) ([]byte, error) {
	var resp struct {
		IdentityKey []byte `json:"identityKey"`
	}
	err := p.Call("identity", remoteReq{device, name, deviceID}, &resp)
	return resp.IdentityKey, err
}

// TrustIdentity makes device accept key as (name, deviceID)'s identity, as a
// user does after a safety-number change.
func (p *Peer) TrustIdentity(device, name string, deviceID uint32, key []byte) error {
	req := struct {
		remoteReq
		IdentityKey []byte `json:"identityKey"`
	}{remoteReq{device, name, deviceID}, nonNil(key)}
	return p.Call("trust", req, nil)
}

// FingerprintInput is what a safety number is computed from.
type FingerprintInput struct {
	Version    int // 0 means 2 (ServiceId identifiers)
	Iterations int // 0 means 5,200
	LocalID    []byte
	LocalKey   []byte // 33-byte serialized identity key
	RemoteID   []byte
	RemoteKey  []byte
}

// Fingerprint computes libsignal's safety number: the 60-digit displayable
// string and the scannable (QR) encoding.
func (p *Peer) Fingerprint(in FingerprintInput) (displayable string, scannable []byte, err error) {
	req := struct {
		Version    int    `json:"version,omitempty"`
		Iterations int    `json:"iterations,omitempty"`
		LocalID    []byte `json:"localId"`
		LocalKey   []byte `json:"localKey"`
		RemoteID   []byte `json:"remoteId"`
		RemoteKey  []byte `json:"remoteKey"`
	}{in.Version, in.Iterations, nonNil(in.LocalID), nonNil(in.LocalKey), nonNil(in.RemoteID), nonNil(in.RemoteKey)}
	var resp struct {
		Displayable string `json:"displayable"`
		Scannable   []byte `json:"scannable"`
	}
	if err := p.Call("fingerprint", req, &resp); err != nil {
		return "", nil, err
	}
	return resp.Displayable, resp.Scannable, nil
}

// FingerprintCompare compares our scannable fingerprint with one scanned from
// the other party (libsignal's ScannableFingerprint.compare). A version
// mismatch is an error; different keys are a false result.
func (p *Peer) FingerprintCompare(local, remote []byte) (bool, error) {
	req := struct {
		Local  []byte `json:"local"`
		Remote []byte `json:"remote"`
	}{nonNil(local), nonNil(remote)}
	var resp struct {
		Match bool `json:"match"`
	}
	err := p.Call("fingerprint_compare", req, &resp)
	return resp.Match, err
}

// Sign signs msg with device's identity key (XEdDSA, randomized).
func (p *Peer) Sign(device string, msg []byte) ([]byte, error) {
	req := struct {
		Device  string `json:"device"`
		Message []byte `json:"message"`
	}{device, nonNil(msg)}
	var resp struct {
		Signature []byte `json:"signature"`
	}
	err := p.Call("sign", req, &resp)
	return resp.Signature, err
}

// Verify checks an XEdDSA signature by a 33-byte serialized public key.
func (p *Peer) Verify(pub, msg, sig []byte) (bool, error) {
	req := struct {
		PublicKey []byte `json:"publicKey"`
		Message   []byte `json:"message"`
		Signature []byte `json:"signature"`
	}{nonNil(pub), nonNil(msg), nonNil(sig)}
	var resp struct {
		Valid bool `json:"valid"`
	}
	err := p.Call("verify", req, &resp)
	return resp.Valid, err
}

// Bench operations for [Peer.Bench].
const (
	BenchSetup       = "setup"       // processPreKeyBundle + first encrypt + decryptPreKey
	BenchSameChain   = "same_chain"  // n encrypts by A, then n decrypts by B
	BenchAlternating = "alternating" // A→B, B→A, …: a DH ratchet step per message
	BenchSealedV1    = "sealed_v1"   // sealed sender v1 encrypt by A + decrypt (with certificate validation) by B
)

// Bench runs a libsignal-to-libsignal loop of n messages of size bytes inside
// Node (so the pipe is not measured) and returns messages (or setups) per
// second, counting an encrypt plus its decrypt as one.
func (p *Peer) Bench(op string, n, size int) (opsPerSec float64, err error) {
	req := struct {
		Op   string `json:"op"`
		N    int    `json:"n"`
		Size int    `json:"size"`
	}{op, n, size}
	var resp struct {
		Seconds   float64 `json:"seconds"`
		OpsPerSec float64 `json:"opsPerSec"`
	}
	if err := p.Call("bench", req, &resp); err != nil {
		return 0, err
	}
	return resp.OpsPerSec, nil
}

// Versions reports what the Node peer runs.
type Versions struct {
	Libsignal string `json:"libsignal"`
	Node      string `json:"node"`
}

// Version reports the libsignal and Node versions the peer loaded.
func (p *Peer) Version() (Versions, error) {
	var v Versions
	err := p.Call("version", nil, &v)
	return v, err
}
