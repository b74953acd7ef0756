// Package content is the plaintext format the SDK puts inside Signal
// messages: what a message says, as opposed to how it is encrypted.
//
// A Content is a small protobuf message with exactly one of:
//
//	message Content {
//	  Text          text   = 1; // a message a person wrote
//	  Sync          sync   = 2; // a transcript of our own send, for our other devices
//	  ResendRequest resend = 3; // "I could not decrypt these; send them again"
//	  Op            op     = 4; // an edit, delete or reaction on a message
//	  Read          read   = 5; // read marker, for our other devices
//	  Trust         trust  = 6; // a contact's key verified, unverified or accepted, for our other devices
//	  GroupOps      group_ops = 8;  // group membership operations (client/internal/groups)
//	  SenderKey     sender_key = 9; // our sender key for a group (a SenderKeyDistributionMessage)
//	  Timer         timer = 10;     // a conversation's disappearing-messages timer
//	  bytes profile_key = 7; // optional beside any kind: the sender's 32-byte profile key
//	}
//	message Text          { bytes id = 1; string body = 2; int64 sent_at = 3; string sender_username = 4; uint32 counter = 5;
//	                        bytes group = 6; /* 16-byte group id of a group message */ }
//	message GroupOps      { bytes group = 1; repeated bytes ops = 2; /* groups.Op encodings */
//	                        repeated Member members = 3; /* usernames the sender knows for members */ }
//	message Member        { string account = 1; string username = 2; }
//	message SenderKey     { bytes group = 1; bytes distribution = 2; }
//	message Timer         { string conversation = 1; uint32 seconds = 2; int64 time = 3; uint32 counter = 4; }
//	message Op            { uint32 kind = 1; string target_sender = 2; bytes target_id = 3; string body = 4; string emoji = 5;
//	                        int64 time = 6; uint32 counter = 7; string conversation = 8; }
//	message Read          { string conversation = 1; int64 time = 2; uint32 counter = 3; }
//	message Trust         { string account = 1; bytes key = 2; uint32 trust = 3; int64 time = 4; uint32 counter = 5; }
//	message Sync          { string destination = 1; string destination_username = 2; Text text = 3; }
//	message ResendRequest { uint32 device = 1; repeated bytes ids = 2; }
//
// sent_at and counter (Text), time and counter (Op, Read) are hybrid
// logical clock stamps (client/internal/converge); the origin of a stamp
// is the sending device. Op.kind is 2 edit, 3 delete, 4 react; an Op goes
// to the conversation's peer and to our own devices, with conversation
// set to the peer's account id (the conversation it belongs to).
//
// Text.id is the message's own 16-byte id, which dedups it on every
// device; ResendRequest.ids are transport ids (the server's message id
// of the envelope that failed) and device is the sender device that
// should answer. Unknown fields are skipped, so later versions can add
// some; everything else is strict: wrong wire types, repeated singular
// fields, invalid UTF-8, bad lengths and missing required fields are
// errors.
//
// Before encryption the encoding is padded like Signal's: a 0x80 byte,
// then zeros up to a multiple of 80 bytes, so a ciphertext's length says
// little about the text.
package content

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Limits.
const (
	IDSize      = 16       // Text.id and transport ids
	MaxBody     = 64 << 10 // bytes of text (the server takes 96 KiB of ciphertext)
	MaxUsername = 64
	MaxIDs      = 100 // ids per resend request
	// ProfileKeySize is the length of a profile key.
	ProfileKeySize = 32
	// MaxGroupOps bounds the operations in one GroupOps (a whole group
	// log travels to a newly added member).
	MaxGroupOps = 20000
	// MaxOpBytes bounds one encoded group operation.
	MaxOpBytes = 64 << 10
	MaxEmoji   = 64 // bytes of a reaction
	padBlock   = 80
)

// ErrInvalid is returned for content that does not parse.
var ErrInvalid = errors.New("content: invalid")

