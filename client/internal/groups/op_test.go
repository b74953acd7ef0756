package groups

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// samples are valid ops of every kind.
func samples() []Op {
	big := create(1_700_000_000_000, "alice", strings.Repeat("é", MaxName/2), "bob", "carol", strings.Repeat("z", MaxAccount))
	big.Stamp.Counter = 1<<32 - 1
	return []Op{
		create(10, "alice", "hikers", "bob"),
		create(0, "alice", ""),
		big,
		member(11, "alice", Add, "dave"),
		member(12, "alice", Remove, "bob"),
		at(13, "bob", Leave),
		rename(14, "alice", "🏔 hikers"),
		rename(15, "alice", ""),
		setAdmin(16, "alice", "bob", true),
		setAdmin(17, "alice", "bob", false),
	}
}

func TestOpRoundTrip(t *testing.T) {
	for _, o := range samples() {
		b, err := o.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%v): %v", o.Kind, err)
		}
		got, err := UnmarshalOp(b)
		if err != nil || !reflect.DeepEqual(got, o) {
			t.Fatalf("round trip of %v: %+v, %v", o.Kind, got, err)
		}
	}
}

func TestOpInvalid(t *testing.T) {
	mod := func(o Op, f func(*Op)) Op { f(&o); return o }
	c := create(10, "alice", "hikers", "bob")
	a := member(11, "alice", Add, "bob")
	bad := map[string]Op{
		"zero group":        mod(c, func(o *Op) { o.Group = [IDSize]byte{} }),
		"kind 0":            mod(c, func(o *Op) { o.Kind = 0 }),
		"kind 7":            mod(c, func(o *Op) { o.Kind = 7 }),
		"no author":         mod(c, func(o *Op) { o.Author = "" }),
		"long author":       mod(c, func(o *Op) { o.Author = strings.Repeat("a", MaxAccount+1) }),
		"author not utf-8":  mod(c, func(o *Op) { o.Author = "\xc3" }),
		"negative time":     mod(c, func(o *Op) { o.Stamp.Time = -1 }),
		"no origin":         mod(c, func(o *Op) { o.Stamp.Origin = "" }),
		"long origin":       mod(c, func(o *Op) { o.Stamp.Origin = strings.Repeat("o", MaxOrigin+1) }),
		"long name":         mod(c, func(o *Op) { o.Name = strings.Repeat("n", MaxName+1) }),
		"name not utf-8":    mod(c, func(o *Op) { o.Name = "\xff" }),
		"duplicate members": mod(c, func(o *Op) { o.Members = []string{"bob", "carol", "bob"} }),
		"empty member":      mod(c, func(o *Op) { o.Members = []string{""} }),
		"too many members": mod(c, func(o *Op) {
			o.Members = make([]string, MaxLimit+1)
			for i := range o.Members {
				o.Members[i] = string(rune(0x4e00 + i))
			}
		}),
		"member on create": mod(c, func(o *Op) { o.Member = "bob" }),
		"add without":      mod(a, func(o *Op) { o.Member = "" }),
		"name on add":      mod(a, func(o *Op) { o.Name = "x" }),
		"members on add":   mod(a, func(o *Op) { o.Members = []string{"x"} }),
		"admin on add":     mod(a, func(o *Op) { o.Admin = true }),
		"member on leave":  mod(at(12, "bob", Leave), func(o *Op) { o.Member = "bob" }),
	}
	for name, o := range bad {
		if _, err := o.Marshal(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Marshal: %v", name, err)
		}
		// The same op encoded anyway is refused on the way in.
		if _, err := UnmarshalOp(o.appendTo(nil)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: UnmarshalOp: %v", name, err)
		}
	}
}

// TestOpOneEncoding: encodings of a valid op other than its own are refused.
func TestOpOneEncoding(t *testing.T) {
	o := setAdmin(16, "alice", "bob", true)
	good, _ := o.Marshal()
	tag := func(b []byte, n protowire.Number, t protowire.Type) []byte { return protowire.AppendTag(b, n, t) }
	variants := map[string][]byte{
		"unknown field":  protowire.AppendVarint(tag(bytes.Clone(good), 11, protowire.VarintType), 1),
		"repeated field": protowire.AppendString(tag(bytes.Clone(good), 9, protowire.BytesType), "bob"),
		"out of order":   append(bytes.Clone(good[18:]), good[:18]...),
		"zero written":   protowire.AppendVarint(tag(bytes.Clone(good[:len(good)-2]), 10, protowire.VarintType), 0),
		"admin 2":        append(bytes.Clone(good[:len(good)-1]), 2),
		"long varint":    append(bytes.Clone(good[:len(good)-1]), 0x81, 0x00),
		"wrong type":     protowire.AppendBytes(tag(bytes.Clone(good[:len(good)-2]), 10, protowire.BytesType), []byte{1}),
		"truncated":      good[:len(good)-1],
		"short group":    append([]byte{0x0a, 0x0f}, good[2+1:]...),
		"empty":          nil,
	}
	for name, b := range variants {
		if _, err := UnmarshalOp(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzUnmarshalOp(f *testing.F) {
	for _, o := range samples() {
		b, _ := o.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := UnmarshalOp(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error outside ErrInvalid: %v", err)
			}
			return
		}
		// One encoding per op: what parses re-encodes to the same bytes.
		again, err := o.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %x vs %x (%v)", again, b, err)
		}
		o2, err := UnmarshalOp(again)
		if err != nil || !reflect.DeepEqual(o, o2) {
			t.Fatalf("round trip changed the op: %+v vs %+v (%v)", o, o2, err)
		}
		// A parsed op is accepted by a log, and the log gives it back.
		l := NewLog(0)
		if changed, err := l.Add(o); !changed || err != nil {
			t.Fatalf("Add: %v %v", changed, err)
		}
		if ops := l.Ops(); !reflect.DeepEqual(ops[0], o) {
			t.Fatalf("Ops: %+v", ops[0])
		}
	})
}
