// Package groups holds the state of a client-side group — its name,
// members and admins — and the rule by which concurrent membership
// changes, received in any order and with duplicates, reach the same
// state on every device. It does no I/O: the caller stores and sends the
// ops.
//
// # Ops
//
// A group is a random 16-byte id. Everything that happens to it is an
// [Op] — [Create], [Add], [Remove], [Leave], [Rename], [SetAdmin] —
// authored by an account and stamped by its device's hybrid logical
// clock ([converge.Clock]). Ops travel only inside end-to-end encrypted
// messages, so the group's name is never seen by the server.
//
// # The rule
//
// The set of ops known for a group is the replicated data: a device adds
// every op it receives to the group's [Log] (duplicates are no-ops) and
// never drops one, even one that has no effect. The group's [State] is
// a deterministic fold of that set: sort the ops by stamp
// ([converge.Stamp.Compare]), ties broken by the bytes of their encoding
// ([Op.Marshal]; an op has exactly one), then apply them in turn to an
// unknown group with no members, each checked against the state at that
// point:
//
//   - Create makes the group known with its name, the author as member
//     and admin, and the listed members in their order (those beyond the
//     size limit are left out). A Create of a group already known is
//     ignored; so is every other op before the first Create, since nobody
//     is a member yet. Ops that arrive before their Create are kept, and
//     take effect when it arrives if they sort after it.
//   - An op whose author is not a member is ignored.
//   - Add, Rename and SetAdmin, and Remove of anyone but oneself, are
//     ignored unless the author is an admin. Any member may Leave (or
//     Remove itself).
//   - Add of a member, Add beyond the size limit and Remove of a
//     non-member are ignored; SetAdmin applies only to members.
//   - A group with members always has an admin: when the last admin
//     leaves, is removed or gives up the role, the member who joined
//     earliest (by the stamp of the Create or Add that made it a member;
//     tie: the smallest account id) becomes admin.
//   - Each member leaving or removed increments the epoch.
//
// Every device sorts the same set the same way and applies the same
// checks, so every device that has the same ops has the same state,
// whatever order they came in. All devices must use the same size limit
// ([DefaultLimit] unless the product sets another).
//
// A stamp is what its author says it is. An op stamped far in the future
// (a skewed clock) sorts after the ops of the present, deterministically;
// devices that observe it move their clocks past it (within the bound the
// client puts on that), so their later ops still sort after it. For the
// same reason a member could backdate an op to when it was still an
// admin; what nobody can do is act with a stamp after its removal. Nor
// are ops signed: whoever forwards a log (to a new member) could put ops
// of other authors in it, so a device takes a whole log only from a
// member it already trusts with the group.
//
// # What the caller does
//
//   - Send each op to [Recipients] of the states before and after it: a
//     removed member's devices must learn of their removal.
//   - Send a member who joined (see [Diff]) the whole log, [Log.Ops].
//   - Rotate its sender key when [State.Epoch] differs from the epoch
//     under which it last distributed one, so that those who left cannot
//     read what follows.
package groups

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/veil-e2ee/veil/client/internal/converge"
)

// Log is the set of ops of one group, kept in fold order, and the state
// they fold to. Its zero value is not usable; see [NewLog]. It is not
// safe for concurrent use (State too updates it).
type Log struct {
	limit int
	group [IDSize]byte
	seen  map[string]bool // encodings of the ops held
	ops   []*entry        // sorted
	f     fold            // the fold of ops, unless stale
	stale bool            // an op was inserted before the end: f must be recomputed
}

type entry struct {
	op  Op
	enc []byte
}

func compareEntries(a, b *entry) int {
	if c := a.op.Stamp.Compare(b.op.Stamp); c != 0 {
		return c
	}
	return bytes.Compare(a.enc, b.enc)
}

// NewLog returns an empty log for a group of at most limit members:
// [DefaultLimit] if limit ≤ 0, at most [MaxLimit]. The group is set by
// the first op added.
func NewLog(limit int) *Log {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Log{limit: min(limit, MaxLimit), seen: map[string]bool{}, f: newFold()}
}