// Content is one decrypted message's meaning; exactly one of the
// pointer fields is set. ProfileKey may accompany any of them.
type Content struct {
	Text      *Text
	Sync      *Sync
	Resend    *ResendRequest
	Op        *Op
	Read      *Read
	Trust     *Trust
	GroupOps  *GroupOps
	SenderKey *SenderKey
	Timer     *Timer

	ProfileKey []byte
}

// MaxTimer is the longest disappearing-messages timer, in seconds (a
// year).
const MaxTimer = 366 * 24 * 3600

// Timer sets a conversation's disappearing-messages timer: seconds a
// message lives (0: off), stamped by the hybrid clock. Conversation is
// the peer's account id as the sender sees it (to a peer: the receiver's
// own id, ignored; between one's own devices: the peer), or "g:" and the
// group id.
type Timer struct {
	Conversation string
	Seconds      uint32
	Time         int64
	Counter      uint32
}

// GroupOps carries membership operations of one group.
type GroupOps struct {
	Group []byte   // 16 bytes
	Ops   [][]byte // encoded groups.Op
	// Members are usernames the sender knows for members: claims the
	// receiver checks with the server before it believes them.
	Members []Member
}

// Member names a group member's account.
type Member struct {
	Account  string
	Username string
}

// SenderKey hands the sender's sender key for a group to one recipient.
type SenderKey struct {
	Group        []byte // 16 bytes
	Distribution []byte // SenderKeyDistributionMessage
}

// Trust is what the user decided about a contact's identity key on one
// device: 1 trusted (accepted), 2 verified. It applies only if the
// receiving device holds the same key.
type Trust struct {
	Account string
	Key     []byte
	Trust   uint32
	Time    int64
	Counter uint32
}

// Op kinds (the values of converge.Kind).
const (
	OpEdit   = 2
	OpDelete = 3
	OpReact  = 4
)

// Op is an edit, a delete for everyone or a reaction.
type Op struct {
	Kind         uint32
	TargetSender string // account id of the message's sender
	TargetID     []byte // the message's 16-byte id
	Body         string // edit
	Emoji        string // react ("" removes)
	Time         int64
	Counter      uint32
	Conversation string // the peer account of the conversation
}

// Read is how far this account has read a conversation.
type Read struct {
	Conversation string
	Time         int64
	Counter      uint32
}

// Text is a message a person wrote.
type Text struct {
	ID             []byte // 16 bytes, chosen by the sender
	Body           string
	SentAt         int64 // Unix milliseconds, the sender's clock (HLC time)
	SenderUsername string
	Counter        uint32 // HLC counter
	Group          []byte // 16-byte group id for a group message; nil for 1:1
}

// Sync is our own send, copied to our other devices.
type Sync struct {
	Destination         string // account id
	DestinationUsername string
	Text                Text
}

