// Package converge is the rule by which every device of every participant
// reaches the same state for a message, whatever order its operations
// arrive in and however often: the message itself, edits, "delete for
// everyone", reactions and read markers.
//
// # The rule
//
// Every operation carries a hybrid logical clock stamp (HLC: wall-clock
// milliseconds and a counter, see [Clock]) and its origin (the sending
// account and device). Stamps are totally ordered by (time, counter,
// origin), so any two operations compare the same way on every device.
//
//   - Body: last writer wins. The message's own text has its send stamp;
//     an edit replaces the body only if its stamp is greater. Only the
//     message's sender may edit it.
//   - Delete for everyone: wins over everything. Once a delete by the
//     sender is seen, the message is deleted whatever edits arrive
//     before or after; its body is gone.
//   - Reactions: one per (message, reacting account), last writer wins; an
//     empty emoji removes the reaction (a tombstone, so an older reaction
//     arriving later does not come back).
//   - Read marker: per (conversation, reader account), the greatest stamp
//     wins (markers only move forward).
//
// Each of these is a join-semilattice merge (max under a total order, or
// a flag that only turns on), so applying a set of operations in any
// order, with any duplicates, gives the same result. An edit, delete or
// reaction that arrives before its message is kept and applied when the
// message arrives ([State.Apply] works on a State that may not have the
// message yet).
package converge

import (
	"cmp"
	"fmt"
	"strings"
)

// Stamp orders operations: HLC time and counter, then origin.
type Stamp struct {
	Time    int64  // wall-clock milliseconds (HLC physical part)
	Counter uint32 // HLC logical part
	Origin  string // "account.device" of the writer: the tie-break
}

// Compare orders stamps totally: -1, 0 or +1.
func (a Stamp) Compare(b Stamp) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Counter, b.Counter); c != 0 {
		return c
	}
	return strings.Compare(a.Origin, b.Origin)
}

// IsZero reports whether s is the zero stamp (nothing written yet).
func (a Stamp) IsZero() bool { return a == Stamp{} }

func (a Stamp) String() string { return fmt.Sprintf("%d.%d@%s", a.Time, a.Counter, a.Origin) }

// Clock is a hybrid logical clock: stamps it issues increase, stay close
// to wall-clock time, and move past every stamp it has seen, so an edit
// made after seeing a message is ordered after it even if the editor's
// clock is behind.
type Clock struct {
	Last   Stamp // the greatest stamp issued or seen (Origin unused)
	Origin string
}

// Now issues a stamp for a local operation at wall-clock time wall (ms).
func (c *Clock) Now(wall int64) Stamp {
	if wall > c.Last.Time {
		c.Last = Stamp{Time: wall}
	} else {
		c.Last.Counter++
	}
	return Stamp{Time: c.Last.Time, Counter: c.Last.Counter, Origin: c.Origin}
}

// Observe moves the clock past a stamp received from elsewhere.
func (c *Clock) Observe(s Stamp) {
	if s.Time > c.Last.Time || (s.Time == c.Last.Time && s.Counter > c.Last.Counter) {
		c.Last = Stamp{Time: s.Time, Counter: s.Counter}
	}
}

// Kind is the kind of an operation.
type Kind int

const (
	// Post is the message itself.
	Post Kind = iota + 1
	// Edit replaces the body.
	Edit
	// Delete deletes the message for everyone.
	Delete
	// React sets (or, with an empty emoji, removes) the author's reaction.
	React
)

// Op is one operation on one message. Author is the account that made
// it; for Post, Edit and Delete it must be the message's sender or the
// operation is ignored (a contact cannot edit someone else's message).
type Op struct {
	Kind   Kind
	Author string
	Stamp  Stamp
	Body   string // Post, Edit
	Emoji  string // React ("" removes)
}

// Reaction is one account's reaction and when it was set.
type Reaction struct {
	Emoji string // "" is a removed reaction (kept as a tombstone)
	Stamp Stamp
}

// State is everything known about one message, including operations
// that arrived before it.
type State struct {
	Sender    string // the message's sender account (known from its id's namespace)
	Posted    bool   // the message itself has arrived
	Body      string
	BodyStamp Stamp // the stamp of the winning Post or Edit
	Edited    bool  // the winning body came from an edit
	Deleted   bool
	Reactions map[string]Reaction // by reacting account
}

// Apply merges op into s and reports whether s changed. It is
// idempotent, commutative and associative over any set of operations.
func (s *State) Apply(op Op) bool {
	switch op.Kind {
	case Post, Edit, Delete:
		if op.Author != s.Sender {
			return false // only the sender writes the body
		}
	}
	switch op.Kind {
	case Post:
		changed := !s.Posted
		s.Posted = true
		return s.setBody(op, false) || changed
	case Edit:
		return s.setBody(op, true)
	case Delete:
		if s.Deleted {
			return false
		}
		s.Deleted = true
		s.Body, s.Edited = "", false
		return true
	case React:
		if s.Reactions == nil {
			s.Reactions = map[string]Reaction{}
		}
		old, ok := s.Reactions[op.Author]
		if ok && op.Stamp.Compare(old.Stamp) <= 0 {
			return false
		}
		s.Reactions[op.Author] = Reaction{Emoji: op.Emoji, Stamp: op.Stamp}
		return true
	}
	return false
}

// setBody is the last-writer-wins register of the body; a deleted message
// keeps no body, but the register still advances so the result does not
// depend on whether the delete came first.
func (s *State) setBody(op Op, edit bool) bool {
	if !s.BodyStamp.IsZero() && op.Stamp.Compare(s.BodyStamp) <= 0 {
		return false
	}
	s.BodyStamp, s.Edited = op.Stamp, edit
	if !s.Deleted {
		s.Body = op.Body
	} else {
		s.Edited = false
	}
	return true
}

// Visible is what a device shows: the body (empty when deleted), whether
// it was edited or deleted, and the reactions in force (no tombstones).
type Visible struct {
	Posted    bool
	Body      string
	Edited    bool
	Deleted   bool
	Reactions map[string]string // account → emoji
}

// View returns what a device shows for s.
func (s *State) View() Visible {
	v := Visible{Posted: s.Posted, Body: s.Body, Edited: s.Edited, Deleted: s.Deleted, Reactions: map[string]string{}}
	for who, r := range s.Reactions {
		if r.Emoji != "" {
			v.Reactions[who] = r.Emoji
		}
	}
	return v
}

// ReadMarker is how far an account has read a conversation: the
// greatest stamp wins.
type ReadMarker struct{ Stamp Stamp }

// Advance moves the marker to s if it is further; it reports whether it
// moved.
func (m *ReadMarker) Advance(s Stamp) bool {
	if s.Compare(m.Stamp) <= 0 {
		return false
	}
	m.Stamp = s
	return true
}
