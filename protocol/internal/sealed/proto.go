package sealed

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// visit calls f for every field of the protobuf message b, in order. Fields
// numbered below 64 that f knows (it returns true) may occur only once;
// unknown fields of any scalar or bytes wire type are skipped, as prost and
// protobuf-java do. Groups are refused.
func visit(b []byte, f func(num protowire.Number, typ protowire.Type, v uint64, data []byte) (known bool, err error)) error {
	var seen uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ErrMalformed
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			v = uint64(v32)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			return ErrMalformed
		}
		if n < 0 {
			return ErrMalformed
		}
		b = b[n:]
		known, err := f(num, typ, v, data)
		if err != nil {
			return err
		}
		if known {
			if num >= 64 {
				continue
			}
			if seen&(1<<num) != 0 {
				return ErrMalformed
			}
			seen |= 1 << num
		}
	}
	return nil
}

// u32 checks a varint field that must fit 32 bits.
func u32(typ protowire.Type, v uint64) (uint32, error) {
	if typ != protowire.VarintType || v > 0xFFFFFFFF {
		return 0, ErrMalformed
	}
	return uint32(v), nil
}

// bytesField checks a length-delimited field.
func bytesField(typ protowire.Type, data []byte) ([]byte, error) {
	if typ != protowire.BytesType {
		return nil, ErrMalformed
	}
	return data, nil
}

// stringField checks a length-delimited field that must be UTF-8 (prost
// refuses strings that are not).
func stringField(typ protowire.Type, data []byte) (string, error) {
	if typ != protowire.BytesType || !utf8.Valid(data) {
		return "", ErrMalformed
	}
	return string(data), nil
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}