// ResendRequest asks a sender device to send messages again under a new
// session.
type ResendRequest struct {
	Device uint32
	IDs    [][]byte // transport ids
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Marshal encodes and pads c. It fails on content that Unmarshal would
// refuse.
func Marshal(c Content) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var b []byte
	switch {
	case c.Text != nil:
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, appendText(nil, c.Text))
	case c.Sync != nil:
		var s []byte
		s = appendString(s, 1, c.Sync.Destination)
		s = appendString(s, 2, c.Sync.DestinationUsername)
		s = protowire.AppendTag(s, 3, protowire.BytesType)
		s = protowire.AppendBytes(s, appendText(nil, &c.Sync.Text))
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, s)
	case c.Op != nil:
		o := c.Op
		var r []byte
		r = protowire.AppendTag(r, 1, protowire.VarintType)
		r = protowire.AppendVarint(r, uint64(o.Kind))
		r = appendString(r, 2, o.TargetSender)
		r = protowire.AppendTag(r, 3, protowire.BytesType)
		r = protowire.AppendBytes(r, o.TargetID)
		r = appendString(r, 4, o.Body)
		r = appendString(r, 5, o.Emoji)
		r = protowire.AppendTag(r, 6, protowire.VarintType)
		r = protowire.AppendVarint(r, uint64(o.Time))
		r = protowire.AppendTag(r, 7, protowire.VarintType)
		r = protowire.AppendVarint(r, uint64(o.Counter))
		r = appendString(r, 8, o.Conversation)
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	case c.Read != nil:
		var r []byte
		r = appendString(r, 1, c.Read.Conversation)
		r = protowire.AppendTag(r, 2, protowire.VarintType)
		r = protowire.AppendVarint(r, uint64(c.Read.Time))
		r = protowire.AppendTag(r, 3, protowire.VarintType)
		r = protowire.AppendVarint(r, uint64(c.Read.Counter))
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	case c.Trust != nil:
		t := c.Trust
		var r []byte
		r = appendString(r, 1, t.Account)
		r = protowire.AppendTag(r, 2, protowire.BytesType)
		r = protowire.AppendBytes(r, t.Key)
		for _, f := range []struct {
			n protowire.Number
			v uint64
		}{{3, uint64(t.Trust)}, {4, uint64(t.Time)}, {5, uint64(t.Counter)}} {
			r = protowire.AppendTag(r, f.n, protowire.VarintType)
			r = protowire.AppendVarint(r, f.v)
		}
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	case c.GroupOps != nil:
		var r []byte
		r = protowire.AppendTag(r, 1, protowire.BytesType)
		r = protowire.AppendBytes(r, c.GroupOps.Group)
		for _, op := range c.GroupOps.Ops {
			r = protowire.AppendTag(r, 2, protowire.BytesType)
			r = protowire.AppendBytes(r, op)
		}
		for _, m := range c.GroupOps.Members {
			var e []byte
			e = appendString(e, 1, m.Account)
			e = appendString(e, 2, m.Username)
			r = protowire.AppendTag(r, 3, protowire.BytesType)
			r = protowire.AppendBytes(r, e)
		}
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	case c.SenderKey != nil:
		var r []byte
		r = protowire.AppendTag(r, 1, protowire.BytesType)
		r = protowire.AppendBytes(r, c.SenderKey.Group)
		r = protowire.AppendTag(r, 2, protowire.BytesType)
		r = protowire.AppendBytes(r, c.SenderKey.Distribution)
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	case c.Timer != nil:
		var r []byte
		r = appendString(r, 1, c.Timer.Conversation)
		for _, f := range []struct {
			n protowire.Number
			v uint64
		}{{2, uint64(c.Timer.Seconds)}, {3, uint64(c.Timer.Time)}, {4, uint64(c.Timer.Counter)}} {
			r = protowire.AppendTag(r, f.n, protowire.VarintType)
			r = protowire.AppendVarint(r, f.v)
		}
		b = protowire.AppendTag(b, 10, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	case c.Resend != nil:
		var r []byte
		r = protowire.AppendTag(r, 1, protowire.VarintType)
		r = protowire.AppendVarint(r, uint64(c.Resend.Device))
		for _, id := range c.Resend.IDs {
			r = protowire.AppendTag(r, 2, protowire.BytesType)
			r = protowire.AppendBytes(r, id)
		}
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	}
	if c.ProfileKey != nil {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, c.ProfileKey)
	}
	return pad(b), nil
}

