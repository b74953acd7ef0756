package sealed

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// USMC proto message types (UnidentifiedSenderMessage.Message.Type). Note
// that PreKey is 1 here while libsignal's CiphertextMessageType calls it 3.
const (
	protoPreKey    = 1
	protoWhisper   = 2
	protoSenderKey = 7
	protoPlaintext = 8
)

// USMC is a decoded UnidentifiedSenderMessageContent.
type USMC struct {
	Type        uint8 // CiphertextMessageType: 2, 3, 7 or 8
	SenderCert  []byte
	Content     []byte
	ContentHint uint32
	GroupID     []byte // nil when absent
}

// ParseUSMC decodes a USMC (type, sender certificate and content
// required; the certificate is not parsed here). The result aliases b.
func ParseUSMC(b []byte) (*USMC, error) {
	u := &USMC{}
	var haveType, haveCert, haveContent bool
	err := visit(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) (bool, error) {
		var err error
		switch num {
		case 1:
			if typ != protowire.VarintType {
				return true, ErrMalformed
			}
			switch v {
			case protoPreKey:
				u.Type = 3
			case protoWhisper, protoSenderKey, protoPlaintext:
				u.Type = uint8(v)
			default:
				return true, ErrMalformed
			}
			haveType = true
		case 2:
			u.SenderCert, err = bytesField(typ, data)
			haveCert = true
		case 3:
			u.Content, err = bytesField(typ, data)
			haveContent = true
		case 4:
			// An enum is an int32: a value ≥ 2³¹ arrives sign-extended to
			// 64 bits.
			if typ != protowire.VarintType || (v > 0xFFFFFFFF && v < 0xFFFFFFFF80000000) {
				return true, ErrMalformed
			}
			u.ContentHint = uint32(v)
		case 5:
			u.GroupID, err = bytesField(typ, data)
			if u.GroupID == nil {
				u.GroupID = []byte{}
			}
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil || !haveType || !haveCert || !haveContent {
		return nil, ErrMalformed
	}
	return u, nil
}

// AppendUSMC encodes u as libsignal does: the content hint only when not
// 0, the group id only when not empty. u.Type must be 2, 3, 7 or 8.
func AppendUSMC(dst []byte, u *USMC) []byte {
	t := uint64(u.Type)
	if u.Type == 3 {
		t = protoPreKey
	}
	dst = appendUint(dst, 1, t)
	dst = appendBytes(dst, 2, u.SenderCert)
	dst = appendBytes(dst, 3, u.Content)
	if u.ContentHint != 0 {
		dst = appendUint(dst, 4, uint64(int64(int32(u.ContentHint))))
	}
	if len(u.GroupID) > 0 {
		dst = appendBytes(dst, 5, u.GroupID)
	}
	return dst
}

// USMCSize is the encoded size of u.
func USMCSize(u *USMC) int {
	n := 2 + 1 + protowire.SizeBytes(len(u.SenderCert)) + 1 + protowire.SizeBytes(len(u.Content))
	if u.ContentHint != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(int32(u.ContentHint))))
	}
	if len(u.GroupID) > 0 {
		n += 1 + protowire.SizeBytes(len(u.GroupID))
	}
	return n
}
