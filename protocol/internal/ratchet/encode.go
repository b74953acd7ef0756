package ratchet

import (
	"encoding/binary"
	"errors"

	"github.com/veil-e2ee/veil/protocol/internal/wire"
	"google.golang.org/protobuf/encoding/protowire"
)

// RecordFormat is the version of the stored record encoding. Parse
// accepts every version up to this one; a newer one is refused rather
// than misread, so a downgrade cannot corrupt stored sessions.
const RecordFormat = 1

var (
	// ErrRecordMalformed: a stored record does not decode.
	ErrRecordMalformed = errors.New("ratchet: malformed session record")
	// ErrRecordVersion: a stored record was written by a newer version.
	ErrRecordVersion = errors.New("ratchet: session record from a newer version")
)

// Marshal appends the record's stored form to dst.
func (r *Record) Marshal(dst []byte) []byte {
	dst = wire.AppendUint(dst, 1, RecordFormat)
	if r.Current != nil {
		dst = wire.AppendBytes(dst, 2, r.Current.marshal(nil))
	}
	for _, p := range r.Previous {
		dst = wire.AppendBytes(dst, 3, p.marshal(nil))
	}
	return dst
}

func appendNonZero(b []byte, num int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return wire.AppendUint(b, protoNum(num), v)
}

func (s *State) marshal(b []byte) []byte {
	b = wire.AppendUint(b, 1, uint64(s.Version))
	b = wire.AppendBytes(b, 2, s.LocalIdentity[:])
	b = wire.AppendBytes(b, 3, s.RemoteIdentity[:])
	b = wire.AppendBytes(b, 4, s.RootKey[:])
	b = appendNonZero(b, 5, uint64(s.PreviousCounter))
	var sc []byte
	sc = wire.AppendBytes(sc, 1, s.Sender.Ratchet.Public[:])
	sc = wire.AppendBytes(sc, 2, s.Sender.Ratchet.Private[:])
	sc = wire.AppendBytes(sc, 3, s.Sender.Chain.Key[:])
	sc = appendNonZero(sc, 4, uint64(s.Sender.Chain.Index))
	b = wire.AppendBytes(b, 6, sc)
	for _, rc := range s.Receivers {
		var c []byte
		c = wire.AppendBytes(c, 1, rc.RatchetKey[:])
		c = wire.AppendBytes(c, 2, rc.Chain.Key[:])
		c = appendNonZero(c, 3, uint64(rc.Chain.Index))
		if len(rc.Skipped) > 0 {
			packed := make([]byte, 0, 36*len(rc.Skipped))
			for _, k := range rc.Skipped {
				packed = binary.BigEndian.AppendUint32(packed, k.Index)
				packed = append(packed, k.Seed[:]...)
			}
			c = wire.AppendBytes(c, 4, packed)
		}
		b = wire.AppendBytes(b, 7, c)
	}
	if p := s.Pending; p != nil {
		var pb []byte
		if p.HasPreKeyID {
			pb = wire.AppendUint(pb, 1, 1)
			pb = wire.AppendUint(pb, 2, uint64(p.PreKeyID))
		}
		pb = wire.AppendUint(pb, 3, uint64(p.SignedPreKeyID))
		pb = wire.AppendUint(pb, 4, uint64(p.KyberPreKeyID))
		pb = wire.AppendBytes(pb, 5, p.KyberCiphertext)
		pb = wire.AppendBytes(pb, 6, p.BaseKey[:])
		pb = wire.AppendUint(pb, 7, p.TimestampMillis)
		b = wire.AppendBytes(b, 8, pb)
	}
	b = appendNonZero(b, 9, uint64(s.LocalRegistrationID))
	b = appendNonZero(b, 10, uint64(s.RemoteRegistrationID))
	b = wire.AppendBytes(b, 11, s.AliceBaseKey[:])
	return b
}

// ParseRecord decodes a stored record.
func ParseRecord(b []byte) (*Record, error) {
	rd := wire.NewReader(b)
	rd.Repeated = 1 << 3
	r := &Record{}
	sawVersion := false
	for !rd.Done() {
		f, err := rd.Next()
		if err != nil {
			return nil, ErrRecordMalformed
		}
		switch f.Num {
		case 1:
			v, err := f.Uint32()
			if err != nil || v == 0 {
				return nil, ErrRecordMalformed
			}
			if v > RecordFormat {
				return nil, ErrRecordVersion
			}
			sawVersion = true
		case 2, 3:
			if !sawVersion || f.Type != 2 {
				return nil, ErrRecordMalformed
			}
			s, err := parseState(f.Bytes)
			if err != nil {
				return nil, err
			}
			if f.Num == 2 {
				r.Current = s
			} else {
				if len(r.Previous) == MaxArchivedStates {
					return nil, ErrRecordMalformed
				}
				r.Previous = append(r.Previous, s)
			}
		default:
			return nil, ErrRecordMalformed
		}
	}
	if !sawVersion {
		return nil, ErrRecordMalformed
	}
	return r, nil
}