func appendText(b []byte, t *Text) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, t.ID)
	b = appendString(b, 2, t.Body)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.SentAt))
	b = appendString(b, 4, t.SenderUsername)
	if t.Counter != 0 {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t.Counter))
	}
	if t.Group != nil {
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendBytes(b, t.Group)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func pad(b []byte) []byte {
	n := (len(b)/padBlock + 1) * padBlock
	out := make([]byte, n)
	copy(out, b)
	out[len(b)] = 0x80
	return out
}

func unpad(b []byte) ([]byte, error) {
	i := len(b) - 1
	for i >= 0 && b[i] == 0 {
		i--
	}
	if i < 0 || b[i] != 0x80 {
		return nil, invalid("bad padding")
	}
	return b[:i], nil
}

// Unmarshal removes the padding and decodes a Content.
func Unmarshal(b []byte) (Content, error) {
	body, err := unpad(b)
	if err != nil {
		return Content{}, err
	}
	var c Content
	err = fields(body, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num < 1 || num > 10 {
			return nil // unknown: skipped
		}
		if err := wantType(num, typ, protowire.BytesType); err != nil {
			return err
		}
		if num == 7 {
			c.ProfileKey = append([]byte(nil), v...)
			return nil
		}
		if c.kinds() > 0 {
			return invalid("more than one kind of content")
		}
		switch num {
		case 1:
			t, err := parseText(v)
			c.Text = &t
			return err
		case 2:
			s, err := parseSync(v)
			c.Sync = &s
			return err
		case 3:
			r, err := parseResend(v)
			c.Resend = &r
			return err
		case 4:
			o, err := parseOp(v)
			c.Op = &o
			return err
		case 5:
			r, err := parseRead(v)
			c.Read = &r
			return err
		case 6:
			t, err := parseTrust(v)
			c.Trust = &t
			return err
		case 8:
			g, err := parseGroupOps(v)
			c.GroupOps = &g
			return err
		case 9:
			k, err := parseSenderKey(v)
			c.SenderKey = &k
			return err
		case 10:
			t, err := parseTimer(v)
			c.Timer = &t
			return err
		}
		return nil
	})
	if err != nil {
		return Content{}, err
	}
	if c.kinds() == 0 {
		return Content{}, invalid("no content")
	}
	return c, c.validate()
}

// fields walks the fields of one message. Known fields are passed to fn
// (for varints, the value; otherwise the bytes); each known field
// number may occur once unless repeated says so.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error, repeated ...protowire.Number) error {
	seen := map[protowire.Number]bool{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return invalid("bad tag")
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return invalid("bad field %d", num)
		}
		b = b[n:]
		if num > 15 {
			continue // unknown field of a later version
		}
		if seen[num] && !contains(repeated, num) {
			return invalid("field %d repeated", num)
		}
		seen[num] = true
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func contains(s []protowire.Number, n protowire.Number) bool {
	for _, v := range s {
		if v == n {
			return true
		}
	}
	return false
}

func wantType(num protowire.Number, got, want protowire.Type) error {
	if got != want {
		return invalid("field %d has wire type %d", num, got)
	}
	return nil
}

func parseText(b []byte) (Text, error) {
	var t Text
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1:
			t.ID = append([]byte(nil), v...)
			return wantType(num, typ, protowire.BytesType)
		case 2:
			t.Body = string(v)
			return wantType(num, typ, protowire.BytesType)
		case 3:
			t.SentAt = int64(x)
			return wantType(num, typ, protowire.VarintType)
		case 4:
			t.SenderUsername = string(v)
			return wantType(num, typ, protowire.BytesType)
		case 5:
			if x > 1<<32-1 {
				return invalid("counter out of range")
			}
			t.Counter = uint32(x)
			return wantType(num, typ, protowire.VarintType)
		case 6:
			t.Group = append([]byte(nil), v...)
			return wantType(num, typ, protowire.BytesType)
		}
		return nil
	})
	return t, err
}

func parseOp(b []byte) (Op, error) {
	var o Op
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		want := protowire.BytesType
		switch num {
		case 1:
			o.Kind, want = uint32(min(x, 1<<32-1)), protowire.VarintType
		case 2:
			o.TargetSender = string(v)
		case 3:
			o.TargetID = append([]byte(nil), v...)
		case 4:
			o.Body = string(v)
		case 5:
			o.Emoji = string(v)
		case 6:
			o.Time, want = int64(x), protowire.VarintType
		case 7:
			if x > 1<<32-1 {
				return invalid("counter out of range")
			}
			o.Counter, want = uint32(x), protowire.VarintType
		case 8:
			o.Conversation = string(v)
		default:
			return nil
		}
		return wantType(num, typ, want)
	})
	return o, err
}

func parseTrust(b []byte) (Trust, error) {
	var t Trust
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		want := protowire.VarintType
		switch num {
		case 1:
			t.Account, want = string(v), protowire.BytesType
		case 2:
			t.Key, want = append([]byte(nil), v...), protowire.BytesType
		case 3:
			t.Trust = uint32(min(x, 255))
		case 4:
			t.Time = int64(x)
		case 5:
			if x > 1<<32-1 {
				return invalid("counter out of range")
			}
			t.Counter = uint32(x)
		default:
			return nil
		}
		return wantType(num, typ, want)
	})
	return t, err
}