// Add adds op to the set. It reports whether op was new (so the caller
// stores and forwards it); adding it again changes nothing. The state may
// not change even for a new op: one that is not allowed is kept but has
// no effect. It fails, changing nothing, for an op that [Op.Marshal]
// refuses or that is of another group than the ops before it.
func (l *Log) Add(op Op) (changed bool, err error) {
	enc, err := op.Marshal()
	if err != nil {
		return false, err
	}
	if len(l.ops) > 0 && op.Group != l.group {
		return false, ErrOtherGroup
	}
	if l.seen[string(enc)] {
		return false, nil
	}
	op.Members = slices.Clone(op.Members)
	e := &entry{op: op, enc: enc}
	i, _ := slices.BinarySearchFunc(l.ops, e, compareEntries)
	l.ops = slices.Insert(l.ops, i, e)
	l.seen[string(enc)] = true
	l.group = op.Group
	if !l.stale && i == len(l.ops)-1 {
		l.f.apply(&l.ops[i].op, l.limit) // the usual case: the newest op
	} else {
		l.stale = true // fold again when the state is asked for
	}
	return true, nil
}

// Len returns the number of ops in the log.
func (l *Log) Len() int { return len(l.ops) }

// Ops returns a copy of the ops, in fold order: what a member who joins
// is sent.
func (l *Log) Ops() []Op {
	out := make([]Op, len(l.ops))
	for i, e := range l.ops {
		out[i] = e.op
		out[i].Members = slices.Clone(e.op.Members)
	}
	return out
}

// State returns the state the ops fold to (a copy).
func (l *Log) State() State {
	if l.stale {
		l.f = newFold()
		for i := range l.ops {
			l.f.apply(&l.ops[i].op, l.limit)
		}
		l.stale = false
	}
	return l.f.snapshot().clone()
}

// State is a group as the fold of its ops leaves it.
type State struct {
	Known   bool     // a Create has been applied
	Name    string   // kept secret
	Members []string // sorted
	Admins  []string // sorted; a subset of Members, not empty if Members is not
	Removed []string // sorted: every account that ever left or was removed (it may be back)
	// Epoch counts members leaving or removed. The caller rotates its
	// sender key when the epoch it last distributed one under differs.
	Epoch int
}

func (s State) clone() State {
	s.Members, s.Admins, s.Removed = slices.Clone(s.Members), slices.Clone(s.Admins), slices.Clone(s.Removed)
	return s
}

// IsMember reports whether account a is a member.
func (s State) IsMember(a string) bool { _, ok := slices.BinarySearch(s.Members, a); return ok }

// IsAdmin reports whether account a is an admin.
func (s State) IsAdmin(a string) bool { _, ok := slices.BinarySearch(s.Admins, a); return ok }

// fold is the state while ops are applied.
type fold struct {
	known   bool
	name    string
	joined  map[string]converge.Stamp // members, and the stamp that made each one
	admins  map[string]bool
	removed map[string]bool
	epoch   int

	// The sets sorted, nil when they changed since the last snapshot.
	sortedMembers, sortedAdmins, sortedRemoved []string
}

func newFold() fold {
	return fold{joined: map[string]converge.Stamp{}, admins: map[string]bool{}, removed: map[string]bool{}}
}

func (f *fold) isMember(a string) bool { _, ok := f.joined[a]; return ok }

// apply applies one op, in fold order, if the state at this point
// allows it.
func (f *fold) apply(o *Op, limit int) {
	if !f.known {
		if o.Kind == Create {
			f.known, f.name = true, o.Name
			f.join(o.Author, o.Stamp)
			f.setAdmin(o.Author, true)
			for _, m := range o.Members {
				if len(f.joined) < limit && !f.isMember(m) {
					f.join(m, o.Stamp)
				}
			}
		}
		return
	}
	if !f.isMember(o.Author) {
		return
	}
	admin := f.admins[o.Author]
	switch o.Kind {
	case Add:
		if admin && !f.isMember(o.Member) && len(f.joined) < limit {
			f.join(o.Member, o.Stamp)
		}
	case Remove, Leave:
		who := o.Author
		if o.Kind == Remove {
			who = o.Member
		}
		if (who != o.Author && !admin) || !f.isMember(who) {
			return
		}
		delete(f.joined, who)
		f.setAdmin(who, false)
		f.removed[who] = true
		f.sortedMembers, f.sortedRemoved = nil, nil
		f.epoch++
		f.keepAnAdmin()
	case Rename:
		if admin {
			f.name = o.Name
		}
	case SetAdmin:
		if !admin || !f.isMember(o.Member) {
			return
		}
		f.setAdmin(o.Member, o.Admin)
		f.keepAnAdmin()
	}
}

