package groups

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/veil-e2ee/veil/client/internal/converge"
)

// Limits.
const (
	IDSize       = 16     // bytes of a group id
	MaxName      = 256    // bytes of a group name
	MaxAccount   = 64     // bytes of an account id
	MaxOrigin    = 128    // bytes of a stamp's origin ("account.device")
	DefaultLimit = 1000   // members of a group, unless the caller says otherwise
	MaxLimit     = 10_000 // the largest limit, and the most members a Create may list
)

var (
	// ErrInvalid is returned for an op that does not parse or is not
	// well formed.
	ErrInvalid = errors.New("groups: invalid op")
	// ErrOtherGroup is returned by [Log.Add] for an op of another group.
	ErrOtherGroup = errors.New("groups: op of another group")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Kind is the kind of a membership operation.
type Kind int

// The kinds of operation. The values are part of the encoding.
const (
	Create   Kind = iota + 1 // create the group: Name, Members; the author is its first admin
	Add                      // add Member (admins only)
	Remove                   // remove Member (admins, or anyone removing themselves)
	Leave                    // the author leaves
	Rename                   // set Name (admins only)
	SetAdmin                 // make Member an admin (Admin true) or not (admins only)
)

var kindNames = [...]string{"", "create", "add", "remove", "leave", "rename", "set-admin"}

func (k Kind) String() string {
	if k < Create || k > SetAdmin {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Op is one membership operation on one group, authored by an account
// at a stamp of its device's hybrid logical clock. Which fields are set
// depends on Kind; the others must be zero.
//
// The caller must check that Author is the authenticated sender of the
// message that carried the op (or, for ops in a log forwarded to a new
// member, that they came from a member it trusts): the op itself is not
// signed.
type Op struct {
	Group   [IDSize]byte
	Kind    Kind
	Author  string // account id
	Stamp   converge.Stamp
	Name    string   // Create, Rename; kept secret: it only travels end-to-end encrypted
	Members []string // Create: the initial members besides the author
	Member  string   // Add, Remove, SetAdmin
	Admin   bool     // SetAdmin
}

// Marshal encodes o as
//
//	message GroupOp {
//	  bytes  group   = 1;  // 16 bytes, not all zero
//	  uint32 kind    = 2;  // 1 create, 2 add, 3 remove, 4 leave, 5 rename, 6 set admin
//	  string author  = 3;
//	  int64  time    = 4;  // stamp: HLC milliseconds
//	  uint32 counter = 5;  // stamp: HLC counter
//	  string origin  = 6;  // stamp: "account.device"
//	  string name    = 7;  // create, rename
//	  repeated string members = 8; // create
//	  string member  = 9;  // add, remove, set admin
//	  bool   admin   = 10; // set admin
//	}
//
// with fields in this order and zero values left out. That is the only
// encoding [UnmarshalOp] accepts, so an op has exactly one encoding,
// which is what [Log] sorts ties by. It fails on an op that UnmarshalOp
// would refuse.
func (o Op) Marshal() ([]byte, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o.appendTo(nil), nil
}

func (o *Op) appendTo(b []byte) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, o.Group[:])
	b = appendVarint(b, 2, uint64(o.Kind))
	b = appendString(b, 3, o.Author)
	b = appendVarint(b, 4, uint64(o.Stamp.Time))
	b = appendVarint(b, 5, uint64(o.Stamp.Counter))
	b = appendString(b, 6, o.Stamp.Origin)
	b = appendString(b, 7, o.Name)
	for _, m := range o.Members {
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendString(b, m)
	}
	b = appendString(b, 9, o.Member)
	if o.Admin {
		b = appendVarint(b, 10, 1)
	}
	return b
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// UnmarshalOp decodes an op encoded by [Op.Marshal]. It is strict: unknown
// fields and kinds, wrong wire types, repeated singular fields, fields in
// another order or not minimally encoded, invalid UTF-8, oversize values,
// duplicate members and fields that the kind does not use are all errors
// (wrapping [ErrInvalid]). A later version that needs more uses a new
// kind, which this version ignores by refusing it.
func UnmarshalOp(b []byte) (Op, error) {
	var o Op
	rest := b
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return Op{}, invalid("bad tag")
		}
		rest = rest[n:]
		var (
			v []byte
			x uint64
		)
		want := protowire.BytesType
		switch num {
		case 2, 4, 5, 10:
			want = protowire.VarintType
		case 1, 3, 6, 7, 8, 9:
		default:
			return Op{}, invalid("unknown field %d", num)
		}
		if typ != want {
			return Op{}, invalid("field %d has wire type %d", num, typ)
		}
		if want == protowire.VarintType {
			x, n = protowire.ConsumeVarint(rest)
		} else {
			v, n = protowire.ConsumeBytes(rest)
		}
		if n < 0 {
			return Op{}, invalid("bad field %d", num)
		}
		rest = rest[n:]
		switch num {
		case 1:
			if len(v) != IDSize {
				return Op{}, invalid("group id of %d bytes", len(v))
			}
			copy(o.Group[:], v)
		case 2:
			if x > uint64(SetAdmin) {
				return Op{}, invalid("unknown kind %d", x)
			}
			o.Kind = Kind(x)
		case 3:
			o.Author = string(v)
		case 4:
			o.Stamp.Time = int64(x)
		case 5:
			if x > 1<<32-1 {
				return Op{}, invalid("counter out of range")
			}
			o.Stamp.Counter = uint32(x)
		case 6:
			o.Stamp.Origin = string(v)
		case 7:
			o.Name = string(v)
		case 8:
			if len(o.Members) == MaxLimit {
				return Op{}, invalid("more than %d members", MaxLimit)
			}
			o.Members = append(o.Members, string(v))
		case 9:
			o.Member = string(v)
		case 10:
			o.Admin = x != 0
		}
	}
	if err := o.validate(); err != nil {
		return Op{}, err
	}
	// One encoding per op: anything that re-encodes differently (order,
	// repeats, zero values written out, long varints) is refused.
	if !bytes.Equal(o.appendTo(nil), b) {
		return Op{}, invalid("not in canonical form")
	}
	return o, nil
}