func parseRead(b []byte) (Read, error) {
	var r Read
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		want := protowire.BytesType
		switch num {
		case 1:
			r.Conversation = string(v)
		case 2:
			r.Time, want = int64(x), protowire.VarintType
		case 3:
			if x > 1<<32-1 {
				return invalid("counter out of range")
			}
			r.Counter, want = uint32(x), protowire.VarintType
		default:
			return nil
		}
		return wantType(num, typ, want)
	})
	return r, err
}

func parseSync(b []byte) (Sync, error) {
	var s Sync
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if err := wantType(num, typ, protowire.BytesType); err != nil {
			return err
		}
		switch num {
		case 1:
			s.Destination = string(v)
		case 2:
			s.DestinationUsername = string(v)
		case 3:
			t, err := parseText(v)
			s.Text = t
			return err
		}
		return nil
	})
	return s, err
}

func parseGroupOps(b []byte) (GroupOps, error) {
	var g GroupOps
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if err := wantType(num, typ, protowire.BytesType); err != nil {
			return err
		}
		switch num {
		case 1:
			g.Group = append([]byte(nil), v...)
		case 2:
			if len(g.Ops) == MaxGroupOps {
				return invalid("more than %d group operations", MaxGroupOps)
			}
			g.Ops = append(g.Ops, append([]byte(nil), v...))
		case 3:
			if len(g.Members) == MaxGroupOps {
				return invalid("more than %d member names", MaxGroupOps)
			}
			var m Member
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if err := wantType(num, typ, protowire.BytesType); err != nil {
					return err
				}
				switch num {
				case 1:
					m.Account = string(v)
				case 2:
					m.Username = string(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			g.Members = append(g.Members, m)
		}
		return nil
	}, 2, 3)
	return g, err
}

func parseTimer(b []byte) (Timer, error) {
	var t Timer
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1:
			t.Conversation = string(v)
			return wantType(num, typ, protowire.BytesType)
		case 2, 4:
			if x > 1<<32-1 {
				return invalid("timer field out of range")
			}
			if num == 2 {
				t.Seconds = uint32(x)
			} else {
				t.Counter = uint32(x)
			}
			return wantType(num, typ, protowire.VarintType)
		case 3:
			t.Time = int64(x)
			return wantType(num, typ, protowire.VarintType)
		}
		return nil
	})
	return t, err
}

func parseSenderKey(b []byte) (SenderKey, error) {
	var k SenderKey
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if err := wantType(num, typ, protowire.BytesType); err != nil {
			return err
		}
		switch num {
		case 1:
			k.Group = append([]byte(nil), v...)
		case 2:
			k.Distribution = append([]byte(nil), v...)
		}
		return nil
	})
	return k, err
}

func parseResend(b []byte) (ResendRequest, error) {
	var r ResendRequest
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1:
			if x > 1<<31 {
				return invalid("device %d out of range", x)
			}
			r.Device = uint32(x)
			return wantType(num, typ, protowire.VarintType)
		case 2:
			if len(r.IDs) == MaxIDs {
				return invalid("more than %d ids", MaxIDs)
			}
			r.IDs = append(r.IDs, append([]byte(nil), v...))
			return wantType(num, typ, protowire.BytesType)
		}
		return nil
	}, 2)
	return r, err
}

// kinds counts the kinds of content set.
func (c Content) kinds() int {
	n := 0
	for _, set := range []bool{c.Text != nil, c.Sync != nil, c.Resend != nil, c.Op != nil, c.Read != nil, c.Trust != nil, c.GroupOps != nil, c.SenderKey != nil, c.Timer != nil} {
		if set {
			n++
		}
	}
	return n
}

