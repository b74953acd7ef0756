package groups

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"

	"pgregory.net/rapid"

	"github.com/veil-e2ee/veil/client/internal/converge"
)

// reference folds ops the plain way, written apart from the package's
// fold: sort a copy, keep members and admins in slices, and restore the
// admin invariant after every op.
func reference(ops []Op, limit int) State {
	type keyed struct {
		op  Op
		enc string
	}
	var es []keyed
	for _, o := range ops {
		b, err := o.Marshal()
		if err != nil {
			panic(err)
		}
		es = append(es, keyed{o, string(b)})
	}
	sort.Slice(es, func(i, j int) bool {
		if c := es[i].op.Stamp.Compare(es[j].op.Stamp); c != 0 {
			return c < 0
		}
		return es[i].enc < es[j].enc
	})
	s := State{Members: []string{}, Admins: []string{}, Removed: []string{}}
	joinedAt := map[string]converge.Stamp{}
	join := func(m string, at converge.Stamp) {
		if !slices.Contains(s.Members, m) && len(s.Members) < limit {
			s.Members = append(s.Members, m)
			joinedAt[m] = at
		}
	}
	drop := func(list []string, x string) []string {
		return slices.DeleteFunc(list, func(y string) bool { return y == x })
	}
	for _, e := range es {
		o := e.op
		if !s.Known {
			if o.Kind == Create {
				s.Known, s.Name = true, o.Name
				s.Admins = append(s.Admins, o.Author)
				join(o.Author, o.Stamp)
				for _, m := range o.Members {
					join(m, o.Stamp)
				}
			}
			continue
		}
		if !slices.Contains(s.Members, o.Author) {
			continue
		}
		admin := slices.Contains(s.Admins, o.Author)
		target := o.Member
		if o.Kind == Leave {
			target = o.Author
		}
		switch {
		case o.Kind == Add && admin:
			join(o.Member, o.Stamp)
		case (o.Kind == Leave || o.Kind == Remove) && (admin || target == o.Author) && slices.Contains(s.Members, target):
			s.Members, s.Admins = drop(s.Members, target), drop(s.Admins, target)
			if !slices.Contains(s.Removed, target) {
				s.Removed = append(s.Removed, target)
			}
			s.Epoch++
		case o.Kind == Rename && admin:
			s.Name = o.Name
		case o.Kind == SetAdmin && admin && slices.Contains(s.Members, target):
			s.Admins = drop(s.Admins, target)
			if o.Admin {
				s.Admins = append(s.Admins, target)
			}
		}
		if len(s.Admins) == 0 && len(s.Members) > 0 {
			byJoin := slices.Clone(s.Members)
			slices.SortFunc(byJoin, func(a, b string) int {
				if c := joinedAt[a].Compare(joinedAt[b]); c != 0 {
					return c
				}
				return compareStrings(a, b)
			})
			s.Admins = []string{byJoin[0]}
		}
	}
	slices.Sort(s.Members)
	slices.Sort(s.Admins)
	slices.Sort(s.Removed)
	return s
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type event struct {
	op    Op
	valid bool
}

// TestConvergence: five people with two devices each make random ops —
// most not allowed at the point where they land — with their own clocks,
// some skewed far into the future, some reusing another op's stamp; some
// ops are malformed. Three devices get them in their own random orders
// with duplicates. Every device ends in the same state, which is the
// reference fold of the valid ops; after every step, one device's state
// is the reference fold of what it has so far. A member added later,
// given Ops(), reaches the same state.
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		users := []string{"alice", "bob", "carol", "dave", "erin"}
		var clocks []*converge.Clock
		for _, u := range users {
			for d := 1; d <= 2; d++ {
				clocks = append(clocks, &converge.Clock{Origin: fmt.Sprintf("%s.%d", u, d)})
			}
		}
		limit := rapid.IntRange(2, 6).Draw(t, "limit")
		who := rapid.SampledFrom(append(slices.Clone(users), "zed"))
		wall := int64(1_700_000_000_000)
		var events []event
		n := rapid.IntRange(1, 50).Draw(t, "ops")
		for i := 0; i < n; i++ {
			d := rapid.IntRange(0, len(clocks)-1).Draw(t, "device")
			author := users[d/2]
			for _, e := range events {
				if rapid.Bool().Draw(t, "seen") {
					clocks[d].Observe(e.op.Stamp)
				}
			}
			wall += int64(rapid.IntRange(-5, 5).Draw(t, "skew"))
			w := wall
			if rapid.IntRange(0, 19).Draw(t, "future") == 0 {
				w += 365 * 24 * 3600 * 1000
			}
			kind := Kind(rapid.IntRange(0, 6).Draw(t, "kind"))
			if kind == 0 || i == 0 && rapid.Bool().Draw(t, "create first") {
				kind = Create
			}
			o := Op{Group: gid, Kind: kind, Author: author, Stamp: clocks[d].Now(w)}
			if len(events) > 0 && rapid.IntRange(0, 9).Draw(t, "reuse stamp") == 0 {
				// A buggy or hostile client reuses a stamp: the encoding breaks the tie.
				o.Stamp = events[rapid.IntRange(0, len(events)-1).Draw(t, "stamp of")].op.Stamp
			}
			switch kind {
			case Create:
				o.Name = rapid.SampledFrom([]string{"", "hikers", "walkers"}).Draw(t, "name")
				o.Members = rapid.SliceOfNDistinct(who, 0, 4, rapid.ID[string]).Draw(t, "members")
				if len(o.Members) == 0 {
					o.Members = nil
				}
			case Add, Remove, SetAdmin:
				o.Member = who.Draw(t, "member")
				o.Admin = kind == SetAdmin && rapid.Bool().Draw(t, "admin")
			case Rename:
				o.Name = rapid.SampledFrom([]string{"", "hikers", "walkers", "climbers"}).Draw(t, "name")
			}
			valid := rapid.IntRange(0, 14).Draw(t, "malformed") != 0
			if !valid {
				o.Name = "\xff" // not UTF-8, on any kind
			}
			events = append(events, event{o, valid})
		}
		var validOps []Op
		for _, e := range events {
			if e.valid {
				validOps = append(validOps, e.op)
			}
		}
		want := reference(validOps, limit)

		var states []State
		var logs [][]Op
		for r := 0; r < 3; r++ {
			l := NewLog(limit)
			var have []Op
			order := rapid.Permutation(events).Draw(t, fmt.Sprintf("order %d", r))
			for i := 0; i < len(order); i++ {
				e := order[i]
				changed, err := l.Add(e.op)
				switch {
				case !e.valid:
					if !errors.Is(err, ErrInvalid) || changed {
						t.Fatalf("malformed op: %v %v", changed, err)
					}
					continue
				case err != nil:
					t.Fatalf("Add: %v", err)
				case changed == slices.ContainsFunc(have, func(o Op) bool { return reflect.DeepEqual(o, e.op) }):
					t.Fatalf("Add reported changed=%v for an op seen before=%v", changed, !changed)
				}
				if changed {
					have = append(have, e.op)
				}
				if r == 0 {
					if got, ref := l.State(), reference(have, limit); !reflect.DeepEqual(got, ref) {
						t.Fatalf("after %d ops:\n got %+v\nwant %+v", len(have), got, ref)
					}
				}
				if i < len(events) && rapid.IntRange(0, 3).Draw(t, "dup") == 0 {
					order = append(order, e) // again, later
				}
			}
			states, logs = append(states, l.State()), append(logs, l.Ops())
		}
		for r, s := range states {
			if !reflect.DeepEqual(s, want) {
				t.Fatalf("replica %d diverged:\n got %+v\nwant %+v", r, s, want)
			}
			if !reflect.DeepEqual(logs[r], logs[0]) {
				t.Fatalf("replica %d has other ops", r)
			}
		}
		if want.Known {
			if len(want.Members) > limit || len(want.Members) > 0 && len(want.Admins) == 0 {
				t.Fatalf("invariant broken: %+v", want)
			}
			for _, a := range want.Admins {
				if !want.IsMember(a) {
					t.Fatalf("admin %s not a member", a)
				}
			}
		}
		// A newly added member receives the log and reaches the same state.
		l := NewLog(limit)
		for _, o := range logs[0] {
			if _, err := l.Add(o); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(l.State(), want) {
			t.Fatalf("from Ops(): %+v", l.State())
		}
	})
}
