package groups

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/veil-e2ee/veil/client/internal/converge"
)

var gid = [IDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// at is the op of author at time t (origin "author.1").
func at(t int64, author string, k Kind) Op {
	return Op{Group: gid, Kind: k, Author: author, Stamp: converge.Stamp{Time: t, Origin: author + ".1"}}
}

func create(t int64, author, name string, members ...string) Op {
	o := at(t, author, Create)
	o.Name, o.Members = name, members
	return o
}

func member(t int64, author string, k Kind, m string) Op {
	o := at(t, author, k)
	o.Member = m
	return o
}

func setAdmin(t int64, author, m string, admin bool) Op {
	o := member(t, author, SetAdmin, m)
	o.Admin = admin
	return o
}

func rename(t int64, author, name string) Op {
	o := at(t, author, Rename)
	o.Name = name
	return o
}

func logOf(t *testing.T, limit int, ops ...Op) *Log {
	t.Helper()
	l := NewLog(limit)
	for _, o := range ops {
		if _, err := l.Add(o); err != nil {
			t.Fatalf("Add(%v by %s): %v", o.Kind, o.Author, err)
		}
	}
	return l
}

func check(t *testing.T, s State, members, admins string) {
	t.Helper()
	split := func(s string) []string {
		if s == "" {
			return []string{}
		}
		return strings.Split(s, ",")
	}
	if !s.Known || !slices.Equal(s.Members, split(members)) || !slices.Equal(s.Admins, split(admins)) {
		t.Fatalf("state %+v, want members %q admins %q", s, members, admins)
	}
}

func TestCreate(t *testing.T) {
	l := logOf(t, 0, create(10, "alice", "hikers", "carol", "bob"))
	s := l.State()
	check(t, s, "alice,bob,carol", "alice")
	if s.Name != "hikers" || s.Epoch != 0 || len(s.Removed) != 0 {
		t.Fatalf("state %+v", s)
	}
	if !s.IsMember("bob") || s.IsMember("dave") || !s.IsAdmin("alice") || s.IsAdmin("bob") {
		t.Fatal("IsMember/IsAdmin")
	}
	// A second Create, even a later one by a member, is ignored.
	l = logOf(t, 0, create(10, "alice", "hikers", "bob"), create(20, "bob", "mine", "dave"))
	check(t, l.State(), "alice,bob", "alice")
	// So is an earlier Create of a group someone else made: the first one wins.
	l = logOf(t, 0, create(20, "bob", "mine", "dave"), create(10, "alice", "hikers", "bob"))
	if s := l.State(); s.Name != "hikers" {
		t.Fatalf("name %q", s.Name)
	}
	// The author listed among the members is still one member.
	check(t, logOf(t, 0, create(10, "alice", "", "alice", "bob")).State(), "alice,bob", "alice")
}

func TestUnknownUntilCreate(t *testing.T) {
	l := NewLog(0)
	ops := []Op{member(20, "alice", Add, "dave"), rename(21, "alice", "renamed"), member(5, "alice", Add, "erin")}
	for _, o := range ops {
		if changed, err := l.Add(o); !changed || err != nil {
			t.Fatalf("Add: %v %v", changed, err)
		}
		if s := l.State(); s.Known || len(s.Members) != 0 {
			t.Fatalf("known without a Create: %+v", s)
		}
	}
	// The Create arrives last; the ops after it in stamp order apply, the
	// one before it (5) does not: nobody was a member then.
	l.Add(create(10, "alice", "hikers", "bob"))
	s := l.State()
	check(t, s, "alice,bob,dave", "alice")
	if s.Name != "renamed" || l.Len() != 4 {
		t.Fatalf("state %+v, %d ops", s, l.Len())
	}
}

func TestAuthorization(t *testing.T) {
	c := create(10, "alice", "hikers", "bob", "carol")
	// Non-admins cannot add, remove others, rename or set admins.
	l := logOf(t, 0, c,
		member(20, "bob", Add, "mallory"),
		member(21, "bob", Remove, "carol"),
		rename(22, "bob", "bob's"),
		setAdmin(23, "bob", "bob", true),
		setAdmin(24, "bob", "alice", false),
	)
	s := l.State()
	check(t, s, "alice,bob,carol", "alice")
	if s.Name != "hikers" || l.Len() != 6 {
		t.Fatalf("state %+v, %d ops (ignored ops are kept)", s, l.Len())
	}
	// Non-members can do nothing, not even leave.
	l = logOf(t, 0, c, member(20, "mallory", Add, "eve"), at(21, "mallory", Leave), rename(22, "mallory", "x"))
	check(t, l.State(), "alice,bob,carol", "alice")
	// Admins can; a removed admin no longer can.
	l = logOf(t, 0, c,
		setAdmin(20, "alice", "bob", true),
		member(21, "bob", Add, "dave"),
		rename(22, "bob", "bob's"),
		member(23, "alice", Remove, "bob"),
		member(24, "bob", Add, "mallory"),
	)
	s = l.State()
	check(t, s, "alice,carol,dave", "alice")
	if s.Name != "bob's" || !slices.Equal(s.Removed, []string{"bob"}) || s.Epoch != 1 {
		t.Fatalf("state %+v", s)
	}
	// Anyone may leave or remove themselves; removing a non-member does nothing.
	l = logOf(t, 0, c, at(20, "bob", Leave), member(21, "carol", Remove, "carol"), member(22, "alice", Remove, "zed"))
	s = l.State()
	check(t, s, "alice", "alice")
	if !slices.Equal(s.Removed, []string{"bob", "carol"}) || s.Epoch != 2 {
		t.Fatalf("state %+v", s)
	}
	// Adding a member again, or making a non-member admin, does nothing.
	l = logOf(t, 0, c, member(20, "alice", Add, "bob"), setAdmin(21, "alice", "zed", true))
	check(t, l.State(), "alice,bob,carol", "alice")
}

func TestSizeLimit(t *testing.T) {
	// The Create is cut at the limit, in the order it lists members.
	l := logOf(t, 3, create(10, "alice", "", "dave", "carol", "bob"), member(20, "alice", Add, "erin"))
	check(t, l.State(), "alice,carol,dave", "alice")
	// A place freed by a removal can be taken again.
	l.Add(member(30, "alice", Remove, "dave"))
	l.Add(member(31, "alice", Add, "erin"))
	l.Add(member(32, "alice", Add, "frank"))
	check(t, l.State(), "alice,carol,erin", "alice")
}

func TestLastAdmin(t *testing.T) {
	c := create(10, "alice", "", "carol", "bob")
	// Creation members tie on the stamp: the smallest account id wins.
	l := logOf(t, 0, c, at(20, "alice", Leave))
	check(t, l.State(), "bob,carol", "bob")
	// Otherwise the earliest to join.
	l = logOf(t, 0, c, member(11, "alice", Remove, "bob"), member(12, "alice", Add, "bob"), at(20, "alice", Leave))
	check(t, l.State(), "bob,carol", "carol")
	// Giving up the role is the same.
	l = logOf(t, 0, c, member(11, "alice", Add, "aaron"), setAdmin(12, "alice", "alice", false))
	check(t, l.State(), "aaron,alice,bob,carol", "alice")
	l = logOf(t, 0, c, setAdmin(11, "alice", "carol", true), setAdmin(12, "alice", "alice", false))
	check(t, l.State(), "alice,bob,carol", "carol")
	// Removal of the last admin by itself, then the last member leaves.
	l = logOf(t, 0, create(10, "alice", "", "bob"), member(11, "alice", Remove, "alice"), at(12, "bob", Leave), member(13, "bob", Add, "alice"))
	s := l.State()
	check(t, s, "", "")
	if s.Epoch != 2 {
		t.Fatalf("epoch %d", s.Epoch)
	}
}

func TestOrderAndTies(t *testing.T) {
	c := create(10, "alice", "", "bob")
	// Same stamp time: the counter, then the origin decide.
	rb := rename(20, "alice", "b")
	rb.Stamp.Origin = "alice.2"
	l1 := logOf(t, 0, c, rename(20, "alice", "a"), rb)
	l2 := logOf(t, 0, rb, c, rename(20, "alice", "a"))
	if l1.State().Name != "b" || l2.State().Name != "b" {
		t.Fatalf("names %q %q", l1.State().Name, l2.State().Name)
	}
	// Identical stamps (a buggy or hostile client): the encoding decides,
	// the same way everywhere.
	x, y := rename(20, "alice", "x"), rename(20, "alice", "y")
	if a, b := logOf(t, 0, c, x, y).State(), logOf(t, 0, y, c, x).State(); a.Name != "y" || !reflect.DeepEqual(a, b) {
		t.Fatalf("tie: %+v vs %+v", a, b)
	}
	// Ops() is in fold order.
	ops := logOf(t, 0, y, member(15, "alice", Add, "carol"), c, x).Ops()
	var kinds []Kind
	for _, o := range ops {
		kinds = append(kinds, o.Kind)
	}
	if !slices.Equal(kinds, []Kind{Create, Add, Rename, Rename}) || ops[2].Name != "x" {
		t.Fatalf("Ops order %v", kinds)
	}
}

// An admin with a clock a year ahead removes bob. Devices that see that
// op move their clocks past it, so what they do next is ordered after it;
// an op made without seeing it sorts before it. Either way every device
// agrees.
func TestFutureStamp(t *testing.T) {
	const now, year = int64(1_700_000_000_000), int64(365 * 24 * 3600 * 1000)
	alice, carol := &converge.Clock{Origin: "alice.1"}, &converge.Clock{Origin: "carol.1"}
	c := create(0, "alice", "", "bob", "carol")
	c.Stamp = alice.Now(now)
	grant := setAdmin(0, "alice", "carol", true)
	grant.Stamp = alice.Now(now + 1)
	skewed := member(0, "alice", Remove, "bob")
	skewed.Stamp = alice.Now(now + year)
	// carol re-adds bob before she sees the removal, and again after.
	carol.Observe(grant.Stamp)
	before := member(0, "carol", Add, "bob")
	before.Stamp = carol.Now(now + 2)
	carol.Observe(skewed.Stamp)
	after := member(0, "carol", Add, "bob")
	after.Stamp = carol.Now(now + 3)

	l1 := logOf(t, 0, c, grant, skewed, before)
	l2 := logOf(t, 0, before, skewed, grant, c)
	if a, b := l1.State(), l2.State(); !reflect.DeepEqual(a, b) || a.IsMember("bob") {
		t.Fatalf("before re-add: %+v vs %+v", a, b)
	}
	l1.Add(after)
	if s := l1.State(); !s.IsMember("bob") || s.Epoch != 1 {
		t.Fatalf("after re-add: %+v", s)
	}
}

func TestLogAdd(t *testing.T) {
	l := NewLog(0)
	c := create(10, "alice", "hikers", "bob")
	if changed, err := l.Add(c); !changed || err != nil {
		t.Fatalf("first Add: %v %v", changed, err)
	}
	if changed, err := l.Add(c); changed || err != nil {
		t.Fatalf("duplicate Add: %v %v", changed, err)
	}
	other := rename(11, "alice", "x")
	other.Group[0] ^= 1
	if _, err := l.Add(other); !errors.Is(err, ErrOtherGroup) {
		t.Fatalf("other group: %v", err)
	}
	bad := rename(11, "alice", "\xff")
	if _, err := l.Add(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid op: %v", err)
	}
	if l.Len() != 1 {
		t.Fatalf("%d ops", l.Len())
	}
	// The log and its state are not aliased by what the caller holds.
	c.Members[0] = "mallory"
	s := l.State()
	s.Members[0] = "mallory"
	l.Ops()[0].Members[0] = "mallory"
	if s := l.State(); !slices.Equal(s.Members, []string{"alice", "bob"}) || l.Ops()[0].Members[0] != "bob" {
		t.Fatalf("aliased: %+v", s)
	}
}

func TestDiffAndRecipients(t *testing.T) {
	s0 := State{}
	s1 := State{Known: true, Name: "hikers", Members: []string{"alice", "bob", "carol"}, Admins: []string{"alice"}}
	s2 := State{Known: true, Name: "walkers", Members: []string{"alice", "carol", "dave"}, Admins: []string{"carol"}, Removed: []string{"bob"}, Epoch: 1}
	s3 := State{Known: true, Name: "walkers", Members: []string{"carol", "dave"}, Admins: []string{"dave"}, Removed: []string{"alice", "bob"}, Epoch: 2}
	tests := []struct {
		before, after State
		want          []Change
	}{
		{s0, s1, []Change{{Kind: Created, Name: "hikers"}, {Kind: Joined, Member: "alice"}, {Kind: Joined, Member: "bob"},
			{Kind: Joined, Member: "carol"}, {Kind: AdminGranted, Member: "alice"}}},
		{s1, s2, []Change{{Kind: Renamed, Name: "walkers"}, {Kind: Joined, Member: "dave"}, {Kind: Left, Member: "bob"},
			{Kind: AdminGranted, Member: "carol"}, {Kind: AdminRevoked, Member: "alice"}}},
		// An admin who left is reported as having left, not as revoked.
		{s2, s3, []Change{{Kind: Left, Member: "alice"}, {Kind: AdminGranted, Member: "dave"}, {Kind: AdminRevoked, Member: "carol"}}},
		{s3, s3, nil},
	}
	for i, tt := range tests {
		if got := Diff(tt.before, tt.after); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%d: Diff = %+v, want %+v", i, got, tt.want)
		}
	}
	if got := Recipients(s1, s2); !slices.Equal(got, []string{"alice", "bob", "carol", "dave"}) {
		t.Fatalf("Recipients = %v", got)
	}
}