func (c Content) validate() error {
	if n := c.kinds(); n != 1 {
		return invalid("want exactly one kind of content, have %d", n)
	}
	if c.ProfileKey != nil && len(c.ProfileKey) != ProfileKeySize {
		return invalid("profile key of %d bytes", len(c.ProfileKey))
	}
	switch {
	case c.GroupOps != nil:
		g := c.GroupOps
		if len(g.Group) != IDSize || len(g.Ops) == 0 || len(g.Ops) > MaxGroupOps {
			return invalid("group operations")
		}
		for _, op := range g.Ops {
			if len(op) == 0 || len(op) > MaxOpBytes {
				return invalid("group operation of %d bytes", len(op))
			}
		}
		if len(g.Members) > MaxGroupOps {
			return invalid("%d member names", len(g.Members))
		}
		for _, m := range g.Members {
			if !validAccount(m.Account) || !validAccount(m.Username) {
				return invalid("member name")
			}
		}
		return nil
	case c.Timer != nil:
		t := c.Timer
		if !validAccount(t.Conversation) || t.Seconds > MaxTimer || t.Time < 0 {
			return invalid("timer")
		}
		return nil
	case c.SenderKey != nil:
		if len(c.SenderKey.Group) != IDSize || len(c.SenderKey.Distribution) == 0 || len(c.SenderKey.Distribution) > 1024 {
			return invalid("sender key")
		}
		return nil
	case c.Text != nil:
		return c.Text.validate()
	case c.Op != nil:
		o := c.Op
		switch {
		case o.Kind != OpEdit && o.Kind != OpDelete && o.Kind != OpReact:
			return invalid("op kind %d", o.Kind)
		case !validAccount(o.TargetSender) || !validAccount(o.Conversation):
			return invalid("op target or conversation")
		case len(o.TargetID) != IDSize:
			return invalid("op target id of %d bytes", len(o.TargetID))
		case len(o.Body) > MaxBody || !utf8.ValidString(o.Body) || (o.Kind == OpEdit && o.Body == ""):
			return invalid("op body")
		case len(o.Emoji) > MaxEmoji || !utf8.ValidString(o.Emoji):
			return invalid("op emoji")
		case o.Time < 0:
			return invalid("negative op time")
		}
		return nil
	case c.Read != nil:
		if !validAccount(c.Read.Conversation) || c.Read.Time < 0 {
			return invalid("read marker")
		}
		return nil
	case c.Trust != nil:
		t := c.Trust
		if !validAccount(t.Account) || len(t.Key) == 0 || len(t.Key) > 64 || (t.Trust != 1 && t.Trust != 2) || t.Time < 0 {
			return invalid("trust")
		}
		return nil
	case c.Sync != nil:
		if c.Sync.Destination == "" || len(c.Sync.Destination) > MaxUsername || !utf8.ValidString(c.Sync.Destination) {
			return invalid("sync destination")
		}
		if len(c.Sync.DestinationUsername) > MaxUsername || !utf8.ValidString(c.Sync.DestinationUsername) {
			return invalid("sync destination username")
		}
		return c.Sync.Text.validate()
	default:
		if c.Resend.Device == 0 {
			return invalid("resend request without a device")
		}
		if len(c.Resend.IDs) == 0 || len(c.Resend.IDs) > MaxIDs {
			return invalid("resend request with %d ids", len(c.Resend.IDs))
		}
		for _, id := range c.Resend.IDs {
			if len(id) != IDSize {
				return invalid("resend id of %d bytes", len(id))
			}
		}
	}
	return nil
}

func validAccount(s string) bool { return s != "" && len(s) <= MaxUsername && utf8.ValidString(s) }

func (t *Text) validate() error {
	switch {
	case len(t.ID) != IDSize:
		return invalid("text id of %d bytes", len(t.ID))
	case len(t.Body) > MaxBody:
		return invalid("text of %d bytes (the limit is %d)", len(t.Body), MaxBody)
	case !utf8.ValidString(t.Body):
		return invalid("text is not UTF-8")
	case t.SentAt < 0:
		return invalid("negative sent time")
	case len(t.SenderUsername) > MaxUsername || !utf8.ValidString(t.SenderUsername):
		return invalid("sender username")
	case t.Group != nil && len(t.Group) != IDSize:
		return invalid("group id of %d bytes", len(t.Group))
	}
	return nil
}
