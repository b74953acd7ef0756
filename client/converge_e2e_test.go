package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/protocol"
)

// view is what a device shows of a conversation, independent of local
// ids and of which side it is on.
func view(t *testing.T, c *Client, peer string) []string {
	t.Helper()
	ms, err := c.Messages(context.Background(), peer, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		author := c.Self().Username
		if !m.Outgoing {
			author = m.Peer
		}
		keys := slices.Sorted(maps.Keys(m.Reactions))
		var rs []string
		for _, k := range keys {
			rs = append(rs, k+m.Reactions[k])
		}
		out = append(out, fmt.Sprintf("%s: %q edited=%v deleted=%v reactions=%v", author, m.Body, m.Edited, m.Deleted, rs))
	}
	slices.Sort(out) // arrival order may differ between devices; the states must not
	return out
}

// TestEditsDeletesReactions: two people with two devices each edit,
// delete and react; every device of both ends with the same state, and
// read markers sync between a person's devices.
func TestEditsDeletesReactions(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	alice2, _ := linkDevice(t, ts, alice)
	bob2, _ := linkDevice(t, ts, bob)
	an, bn := alice.Self().Username, bob.Self().Username

	m1 := mustSend(t, alice, bn, "helo bob")
	if _, err := alice.Edit(ctx, m1.ID, "hello bob"); err != nil {
		t.Fatal(err)
	}
	m2 := mustSend(t, alice, bn, "oops, wrong chat")
	if m, err := alice.Delete(ctx, m2.ID); err != nil || !m.Deleted || m.Body != "" {
		t.Fatalf("delete: %+v, %v", m, err)
	}
	if _, err := alice.Edit(ctx, m2.ID, "revived?"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("editing a deleted message: %v", err)
	}
	for _, c := range []*Client{bob, bob2, alice2} {
		drain(t, c)
	}
	// Bob reacts from one device and replies from the other; Alice's
	// second device reacts to the reply.
	got, _ := bob.Messages(ctx, an, 0, 10)
	var b1 Message
	for _, m := range got {
		if m.Body == "hello bob" {
			b1 = m
		}
	}
	if !b1.Edited {
		t.Fatalf("bob's copy of the edited message: %+v", got)
	}
	if _, err := bob.Edit(ctx, b1.ID, "not mine"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bob edited alice's message: %v", err)
	}
	if _, err := bob.React(ctx, b1.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	reply := mustSend(t, bob2, an, "hi alice")
	_ = reply
	for _, c := range []*Client{alice, alice2, bob, bob2} {
		drain(t, c)
	}
	ms, _ := alice2.Messages(ctx, bn, 0, 10)
	for _, m := range ms {
		if m.Body == "hi alice" {
			if _, err := alice2.React(ctx, m.ID, "❤️"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Bob changes his mind about the reaction, from his other device.
	ms, _ = bob2.Messages(ctx, an, 0, 10)
	for _, m := range ms {
		if m.Body == "hello bob" {
			if _, err := bob2.React(ctx, m.ID, "🎉"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for round := 0; round < 2; round++ {
		for _, c := range []*Client{alice, alice2, bob, bob2} {
			drain(t, c)
		}
	}
	want := []string{
		fmt.Sprintf("%s: \"\" edited=false deleted=true reactions=[]", an),
		fmt.Sprintf("%s: \"hello bob\" edited=true deleted=false reactions=[%s🎉]", an, bn),
		fmt.Sprintf("%s: \"hi alice\" edited=false deleted=false reactions=[%s❤️]", bn, an),
	}
	for name, v := range map[string][]string{"alice": view(t, alice, bn), "alice2": view(t, alice2, bn), "bob": view(t, bob, an), "bob2": view(t, bob2, an)} {
		if !slices.Equal(v, want) {
			t.Errorf("%s's view:\n%s\nwant\n%s", name, v, want)
		}
	}
	// The deleted message's text is gone from every store: its row and
	// any edit recorded for it.
	dm, _ := alice.store.Message(ctx, m2.ID)
	for _, c := range []*Client{alice, alice2, bob, bob2} {
		m, err := c.store.MessageByID(ctx, alice.Self().AccountID, dm.MessageID)
		if err != nil || len(m.Body) != 0 || !m.Deleted {
			t.Fatalf("%s: deleted message row %+v, %v", c.Self().Username, m, err)
		}
		ops, _ := c.store.Ops(ctx, alice.Self().AccountID, dm.MessageID)
		for _, op := range ops {
			if op.Body != "" {
				t.Fatalf("%s keeps text of a deleted message in its ops: %q", c.Self().Username, op.Body)
			}
		}
	}

	// Read markers sync between a person's devices.
	if err := alice.MarkRead(ctx, bn); err != nil {
		t.Fatal(err)
	}
	drain(t, alice2)
	m1s, _ := alice.store.ReadMarker(ctx, bob.Self().AccountID)
	m2s, _ := alice2.store.ReadMarker(ctx, bob.Self().AccountID)
	if m1s.IsZero() || m1s != m2s {
		t.Fatalf("read markers: %v on device 1, %v on device 2", m1s, m2s)
	}
}

// TestEditBeforeMessage: an edit and a reaction that arrive before the
// message they target are kept and applied when it arrives.
func TestEditBeforeMessage(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	bob, _ := register(t, ts, "bob")
	const alice, carol = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	id := []byte("0123456789abcdef")
	apply := func(from string, ct content.Content) []Event {
		t.Helper()
		var evs []Event
		err := bob.store.Update(ctx, func(tx *devicestore.Tx) (err error) {
			// A contact row, so no lookup is needed for the made-up accounts.
			if err := tx.PutContact(ctx, devicestore.Contact{AccountID: from, Username: "x" + from[:4], DisplayName: "x"}); err != nil {
				return err
			}
			pt, err := content.Marshal(ct)
			if err != nil {
				return err
			}
			evs, err = bob.apply(ctx, tx, protocol.Address{Name: from, DeviceID: 1}, queuedEnvelope{MessageID: id}, pt)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	me := bob.Self().AccountID
	if evs := apply(alice, content.Content{Op: &content.Op{Kind: content.OpEdit, TargetSender: alice, TargetID: id, Body: "the edit", Time: 200, Conversation: me}}); len(evs) != 0 {
		t.Fatalf("an edit before its message produced %+v", evs)
	}
	apply(carol, content.Content{Op: &content.Op{Kind: content.OpReact, TargetSender: alice, TargetID: id, Emoji: "👀", Time: 210, Conversation: me}})
	apply(carol, content.Content{Op: &content.Op{Kind: content.OpEdit, TargetSender: alice, TargetID: id, Body: "carol's forgery", Time: 300, Conversation: me}})
	evs := apply(alice, content.Content{Text: &content.Text{ID: id, Body: "the original", SentAt: 100}})
	if len(evs) != 1 || evs[0].Message.Body != "the edit" || !evs[0].Message.Edited || evs[0].Message.Reactions["x2222"] != "👀" {
		t.Fatalf("the message after its edit and reaction: %+v", evs)
	}
}

// TestVerificationSync: verifying a contact on one device marks them
// verified on the account's other devices; removing the mark does too.
func TestVerificationSync(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	alice2, _ := linkDevice(t, ts, alice)
	an, bn := alice.Self().Username, bob.Self().Username
	mustSend(t, bob, an, "hi")
	drain(t, alice)
	drain(t, alice2)
	sn, _ := bob.SafetyNumber(ctx, an)
	if err := alice.Verify(ctx, bn, sn.Digits); err != nil {
		t.Fatal(err)
	}
	drain(t, alice2)
	if ct, err := alice2.Contact(ctx, bn); err != nil || !ct.Verified() {
		t.Fatalf("the other device after verifying: %+v, %v", ct, err)
	}
	if err := alice2.Unverify(ctx, bn); err != nil {
		t.Fatal(err)
	}
	drain(t, alice)
	if ct, _ := alice.Contact(ctx, bn); ct.Verified() {
		t.Fatalf("the first device after un-verifying on the second: %+v", ct)
	}
}

// TestConvergenceThroughServer: 3 people with 3 devices each send, edit,
// delete and react at random from random devices, receiving at random
// moments (so operations meet their messages in every order the queues
// allow); when everything is delivered, every device of both people in
// each conversation shows the same state.
func TestConvergenceThroughServer(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	seed := time.Now().UnixNano()
	rng := mrand.New(mrand.NewPCG(uint64(seed), 7))
	t.Logf("seed %d", seed)
	type person struct {
		name    string
		devices []*Client
	}
	var people []*person
	for _, n := range []string{"ann", "ben", "cy"} {
		first, _ := register(t, ts, n)
		p := &person{name: first.Self().Username, devices: []*Client{first}}
		for i := 0; i < 2; i++ {
			d, _ := linkDevice(t, ts, first)
			p.devices = append(p.devices, d)
		}
		people = append(people, p)
	}
	var all []*Client
	for _, p := range people {
		all = append(all, p.devices...)
	}
	for step := 0; step < 60; step++ {
		pi := rng.IntN(3)
		p := people[pi]
		dev := p.devices[rng.IntN(3)]
		peer := people[(pi+1+rng.IntN(2))%3]
		switch k := rng.IntN(10); {
		case k < 4:
			mustSend(t, dev, peer.name, fmt.Sprintf("step %d", step))
		case k < 8:
			ms, err := dev.Messages(ctx, peer.name, 0, 1000)
			if err != nil || len(ms) == 0 {
				continue
			}
			m := ms[rng.IntN(len(ms))]
			if m.Deleted {
				continue
			}
			switch {
			case k == 4 && m.Outgoing:
				_, err = dev.Edit(ctx, m.ID, fmt.Sprintf("edited at %d", step))
			case k == 5 && m.Outgoing:
				_, err = dev.Delete(ctx, m.ID)
			default:
				_, err = dev.React(ctx, m.ID, []string{"👍", "❤️", ""}[rng.IntN(3)])
			}
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		default:
			drain(t, all[rng.IntN(len(all))])
		}
	}
	for round := 0; round < 3; round++ {
		for _, c := range all {
			drain(t, c)
		}
	}
	for i, p := range people {
		for _, q := range people[i+1:] {
			var want []string
			for j, d := range append(slices.Clone(p.devices), q.devices...) {
				other := q.name
				if j >= 3 {
					other = p.name
				}
				got := view(t, d, other) // "author: …" lines, the same from either side
				if want == nil {
					want = got
				} else if !slices.Equal(got, want) {
					t.Fatalf("seed %d: %s/%d and %s disagree on their conversation:\n%s\nvs\n%s", seed, d.Self().Username, d.Self().DeviceID, p.name, got, want)
				}
			}
		}
	}
}
