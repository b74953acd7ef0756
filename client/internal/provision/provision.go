// Package provision carries what a new device needs from an existing one
// of the same account — the account's identity key, the account id and a
// one-time link token — through the server, which cannot read it.
//
// The new device draws an X25519 key pair and a 16-byte relay id and
// shows them as a code (text, and a QR code of the same text):
//
//	veil-link:<base64url(version 1 ‖ relay id 16 ‖ public key 32)>
//
// The existing device, given the code, seals a [Message] to that public
// key and leaves it on the server under the relay id; the new device
// fetches and opens it. Sealing is ephemeral-static X25519, HKDF-SHA256
// (salt: both public keys; info: "veil provisioning v1" ‖ relay id) and
// AES-256-GCM with the version and relay id as associated data:
//
//	sealed = version 1 ‖ ephemeral public key 32 ‖ nonce 12 ‖ ciphertext+tag
//
// Whoever does not hold the code's private key (the server included)
// can neither read the message nor change it undetected. The code is the
// secret that authorises the link: it should pass only between the
// user's own two screens.
package provision

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

const (
	version    = 1
	prefix     = "veil-link:"
	idSize     = 16
	keySize    = 32
	nonceSize  = 12
	maxField   = 1024
	info       = "veil provisioning v1"
	sealedHead = 1 + keySize + nonceSize
)

// ErrInvalid is returned for a malformed code or a sealed message that
// does not open (wrong key, tampered, truncated).
var ErrInvalid = errors.New("provision: invalid")

// Code is what the new device shows.
type Code struct {
	ID     [idSize]byte
	Public [keySize]byte
}

// NewCode draws a relay id and a key pair for a new device.
func NewCode(rand io.Reader) (Code, *ecdh.PrivateKey, error) {
	var c Code
	if _, err := io.ReadFull(rand, c.ID[:]); err != nil {
		return Code{}, nil, err
	}
	priv, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return Code{}, nil, err
	}
	copy(c.Public[:], priv.PublicKey().Bytes())
	return c, priv, nil
}

// String is the code as text.
func (c Code) String() string {
	b := append([]byte{version}, c.ID[:]...)
	return prefix + base64.RawURLEncoding.EncodeToString(append(b, c.Public[:]...))
}

// RelayID is the relay id as it appears in the server's path.
func (c Code) RelayID() string { return base64.RawURLEncoding.EncodeToString(c.ID[:]) }

// ParseCode reads a code (surrounding spaces are ignored).
func ParseCode(s string) (Code, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, prefix) {
		return Code{}, fmt.Errorf("%w: a link code starts with %q", ErrInvalid, prefix)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(prefix):])
	if err != nil || len(b) != 1+idSize+keySize {
		return Code{}, fmt.Errorf("%w: the link code is damaged (copy it again)", ErrInvalid)
	}
	if b[0] != version {
		return Code{}, fmt.Errorf("%w: link code version %d (this program knows %d)", ErrInvalid, b[0], version)
	}
	var c Code
	copy(c.ID[:], b[1:])
	copy(c.Public[:], b[1+idSize:])
	if _, err := ecdh.X25519().NewPublicKey(c.Public[:]); err != nil {
		return Code{}, fmt.Errorf("%w: the link code's key", ErrInvalid)
	}
	return c, nil
}

// Message is what the existing device gives the new one.
type Message struct {
	AccountID       string
	Username        string
	Server          string
	IdentityPrivate []byte // the account's identity private key, 32 bytes
	LinkToken       []byte // one-time token from the server for adding a device
	// HistoryID and HistoryKey name the encrypted history archive the
	// existing device left on the server (a blob) and the key that opens
	// it; both empty when there is none.
	HistoryID  []byte // 16 bytes
	HistoryKey []byte // 32 bytes
	// ProfileKey is the account's profile key (32 bytes; its access key
	// opens sealed delivery); empty from devices that have none.
	ProfileKey []byte
}

func (m Message) marshal() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	var b []byte
	for i, f := range [][]byte{[]byte(m.AccountID), []byte(m.Username), []byte(m.Server), m.IdentityPrivate, m.LinkToken, m.HistoryID, m.HistoryKey, m.ProfileKey} {
		if i >= 5 && len(f) == 0 {
			continue
		}
		b = protowire.AppendTag(b, protowire.Number(i+1), protowire.BytesType)
		b = protowire.AppendBytes(b, f)
	}
	return b, nil
}

