// Package wire encodes and decodes the Signal protocol's wire messages and
// Veil's own stored records, byte for byte as libsignal does.
//
// # Canonical encodings
//
// libsignal's messages are protobuf (proto2) written by prost, which emits
// fields in field-number order with minimal varints. Decoders here accept
// exactly that encoding and nothing else: fields must appear in strictly
// increasing order, each at most once, with their declared wire type,
// minimal tag and varint encodings, no unknown fields, and no bytes after
// the end. A message therefore has one valid encoding, so it cannot be
// re-encoded into a different byte string that still verifies.
package wire

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is returned for any input that is not the canonical
// encoding of a known message. It deliberately says nothing more.
var ErrMalformed = errors.New("wire: malformed message")

// Field is one decoded protobuf field.
type Field struct {
	Num   protowire.Number
	Type  protowire.Type
	Value uint64 // for VarintType
	Bytes []byte // for BytesType (aliases the input)
}

// Reader walks the fields of one canonical protobuf message.
type Reader struct {
	b    []byte
	last protowire.Number
	// Repeated is a bit set of field numbers (< 64) that may occur several
	// times in a row (repeated fields of Veil's own records).
	Repeated uint64
}

// NewReader returns a Reader over b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// Done reports whether every byte has been consumed.
func (r *Reader) Done() bool { return len(r.b) == 0 }

// Next reads the next field. It fails on non-increasing field numbers,
// non-minimal encodings, groups and fixed-width types (none of our
// messages use them), and truncated input.
func (r *Reader) Next() (Field, error) {
	tag, n := protowire.ConsumeVarint(r.b)
	if n < 0 || n != protowire.SizeVarint(tag) {
		return Field{}, ErrMalformed
	}
	num, typ := protowire.DecodeTag(tag)
	if !num.IsValid() || num < r.last || (num == r.last && (num >= 64 || r.Repeated&(1<<num) == 0)) {
		return Field{}, ErrMalformed
	}
	r.last = num
	r.b = r.b[n:]
	f := Field{Num: num, Type: typ}
	switch typ {
	case protowire.VarintType:
		v, m := protowire.ConsumeVarint(r.b)
		if m < 0 || m != protowire.SizeVarint(v) {
			return Field{}, ErrMalformed
		}
		f.Value = v
		r.b = r.b[m:]
	case protowire.BytesType:
		l, m := protowire.ConsumeVarint(r.b)
		if m < 0 || m != protowire.SizeVarint(l) || l > uint64(len(r.b)-m) {
			return Field{}, ErrMalformed
		}
		f.Bytes = r.b[m : m+int(l)]
		r.b = r.b[m+int(l):]
	default:
		return Field{}, ErrMalformed
	}
	return f, nil
}

// Uint32 returns a varint field's value if it fits in 32 bits.
func (f Field) Uint32() (uint32, error) {
	if f.Type != protowire.VarintType || f.Value > 0xFFFFFFFF {
		return 0, ErrMalformed
	}
	return uint32(f.Value), nil
}

// Uint64 returns a varint field's value.
func (f Field) Uint64() (uint64, error) {
	if f.Type != protowire.VarintType {
		return 0, ErrMalformed
	}
	return f.Value, nil
}

// Bool returns a varint field holding 0 or 1 (only 1 is ever written:
// false is encoded by omission).
func (f Field) Bool() (bool, error) {
	if f.Type != protowire.VarintType || f.Value != 1 {
		return false, ErrMalformed
	}
	return true, nil
}

// Data returns a bytes field's value (aliasing the input) and checks its
// length is in [min, max].
func (f Field) Data(min, max int) ([]byte, error) {
	if f.Type != protowire.BytesType || len(f.Bytes) < min || len(f.Bytes) > max {
		return nil, ErrMalformed
	}
	return f.Bytes, nil
}

// Fixed returns a copy of a bytes field that must be exactly len(dst) long.
func (f Field) Fixed(dst []byte) error {
	if f.Type != protowire.BytesType || len(f.Bytes) != len(dst) {
		return ErrMalformed
	}
	copy(dst, f.Bytes)
	return nil
}

// AppendUint appends a varint field.
func AppendUint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// AppendBytes appends a length-delimited field.
func AppendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// SizeUint is the encoded size of a varint field.
func SizeUint(num protowire.Number, v uint64) int {
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

// SizeBytes is the encoded size of a length-delimited field of n bytes.
func SizeBytes(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}
