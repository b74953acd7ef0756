package senderkey

import (
	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// Message is a decoded SenderKeyMessage without its signature.
type Message struct {
	DistributionID [16]byte
	ChainID        uint32
	Iteration      uint32
	Ciphertext     []byte // aliases the parsed input
}

// Distribution is a decoded SenderKeyDistributionMessage. ChainKey must be kept secret.
type Distribution struct {
	DistributionID [16]byte
	ChainID        uint32
	Iteration      uint32
	ChainKey       [ChainKeySize]byte
	SigningKey     [PublicKeySize]byte // 0x05 ‖ u
}

// checkVersion reads the version byte as libsignal does (the high nibble is the version) and
// also insists on the low nibble libsignal writes, so that there is one encoding.
func checkVersion(b byte) error {
	switch v := b >> 4; {
	case v < Version:
		return ErrLegacyVersion
	case v > Version:
		return ErrUnknownVersion
	case b != VersionByte:
		return ErrMalformed
	}
	return nil
}

// ParseMessage decodes a SenderKeyMessage. signed is the part the signature covers and sig the
// signature; both alias b, as does m.Ciphertext.
func ParseMessage(b []byte) (m Message, signed, sig []byte, err error) {
	if len(b) < 1+SignatureSize {
		return Message{}, nil, nil, ErrMalformed
	}
	if err := checkVersion(b[0]); err != nil {
		return Message{}, nil, nil, err
	}
	signed, sig = b[:len(b)-SignatureSize], b[len(b)-SignatureSize:]
	r := wire.NewReader(signed[1:])
	for want := 1; want <= 4; want++ {
		f, err := r.Next()
		if err != nil || int(f.Num) != want {
			return Message{}, nil, nil, ErrMalformed
		}
		switch want {
		case 1:
			err = f.Fixed(m.DistributionID[:])
		case 2:
			m.ChainID, err = f.Uint32()
		case 3:
			m.Iteration, err = f.Uint32()
		case 4:
			m.Ciphertext, err = f.Data(0, len(b))
		}
		if err != nil {
			return Message{}, nil, nil, ErrMalformed
		}
	}
	if !r.Done() {
		return Message{}, nil, nil, ErrMalformed
	}
	return m, signed, sig, nil
}

// MessageSize is the length of a signed SenderKeyMessage.
func MessageSize(m *Message) int {
	return 1 + wire.SizeBytes(1, len(m.DistributionID)) + wire.SizeUint(2, uint64(m.ChainID)) +
		wire.SizeUint(3, uint64(m.Iteration)) + wire.SizeBytes(4, len(m.Ciphertext)) + SignatureSize
}

// AppendMessage appends the part of m the signature covers (version byte and protobuf) to dst;
// the caller signs it and appends the signature.
func AppendMessage(dst []byte, m *Message) []byte {
	dst = append(dst, VersionByte)
	dst = wire.AppendBytes(dst, 1, m.DistributionID[:])
	dst = wire.AppendUint(dst, 2, uint64(m.ChainID))
	dst = wire.AppendUint(dst, 3, uint64(m.Iteration))
	return wire.AppendBytes(dst, 4, m.Ciphertext)
}

// ParseDistribution decodes a SenderKeyDistributionMessage. The signing key must be a 33-byte
// Curve25519 key (type byte 0x05).
func ParseDistribution(b []byte) (d Distribution, err error) {
	if len(b) < 1 {
		return Distribution{}, ErrMalformed
	}
	if err := checkVersion(b[0]); err != nil {
		return Distribution{}, err
	}
	r := wire.NewReader(b[1:])
	for want := 1; want <= 5; want++ {
		f, err := r.Next()
		if err != nil || int(f.Num) != want {
			return Distribution{}, ErrMalformed
		}
		switch want {
		case 1:
			err = f.Fixed(d.DistributionID[:])
		case 2:
			d.ChainID, err = f.Uint32()
		case 3:
			d.Iteration, err = f.Uint32()
		case 4:
			err = f.Fixed(d.ChainKey[:])
		case 5:
			if err = f.Fixed(d.SigningKey[:]); err == nil && d.SigningKey[0] != 0x05 {
				err = ErrMalformed
			}
		}
		if err != nil {
			return Distribution{}, ErrMalformed
		}
	}
	if !r.Done() {
		return Distribution{}, ErrMalformed
	}
	return d, nil
}

// AppendDistribution appends the encoding of d to dst.
func AppendDistribution(dst []byte, d *Distribution) []byte {
	dst = append(dst, VersionByte)
	dst = wire.AppendBytes(dst, 1, d.DistributionID[:])
	dst = wire.AppendUint(dst, 2, uint64(d.ChainID))
	dst = wire.AppendUint(dst, 3, uint64(d.Iteration))
	dst = wire.AppendBytes(dst, 4, d.ChainKey[:])
	return wire.AppendBytes(dst, 5, d.SigningKey[:])
}
