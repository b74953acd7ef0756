package content

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func id(b byte) []byte { return bytes.Repeat([]byte{b}, IDSize) }

func samples() []Content {
	return []Content{
		{Text: &Text{ID: id(1), Body: "hello", SentAt: 1_795_000_000_000, SenderUsername: "alice"}},
		{Text: &Text{ID: id(2), Body: "", SentAt: 0}},
		{Text: &Text{ID: id(3), Body: "ünïcødé — 日本語 — مرحبا", SentAt: 1}},
		{Sync: &Sync{Destination: "0f8e2a4c-1d2b-4c1d-8a5e-000000000001", DestinationUsername: "bob",
			Text: Text{ID: id(4), Body: "to bob", SentAt: 5}}},
		{Resend: &ResendRequest{Device: 2, IDs: [][]byte{id(5), id(6)}}},
		{Text: &Text{ID: id(7), Body: "with a clock", SentAt: 9, Counter: 3}},
		{Op: &Op{Kind: OpEdit, TargetSender: "a", TargetID: id(8), Body: "fixed", Time: 5, Counter: 1, Conversation: "b"}},
		{Op: &Op{Kind: OpReact, TargetSender: "a", TargetID: id(8), Emoji: "👍", Time: 6, Conversation: "b"}},
		{Op: &Op{Kind: OpDelete, TargetSender: "a", TargetID: id(8), Time: 7, Conversation: "b"}},
		{Read: &Read{Conversation: "b", Time: 8, Counter: 2}},
		{Trust: &Trust{Account: "b", Key: id(9), Trust: 2, Time: 10, Counter: 1}},
		{Text: &Text{ID: id(10), Body: "to the group", SentAt: 11, Group: id(11)}, ProfileKey: bytes.Repeat([]byte{7}, ProfileKeySize)},
		{GroupOps: &GroupOps{Group: id(12), Ops: [][]byte{{1, 2, 3}, {4}}, Members: []Member{{Account: "a", Username: "alice"}, {Account: "b", Username: "bob"}}}},
		{SenderKey: &SenderKey{Group: id(13), Distribution: []byte{0x33, 1, 2}}, ProfileKey: bytes.Repeat([]byte{8}, ProfileKeySize)},
		{Timer: &Timer{Conversation: "b", Seconds: 3600, Time: 12, Counter: 1}},
		{Timer: &Timer{Conversation: "g:00", Seconds: 0, Time: 13}},
	}
}

func TestRoundTripAndPadding(t *testing.T) {
	for _, c := range samples() {
		b, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", c, err)
		}
		if len(b)%padBlock != 0 {
			t.Fatalf("encoding of %d bytes is not padded to %d", len(b), padBlock)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: got %+v want %+v", got, c)
		}
	}
	// Lengths hide the text up to the block size.
	short, _ := Marshal(Content{Text: &Text{ID: id(1), Body: "a", SentAt: 1}})
	longer, _ := Marshal(Content{Text: &Text{ID: id(1), Body: strings.Repeat("a", 40), SentAt: 1}})
	if len(short) != len(longer) {
		t.Fatalf("1 and 40 characters pad to %d and %d bytes", len(short), len(longer))
	}
}