func fixedEC(f wire.Field, dst *[33]byte) error {
	if err := f.Fixed(dst[:]); err != nil || dst[0] != 0x05 {
		return ErrRecordMalformed
	}
	return nil
}

func parseState(b []byte) (*State, error) {
	rd := wire.NewReader(b)
	rd.Repeated = 1 << 7
	s := &State{}
	var seen uint32
	for !rd.Done() {
		f, err := rd.Next()
		if err != nil {
			return nil, ErrRecordMalformed
		}
		seen |= 1 << f.Num
		switch f.Num {
		case 1:
			s.Version, err = f.Uint32()
		case 2:
			err = fixedEC(f, &s.LocalIdentity)
		case 3:
			err = fixedEC(f, &s.RemoteIdentity)
		case 4:
			err = f.Fixed(s.RootKey[:])
		case 5:
			s.PreviousCounter, err = f.Uint32()
		case 6:
			err = parseSender(f.Bytes, &s.Sender)
		case 7:
			if len(s.Receivers) == MaxReceiverChains {
				return nil, ErrRecordMalformed
			}
			var rc ReceiverChain
			err = parseReceiver(f.Bytes, &rc)
			s.Receivers = append(s.Receivers, rc)
		case 8:
			s.Pending = &PendingPreKey{}
			err = parsePending(f.Bytes, s.Pending)
		case 9:
			s.LocalRegistrationID, err = f.Uint32()
		case 10:
			s.RemoteRegistrationID, err = f.Uint32()
		case 11:
			err = fixedEC(f, &s.AliceBaseKey)
		default:
			err = ErrRecordMalformed
		}
		if err != nil {
			return nil, ErrRecordMalformed
		}
	}
	const required = 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<6 | 1<<11
	if seen&required != required || s.Version != wire.CurrentVersion {
		return nil, ErrRecordMalformed
	}
	return s, nil
}

func parseSender(b []byte, sc *SenderChain) error {
	if b == nil {
		return ErrRecordMalformed
	}
	rd := wire.NewReader(b)
	var seen uint32
	for !rd.Done() {
		f, err := rd.Next()
		if err != nil {
			return err
		}
		seen |= 1 << f.Num
		switch f.Num {
		case 1:
			err = fixedEC(f, &sc.Ratchet.Public)
		case 2:
			err = f.Fixed(sc.Ratchet.Private[:])
		case 3:
			err = f.Fixed(sc.Chain.Key[:])
		case 4:
			sc.Chain.Index, err = f.Uint32()
		default:
			err = ErrRecordMalformed
		}
		if err != nil {
			return err
		}
	}
	if seen&0b1110 != 0b1110 {
		return ErrRecordMalformed
	}
	return nil
}

func parseReceiver(b []byte, rc *ReceiverChain) error {
	rd := wire.NewReader(b)
	var seen uint32
	for !rd.Done() {
		f, err := rd.Next()
		if err != nil {
			return err
		}
		seen |= 1 << f.Num
		switch f.Num {
		case 1:
			err = fixedEC(f, &rc.RatchetKey)
		case 2:
			err = f.Fixed(rc.Chain.Key[:])
		case 3:
			rc.Chain.Index, err = f.Uint32()
		case 4:
			var packed []byte
			packed, err = f.Data(36, 36*MaxMessageKeys)
			if err == nil && len(packed)%36 != 0 {
				err = ErrRecordMalformed
			}
			for len(packed) > 0 && err == nil {
				var k SkippedKey
				k.Index = binary.BigEndian.Uint32(packed)
				copy(k.Seed[:], packed[4:36])
				rc.Skipped = append(rc.Skipped, k)
				packed = packed[36:]
			}
		default:
			err = ErrRecordMalformed
		}
		if err != nil {
			return err
		}
	}
	if seen&0b110 != 0b110 {
		return ErrRecordMalformed
	}
	return nil
}

func parsePending(b []byte, p *PendingPreKey) error {
	rd := wire.NewReader(b)
	var seen uint32
	for !rd.Done() {
		f, err := rd.Next()
		if err != nil {
			return err
		}
		seen |= 1 << f.Num
		switch f.Num {
		case 1:
			p.HasPreKeyID, err = f.Bool()
		case 2:
			if !p.HasPreKeyID {
				return ErrRecordMalformed
			}
			p.PreKeyID, err = f.Uint32()
		case 3:
			p.SignedPreKeyID, err = f.Uint32()
		case 4:
			p.KyberPreKeyID, err = f.Uint32()
		case 5:
			var ct []byte
			ct, err = f.Data(wire.KyberCiphertextSize, wire.KyberCiphertextSize)
			p.KyberCiphertext = append([]byte(nil), ct...)
		case 6:
			err = fixedEC(f, &p.BaseKey)
		case 7:
			p.TimestampMillis, err = f.Uint64()
		default:
			err = ErrRecordMalformed
		}
		if err != nil {
			return err
		}
	}
	if seen&0b11111000 != 0b11111000 || p.HasPreKeyID != (seen&0b110 == 0b110) {
		return ErrRecordMalformed
	}
	return nil
}

func protoNum(n int) protowire.Number { return protowire.Number(n) }