func validAccount(s string) bool { return s != "" && len(s) <= MaxAccount && utf8.ValidString(s) }

// validate checks o without saying anything about its name or members in
// the error: the name is secret.
func (o *Op) validate() error {
	switch {
	case o.Group == [IDSize]byte{}:
		return invalid("missing group id")
	case o.Kind < Create || o.Kind > SetAdmin:
		return invalid("unknown kind %d", int(o.Kind))
	case !validAccount(o.Author):
		return invalid("author")
	case o.Stamp.Time < 0:
		return invalid("negative time")
	case o.Stamp.Origin == "" || len(o.Stamp.Origin) > MaxOrigin || !utf8.ValidString(o.Stamp.Origin):
		return invalid("stamp origin")
	}
	usesName := o.Kind == Create || o.Kind == Rename
	usesMember := o.Kind == Add || o.Kind == Remove || o.Kind == SetAdmin
	switch {
	case o.Name != "" && !usesName:
		return invalid("name on a %v op", o.Kind)
	case len(o.Name) > MaxName || !utf8.ValidString(o.Name):
		return invalid("name of %d bytes or not UTF-8", len(o.Name))
	case len(o.Members) > 0 && o.Kind != Create:
		return invalid("members on a %v op", o.Kind)
	case len(o.Members) > MaxLimit:
		return invalid("%d members (the most is %d)", len(o.Members), MaxLimit)
	case usesMember && !validAccount(o.Member):
		return invalid("member of a %v op", o.Kind)
	case !usesMember && o.Member != "":
		return invalid("member on a %v op", o.Kind)
	case o.Admin && o.Kind != SetAdmin:
		return invalid("admin flag on a %v op", o.Kind)
	}
	seen := make(map[string]bool, len(o.Members))
	for i, m := range o.Members {
		if !validAccount(m) {
			return invalid("member %d", i)
		}
		if seen[m] {
			return invalid("duplicate member %d", i)
		}
		seen[m] = true
	}
	return nil
}