func unmarshal(b []byte) (Message, error) {
	var m Message
	seen := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return Message{}, fmt.Errorf("%w: message field", ErrInvalid)
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return Message{}, fmt.Errorf("%w: message field", ErrInvalid)
		}
		b = b[n:]
		if num < 1 || num > 8 || seen&(1<<num) != 0 {
			return Message{}, fmt.Errorf("%w: message field %d", ErrInvalid, num)
		}
		seen |= 1 << num
		switch num {
		case 1:
			m.AccountID = string(v)
		case 2:
			m.Username = string(v)
		case 3:
			m.Server = string(v)
		case 4:
			m.IdentityPrivate = append([]byte(nil), v...)
		case 5:
			m.LinkToken = append([]byte(nil), v...)
		case 6:
			m.HistoryID = append([]byte(nil), v...)
		case 7:
			m.HistoryKey = append([]byte(nil), v...)
		case 8:
			m.ProfileKey = append([]byte(nil), v...)
		}
	}
	return m, m.validate()
}

func (m Message) validate() error {
	for _, s := range []string{m.AccountID, m.Username, m.Server} {
		if s == "" || len(s) > maxField || !utf8.ValidString(s) {
			return fmt.Errorf("%w: message text field", ErrInvalid)
		}
	}
	if len(m.IdentityPrivate) != keySize || len(m.LinkToken) == 0 || len(m.LinkToken) > maxField {
		return fmt.Errorf("%w: message key or token", ErrInvalid)
	}
	if (len(m.HistoryID) != 0 || len(m.HistoryKey) != 0) && (len(m.HistoryID) != idSize || len(m.HistoryKey) != keySize) {
		return fmt.Errorf("%w: history reference", ErrInvalid)
	}
	if len(m.ProfileKey) != 0 && len(m.ProfileKey) != keySize {
		return fmt.Errorf("%w: profile key", ErrInvalid)
	}
	return nil
}

func key(shared, ephPub []byte, c Code) ([]byte, error) {
	salt := append(append([]byte{}, ephPub...), c.Public[:]...)
	return hkdf.Key(sha256.New, shared, salt, info+string(c.ID[:]), 32)
}

func aead(k []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// Seal encrypts m to the device that shows code.
func Seal(rand io.Reader, code Code, m Message) ([]byte, error) {
	pt, err := m.marshal()
	if err != nil {
		return nil, err
	}
	peer, err := ecdh.X25519().NewPublicKey(code.Public[:])
	if err != nil {
		return nil, fmt.Errorf("%w: code key", ErrInvalid)
	}
	eph, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: code key", ErrInvalid)
	}
	k, err := key(shared, eph.PublicKey().Bytes(), code)
	if err != nil {
		return nil, err
	}
	g, err := aead(k)
	if err != nil {
		return nil, err
	}
	out := append([]byte{version}, eph.PublicKey().Bytes()...)
	nonce := make([]byte, nonceSize)
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return g.Seal(out, nonce, pt, append([]byte{version}, code.ID[:]...)), nil
}

// Open decrypts a sealed message with the code's private key.
func Open(priv *ecdh.PrivateKey, code Code, sealed []byte) (Message, error) {
	if len(sealed) < sealedHead+16 || sealed[0] != version {
		return Message{}, fmt.Errorf("%w: sealed message", ErrInvalid)
	}
	eph, err := ecdh.X25519().NewPublicKey(sealed[1 : 1+keySize])
	if err != nil {
		return Message{}, fmt.Errorf("%w: sealed message key", ErrInvalid)
	}
	shared, err := priv.ECDH(eph)
	if err != nil {
		return Message{}, fmt.Errorf("%w: sealed message key", ErrInvalid)
	}
	k, err := key(shared, eph.Bytes(), code)
	if err != nil {
		return Message{}, err
	}
	g, err := aead(k)
	if err != nil {
		return Message{}, err
	}
	pt, err := g.Open(nil, sealed[1+keySize:sealedHead], sealed[sealedHead:], append([]byte{version}, code.ID[:]...))
	if err != nil {
		return Message{}, fmt.Errorf("%w: the message does not open (wrong code, or changed on the way)", ErrInvalid)
	}
	return unmarshal(pt)
}
