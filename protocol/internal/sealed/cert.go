package sealed

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// KeySize is a serialized EC public key: 0x05 ‖ 32 bytes.
const KeySize = 33

// ServerCert is a decoded ServerCertificate: the serialized
// Certificate{id=1, key=2} and the trust root's signature over it.
type ServerCert struct {
	Raw         []byte // the whole serialized certificate
	Certificate []byte // the signed bytes
	Signature   []byte
	KeyID       uint32
	Key         [KeySize]byte
}

// signedPair decodes the outer {certificate=1, signature=2} both
// certificate kinds share; both fields are required.
func signedPair(b []byte) (cert, sig []byte, err error) {
	var haveCert, haveSig bool
	err = visit(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) (bool, error) {
		var err error
		switch num {
		case 1:
			cert, err = bytesField(typ, data)
			haveCert = true
		case 2:
			sig, err = bytesField(typ, data)
			haveSig = true
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil || !haveCert || !haveSig {
		return nil, nil, ErrMalformed
	}
	return cert, sig, nil
}

func ecKey(typ protowire.Type, data []byte, dst *[KeySize]byte) error {
	if typ != protowire.BytesType || len(data) != KeySize || data[0] != 0x05 {
		return ErrMalformed
	}
	copy(dst[:], data)
	return nil
}

// ParseServerCert decodes a ServerCertificate (id and key required). The
// result aliases b.
func ParseServerCert(b []byte) (*ServerCert, error) {
	cert, sig, err := signedPair(b)
	if err != nil {
		return nil, err
	}
	c := &ServerCert{Raw: b, Certificate: cert, Signature: sig}
	var haveID, haveKey bool
	err = visit(cert, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) (bool, error) {
		var err error
		switch num {
		case 1:
			c.KeyID, err = u32(typ, v)
			haveID = true
		case 2:
			err = ecKey(typ, data, &c.Key)
			haveKey = true
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil || !haveID || !haveKey {
		return nil, ErrMalformed
	}
	return c, nil
}

// AppendServerCertBody appends the signed part of a server certificate,
// as libsignal writes it.
func AppendServerCertBody(dst []byte, keyID uint32, key []byte) []byte {
	dst = appendUint(dst, 1, uint64(keyID))
	return appendBytes(dst, 2, key)
}

// AppendSigned appends the outer {certificate, signature} message.
func AppendSigned(dst, cert, sig []byte) []byte {
	dst = appendBytes(dst, 1, cert)
	return appendBytes(dst, 2, sig)
}

// SenderCert is a decoded SenderCertificate.
type SenderCert struct {
	Raw         []byte
	Certificate []byte // the signed bytes
	Signature   []byte
	UUID        string // from uuidString, or uuidBytes formatted
	E164        string
	HasE164     bool
	DeviceID    uint32 // 1–127
	Expires     uint64 // milliseconds since the Unix epoch
	IdentityKey [KeySize]byte
	Signer      *ServerCert // embedded signer, or nil when SignerID is used
	SignerID    uint32      // a reference to a well-known server certificate
}

// ParseSenderCert decodes a SenderCertificate as libsignal does: device,
// expiration, identity key, one sender UUID form and one signer form are
// required (a message holding both forms of a oneof is refused; prost
// would keep the last). The result aliases b.
func ParseSenderCert(b []byte) (*SenderCert, error) {
	cert, sig, err := signedPair(b)
	if err != nil {
		return nil, err
	}
	c := &SenderCert{Raw: b, Certificate: cert, Signature: sig}
	var haveDevice, haveExpires, haveKey, haveUUID, haveSigner bool
	err = visit(cert, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) (bool, error) {
		var err error
		switch num {
		case 1:
			c.E164, err = stringField(typ, data)
			c.HasE164 = true
		case 2:
			c.DeviceID, err = u32(typ, v)
			if c.DeviceID == 0 || c.DeviceID > maxDeviceID {
				err = ErrMalformed
			}
			haveDevice = true
		case 3:
			if typ != protowire.Fixed64Type {
				return true, ErrMalformed
			}
			c.Expires = v
			haveExpires = true
		case 4:
			err = ecKey(typ, data, &c.IdentityKey)
			haveKey = true
		case 5, 8:
			if haveSigner {
				return true, ErrMalformed
			}
			haveSigner = true
			if num == 5 {
				var raw []byte
				if raw, err = bytesField(typ, data); err == nil {
					c.Signer, err = ParseServerCert(raw)
				}
			} else {
				c.SignerID, err = u32(typ, v)
			}
		case 6, 7:
			if haveUUID {
				return true, ErrMalformed
			}
			haveUUID = true
			if num == 6 {
				c.UUID, err = stringField(typ, data)
			} else if typ != protowire.BytesType || len(data) != 16 {
				err = ErrMalformed
			} else {
				c.UUID = FormatUUID([16]byte(data))
			}
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil || !haveDevice || !haveExpires || !haveKey || !haveUUID || !haveSigner {
		return nil, ErrMalformed
	}
	return c, nil
}

// SenderCertBody is what a server signs into a sender certificate.
type SenderCertBody struct {
	UUID        string
	E164        string // omitted when empty
	DeviceID    uint32
	Expires     uint64
	IdentityKey []byte
	Signer      []byte // the serialized server certificate
}

// AppendSenderCertBody appends the signed part of a sender certificate in
// libsignal's field order (the UUID as a string, the signer embedded).
func AppendSenderCertBody(dst []byte, s *SenderCertBody) []byte {
	if s.E164 != "" {
		dst = appendBytes(dst, 1, []byte(s.E164))
	}
	dst = appendUint(dst, 2, uint64(s.DeviceID))
	dst = appendFixed64(dst, 3, s.Expires)
	dst = appendBytes(dst, 4, s.IdentityKey)
	dst = appendBytes(dst, 5, s.Signer)
	return appendBytes(dst, 6, []byte(s.UUID))
}

// FormatUUID is the lower-case hyphenated form.
func FormatUUID(u [16]byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 36)
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, digits[x>>4], digits[x&15])
	}
	return string(b)
}