func TestInvalid(t *testing.T) {
	good, _ := Marshal(samples()[0])
	raw := func(b []byte) []byte { return pad(b) }
	textField := func(inner []byte) []byte {
		b := protowire.AppendTag(nil, 1, protowire.BytesType)
		return protowire.AppendBytes(b, inner)
	}
	cases := map[string][]byte{
		"empty":          nil,
		"no marker":      bytes.Repeat([]byte{0}, 80),
		"garbage tail":   append(good[:len(good)-1:len(good)-1], 1),
		"no content":     raw(nil),
		"bad tag":        raw([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		"truncated":      raw(protowire.AppendTag(nil, 1, protowire.BytesType)),
		"two kinds":      raw(append(textField(appendText(nil, samples()[0].Text)), textField(appendText(nil, samples()[1].Text))...)),
		"varint content": raw(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)),
		"short id":       raw(textField(appendText(nil, &Text{ID: []byte{1}, Body: "x"}))),
		"bad utf8":       raw(textField(appendText(nil, &Text{ID: id(1), Body: "\xff"}))),
		"negative time":  raw(textField(appendText(nil, &Text{ID: id(1), SentAt: -1}))),
		"repeated body": raw(textField(append(appendText(nil, &Text{ID: id(1), Body: "a"}),
			protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "b")...))),
	}
	for name, b := range cases {
		if _, err := Unmarshal(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Unmarshal = %v, want ErrInvalid", name, err)
		}
	}
	for name, c := range map[string]Content{
		"none":           {},
		"two":            {Text: samples()[0].Text, Resend: samples()[4].Resend},
		"long body":      {Text: &Text{ID: id(1), Body: strings.Repeat("x", MaxBody+1)}},
		"resend no ids":  {Resend: &ResendRequest{Device: 1}},
		"resend device0": {Resend: &ResendRequest{IDs: [][]byte{id(1)}}},
		"sync no dest":   {Sync: &Sync{Text: Text{ID: id(1)}}},
		"op kind":        {Op: &Op{Kind: 9, TargetSender: "a", TargetID: id(1), Conversation: "b"}},
		"op empty edit":  {Op: &Op{Kind: OpEdit, TargetSender: "a", TargetID: id(1), Conversation: "b"}},
		"op short id":    {Op: &Op{Kind: OpDelete, TargetSender: "a", TargetID: id(1)[:3], Conversation: "b"}},
		"read no conv":   {Read: &Read{Time: 1}},
		"trust value":    {Trust: &Trust{Account: "b", Key: id(1), Trust: 3}},
		"short profile":  {Read: &Read{Conversation: "b"}, ProfileKey: []byte{1}},
		"only profile":   {ProfileKey: bytes.Repeat([]byte{1}, ProfileKeySize)},
		"group id":       {Text: &Text{ID: id(1), Group: []byte{1}}},
		"no ops":         {GroupOps: &GroupOps{Group: id(1)}},
		"empty op":       {GroupOps: &GroupOps{Group: id(1), Ops: [][]byte{{}}}},
		"sk no group":    {SenderKey: &SenderKey{Distribution: []byte{1}}},
		"timer no conv":  {Timer: &Timer{Seconds: 5}},
		"timer too long": {Timer: &Timer{Conversation: "b", Seconds: MaxTimer + 1}},
		"member no name": {GroupOps: &GroupOps{Group: id(1), Ops: [][]byte{{1}}, Members: []Member{{Account: "a"}}}},
		"sk empty":       {SenderKey: &SenderKey{Group: id(1)}},
	} {
		if _, err := Marshal(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("Marshal(%s) = %v, want ErrInvalid", name, err)
		}
	}
}

func TestUnknownFieldsSkipped(t *testing.T) {
	inner := appendText(nil, samples()[0].Text)
	inner = protowire.AppendVarint(protowire.AppendTag(inner, 9, protowire.VarintType), 7) // a later field
	b := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), inner)
	b = protowire.AppendFixed32(protowire.AppendTag(b, 12, protowire.Fixed32Type), 3)
	c, err := Unmarshal(pad(b))
	if err != nil || c.Text == nil || c.Text.Body != "hello" {
		t.Fatalf("content with unknown fields: %+v, %v", c, err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, c := range samples() {
		b, _ := Marshal(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error outside ErrInvalid: %v", err)
			}
			return
		}
		again, err := Marshal(c)
		if err != nil {
			t.Fatalf("parsed content does not marshal: %v", err)
		}
		c2, err := Unmarshal(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-encoding changed the content: %+v vs %+v (%v)", c, c2, err)
		}
	})
}
