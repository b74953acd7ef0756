package converge

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// replica is one device's view: the state of each message by id, and
// read markers by (conversation, reader).
type replica struct {
	msgs  map[string]*State
	reads map[string]*ReadMarker
}

type event struct {
	msg    string // message id ("sender/n"); "" for a read marker
	sender string
	op     Op
	read   string // read marker key
}

func (r *replica) apply(e event) {
	if e.msg == "" {
		if r.reads[e.read] == nil {
			r.reads[e.read] = &ReadMarker{}
		}
		r.reads[e.read].Advance(e.op.Stamp)
		return
	}
	s := r.msgs[e.msg]
	if s == nil {
		s = &State{Sender: e.sender}
		r.msgs[e.msg] = s
	}
	s.Apply(e.op)
}

func (r *replica) view() (map[string]Visible, map[string]Stamp) {
	v := map[string]Visible{}
	for id, s := range r.msgs {
		v[id] = s.View()
	}
	m := map[string]Stamp{}
	for k, rm := range r.reads {
		m[k] = rm.Stamp
	}
	return v, m
}

// TestConvergence: 3 users with 3 devices each make random messages,
// edits (some by people who may not), deletes, reactions and read
// markers with their own hybrid clocks; every one of the 9 devices gets
// all operations in its own random order, with duplicates, and all end
// in the same state — the state of applying them in stamp order.
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		users := []string{"alice", "bob", "carol"}
		var clocks []*Clock
		var devs []string
		for _, u := range users {
			for d := 1; d <= 3; d++ {
				origin := fmt.Sprintf("%s.%d", u, d)
				devs = append(devs, origin)
				clocks = append(clocks, &Clock{Origin: origin})
			}
		}
		wall := int64(1_700_000_000_000)
		var events []event
		var posted []event
		n := rapid.IntRange(1, 60).Draw(t, "ops")
		for i := 0; i < n; i++ {
			d := rapid.IntRange(0, len(devs)-1).Draw(t, "device")
			author := users[d/3]
			wall += int64(rapid.IntRange(-5, 5).Draw(t, "skew")) // clocks disagree a little
			// A device has seen some earlier operations before it acts.
			for _, e := range events {
				if rapid.Bool().Draw(t, "seen") {
					clocks[d].Observe(e.op.Stamp)
				}
			}
			st := clocks[d].Now(wall)
			kind := rapid.IntRange(0, 4).Draw(t, "kind")
			if len(posted) == 0 || kind == 0 {
				id := fmt.Sprintf("%s/%d", author, i)
				e := event{msg: id, sender: author, op: Op{Kind: Post, Author: author, Stamp: st, Body: fmt.Sprintf("text %d", i)}}
				events, posted = append(events, e), append(posted, e)
				continue
			}
			target := posted[rapid.IntRange(0, len(posted)-1).Draw(t, "target")]
			e := event{msg: target.msg, sender: target.sender}
			switch kind {
			case 1:
				e.op = Op{Kind: Edit, Author: author, Stamp: st, Body: fmt.Sprintf("edit %d", i)}
			case 2:
				e.op = Op{Kind: Delete, Author: author, Stamp: st}
			case 3:
				e.op = Op{Kind: React, Author: author, Stamp: st, Emoji: rapid.SampledFrom([]string{"", "👍", "❤️", "😂"}).Draw(t, "emoji")}
			case 4:
				e = event{read: "conv/" + author, op: Op{Stamp: st}}
			}
			events = append(events, e)
		}

		// The reference: every operation once, in stamp order.
		ref := &replica{msgs: map[string]*State{}, reads: map[string]*ReadMarker{}}
		sorted := slices.Clone(events)
		slices.SortStableFunc(sorted, func(a, b event) int { return a.op.Stamp.Compare(b.op.Stamp) })
		for _, e := range sorted {
			ref.apply(e)
		}
		wantV, wantR := ref.view()

		for _, dev := range devs {
			r := &replica{msgs: map[string]*State{}, reads: map[string]*ReadMarker{}}
			order := rapid.Permutation(events).Draw(t, "order of "+dev)
			for _, e := range order {
				r.apply(e)
				if rapid.IntRange(0, 4).Draw(t, "dup") == 0 { // duplicates, at once and later
					r.apply(e)
					order = append(order, e)
				}
			}
			for _, e := range order[len(events):] {
				r.apply(e)
			}
			gotV, gotR := r.view()
			if !reflect.DeepEqual(gotV, wantV) || !reflect.DeepEqual(gotR, wantR) {
				t.Fatalf("%s diverged:\n got %v %v\nwant %v %v", dev, gotV, gotR, wantV, wantR)
			}
		}
	})
}

func TestRules(t *testing.T) {
	s := func(time int64, o string) Stamp { return Stamp{Time: time, Origin: o} }
	st := &State{Sender: "bob"}
	// An edit and a reaction before the message itself.
	st.Apply(Op{Kind: Edit, Author: "bob", Stamp: s(20, "bob.1"), Body: "fixed"})
	st.Apply(Op{Kind: React, Author: "alice", Stamp: s(30, "alice.1"), Emoji: "👍"})
	if v := st.View(); v.Posted || v.Body != "fixed" {
		t.Fatalf("before the post: %+v", v)
	}
	st.Apply(Op{Kind: Post, Author: "bob", Stamp: s(10, "bob.1"), Body: "fxied"})
	if v := st.View(); !v.Posted || v.Body != "fixed" || !v.Edited || v.Reactions["alice"] != "👍" {
		t.Fatalf("after the post: %+v", v)
	}
	// Someone else cannot edit or delete it.
	if st.Apply(Op{Kind: Edit, Author: "mallory", Stamp: s(99, "mallory.1"), Body: "pwned"}) ||
		st.Apply(Op{Kind: Delete, Author: "mallory", Stamp: s(99, "mallory.1")}) {
		t.Fatal("a non-sender changed the message")
	}
	// An older reaction does not replace a newer removal.
	st.Apply(Op{Kind: React, Author: "alice", Stamp: s(40, "alice.2"), Emoji: ""})
	st.Apply(Op{Kind: React, Author: "alice", Stamp: s(35, "alice.1"), Emoji: "❤️"})
	if v := st.View(); len(v.Reactions) != 0 {
		t.Fatalf("removed reaction came back: %+v", v.Reactions)
	}
	// Delete wins over a later edit.
	st.Apply(Op{Kind: Delete, Author: "bob", Stamp: s(50, "bob.2")})
	st.Apply(Op{Kind: Edit, Author: "bob", Stamp: s(60, "bob.1"), Body: "undeleted?"})
	if v := st.View(); !v.Deleted || v.Body != "" || v.Edited {
		t.Fatalf("after delete and a later edit: %+v", v)
	}
	// Equal times break ties by origin, the same way everywhere.
	if s(5, "a.1").Compare(s(5, "b.1")) >= 0 || (Stamp{Time: 5, Counter: 1}).Compare(s(5, "z")) <= 0 {
		t.Fatal("stamp order")
	}
}

func TestClock(t *testing.T) {
	c := &Clock{Origin: "a.1"}
	a := c.Now(100)
	b := c.Now(90) // the wall clock went back
	if b.Compare(a) <= 0 {
		t.Fatalf("stamps went backwards: %v then %v", a, b)
	}
	c.Observe(Stamp{Time: 500, Counter: 3, Origin: "b.1"})
	if d := c.Now(200); d.Time != 500 || d.Counter != 4 {
		t.Fatalf("after observing 500.3: %v", d)
	}
}