// keepAnAdmin makes the earliest member an admin if there is none.
func (f *fold) keepAnAdmin() {
	if len(f.admins) > 0 || len(f.joined) == 0 {
		return
	}
	var first string
	var at converge.Stamp
	for m, s := range f.joined {
		if first == "" || cmp.Or(s.Compare(at), strings.Compare(m, first)) < 0 {
			first, at = m, s
		}
	}
	f.setAdmin(first, true)
}

func (f *fold) join(m string, at converge.Stamp) {
	f.joined[m] = at
	f.sortedMembers = nil
}

func (f *fold) setAdmin(m string, admin bool) {
	if f.admins[m] == admin {
		return
	}
	if admin {
		f.admins[m] = true
	} else {
		delete(f.admins, m)
	}
	f.sortedAdmins = nil
}

// snapshot returns the state; its slices are the fold's own.
func (f *fold) snapshot() State {
	if f.sortedMembers == nil {
		f.sortedMembers = sortedKeys(f.joined)
	}
	if f.sortedAdmins == nil {
		f.sortedAdmins = sortedKeys(f.admins)
	}
	if f.sortedRemoved == nil {
		f.sortedRemoved = sortedKeys(f.removed)
	}
	return State{Known: f.known, Name: f.name, Members: f.sortedMembers, Admins: f.sortedAdmins, Removed: f.sortedRemoved, Epoch: f.epoch}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ChangeKind is what a [Change] says happened.
type ChangeKind int

// The kinds of change, in the order [Diff] lists them.
const (
	Created      ChangeKind = iota + 1 // the group became known (Name)
	Renamed                            // Name
	Joined                             // Member
	Left                               // Member left or was removed
	AdminGranted                       // Member
	AdminRevoked                       // Member, still a member
)

var changeNames = [...]string{"", "created", "renamed", "joined", "left", "admin granted", "admin revoked"}

func (k ChangeKind) String() string {
	if k < Created || k > AdminRevoked {
		return fmt.Sprintf("change(%d)", int(k))
	}
	return changeNames[k]
}

// Change is one difference between two states, for the UI.
type Change struct {
	Kind   ChangeKind
	Member string // Joined, Left, AdminGranted, AdminRevoked
	Name   string // Created, Renamed
}

// Diff lists what changed from before to after: the group created or
// renamed, then members who joined, who left (or were removed), who
// became admins and who stopped being admins while staying members, each
// sorted by account.
func Diff(before, after State) []Change {
	var out []Change
	switch {
	case !before.Known && after.Known:
		out = append(out, Change{Kind: Created, Name: after.Name})
	case before.Name != after.Name:
		out = append(out, Change{Kind: Renamed, Name: after.Name})
	}
	add := func(k ChangeKind, ms []string) {
		for _, m := range ms {
			out = append(out, Change{Kind: k, Member: m})
		}
	}
	add(Joined, minus(after.Members, before.Members))
	add(Left, minus(before.Members, after.Members))
	add(AdminGranted, minus(after.Admins, before.Admins))
	for _, m := range minus(before.Admins, after.Admins) {
		if after.IsMember(m) {
			out = append(out, Change{Kind: AdminRevoked, Member: m})
		}
	}
	return out
}

// Recipients returns the accounts that must receive an op taking a group
// from before to after: the members of either, sorted. A removed member
// is in before, so its devices learn they were removed; an added one is
// in after (and should get the whole log, [Log.Ops]).
func Recipients(before, after State) []string {
	out := append(slices.Clone(before.Members), minus(after.Members, before.Members)...)
	slices.Sort(out)
	return out
}

// minus returns the elements of sorted a that are not in sorted b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}
