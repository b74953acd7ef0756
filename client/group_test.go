package client

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// countingTransport counts requests by method and path.
type countingTransport struct {
	base   http.RoundTripper
	sealed atomic.Int64 // PUT /v1/sealed (sealed sender v2 uploads)
	auth   atomic.Int64 // requests of the sealed endpoints that carried a device credential
}

func (ct *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "PUT" && r.URL.Path == "/v1/sealed" {
		ct.sealed.Add(1)
	}
	if len(r.URL.Path) >= len("/v1/sealed") && r.URL.Path[:len("/v1/sealed")] == "/v1/sealed" && r.Header.Get("Authorization") != "" {
		ct.auth.Add(1)
	}
	return ct.base.RoundTrip(r)
}

func registerCounting(t *testing.T, ts *testServer, prefix string) (*Client, *countingTransport) {
	t.Helper()
	ct := &countingTransport{base: http.DefaultTransport}
	cfg := testConfig(t.TempDir()+"/"+prefix, ts.URL)
	cfg.HTTPClient = &http.Client{Transport: ct}
	c, err := Register(context.Background(), cfg, uniqueName(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ct
}

// groupMessages returns the group conversation on c as "who: body".
func groupMessages(t *testing.T, c *Client, id string) []string {
	t.Helper()
	ms, err := c.GroupMessages(context.Background(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		who := m.Peer
		if m.Outgoing {
			who = "me"
		}
		out = append(out, who+": "+m.Body)
	}
	return out
}

func groupEvents(evs []Event) (msgs []string, updates int) {
	for _, ev := range evs {
		switch ev.Kind {
		case EventMessage:
			if ev.Message.Group != "" {
				msgs = append(msgs, ev.Message.Body)
			}
		case EventGroupUpdated:
			updates++
		}
	}
	return msgs, updates
}

// TestGroups: a group end to end over the real server — creation, one
// upload per message sealed for every member device, messages both ways,
// rename, and removal with sender-key rotation.
func TestGroups(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		ts := startServer(t, backend)
		alice, aliceNet := registerCounting(t, ts, "alice")
		bob, _ := register(t, ts, "bob")
		carol, _ := register(t, ts, "carol")
		// Alice and Bob have written to each other (so have each other's
		// profile keys); Carol is new to both.
		mustSend(t, alice, bob.Self().Username, "hi bob")
		drain(t, bob)
		mustSend(t, bob, alice.Self().Username, "hi alice")
		drain(t, alice)

		g, err := alice.CreateGroup(ctx, "weekend plans", bob.Self().Username, carol.Self().Username)
		if err != nil {
			t.Fatal(err)
		}
		if !g.Admin || !g.Member || len(g.Members) != 3 {
			t.Fatalf("created group: %+v", g)
		}
		for _, c := range []*Client{bob, carol} {
			if _, n := groupEvents(drain(t, c)); n == 0 {
				t.Fatalf("%s saw no group update", c.Self().Username)
			}
			got, err := c.Group(ctx, g.ID)
			if err != nil || got.Name != "weekend plans" || len(got.Members) != 3 || got.Admin {
				t.Fatalf("%s sees %+v, %v", c.Self().Username, got, err)
			}
		}

		before := aliceNet.sealed.Load()
		m, err := alice.SendGroup(ctx, g.ID, "hello group")
		if err != nil || m.Status != devicestore.Sent || m.Group != g.ID {
			t.Fatalf("SendGroup: %+v, %v", m, err)
		}
		if n := aliceNet.sealed.Load() - before; n != 1 {
			t.Fatalf("a group message took %d sealed sender v2 uploads, want 1", n)
		}
		if aliceNet.auth.Load() != 0 {
			t.Fatal("a sealed request carried the device credential")
		}
		for _, c := range []*Client{bob, carol} {
			msgs, _ := groupEvents(drain(t, c))
			if !slices.Equal(msgs, []string{"hello group"}) {
				t.Fatalf("%s received %q", c.Self().Username, msgs)
			}
		}
		if _, err := bob.SendGroup(ctx, g.ID, "hi from bob"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*Client{alice, carol} {
			if msgs, _ := groupEvents(drain(t, c)); !slices.Equal(msgs, []string{"hi from bob"}) {
				t.Fatalf("%s received %q", c.Self().Username, msgs)
			}
		}
		want := []string{alice.Self().Username + ": hello group", bob.Self().Username + ": hi from bob"}
		if got := groupMessages(t, carol, g.ID); !slices.Equal(got, want) {
			t.Fatalf("carol's group conversation: %q, want %q", got, want)
		}

		// Only admins rename; the name reaches everyone.
		if err := bob.RenameGroup(ctx, g.ID, "bob's plans"); !errors.Is(err, ErrNotGroupAdmin) {
			t.Fatalf("bob renaming: %v", err)
		}
		if err := alice.RenameGroup(ctx, g.ID, "long weekend"); err != nil {
			t.Fatal(err)
		}
		drain(t, bob)
		drain(t, carol)
		if got, _ := carol.Group(ctx, g.ID); got.Name != "long weekend" {
			t.Fatalf("carol sees the name %q", got.Name)
		}

		// Removal: Carol learns she was removed; Alice's next message goes
		// under a new sender key Carol never gets.
		aliceAddr := protocol.Address{Name: alice.Self().AccountID, DeviceID: alice.Self().DeviceID}
		oldGroup, err := alice.store.OurGroup(ctx, mustGroupID(t, g.ID))
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.RemoveGroupMember(ctx, g.ID, carol.Self().Username); err != nil {
			t.Fatal(err)
		}
		drain(t, bob)
		drain(t, carol)
		if got, _ := carol.Group(ctx, g.ID); got.Member || len(got.Members) != 2 {
			t.Fatalf("carol after removal: %+v", got)
		}
		if _, err := carol.SendGroup(ctx, g.ID, "still here?"); !errors.Is(err, ErrNotGroupMember) {
			t.Fatalf("carol sending after removal: %v", err)
		}
		if _, err := alice.SendGroup(ctx, g.ID, "after carol left"); err != nil {
			t.Fatal(err)
		}
		if msgs, _ := groupEvents(drain(t, bob)); !slices.Equal(msgs, []string{"after carol left"}) {
			t.Fatalf("bob after the removal: %q", msgs)
		}
		if msgs, _ := groupEvents(drain(t, carol)); len(msgs) != 0 {
			t.Fatalf("carol received %q after her removal", msgs)
		}
		newGroup, err := alice.store.OurGroup(ctx, mustGroupID(t, g.ID))
		if err != nil {
			t.Fatal(err)
		}
		if newGroup.Distribution == oldGroup.Distribution {
			t.Fatal("alice's sender key was not rotated by the removal")
		}
		// Carol holds Alice's old sender key, not the new one: a message
		// under the new key does not decrypt with what she has.
		var skm []byte
		err = alice.store.Update(ctx, func(tx *devicestore.Tx) (err error) {
			skm, err = protocol.NewGroupCipher(tx, alice.rand).Encrypt(ctx, aliceAddr, protocol.DistributionID(newGroup.Distribution), []byte("probe"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		err = carol.store.Update(ctx, func(tx *devicestore.Tx) error {
			if r, err := tx.LoadSenderKey(ctx, aliceAddr, protocol.DistributionID(oldGroup.Distribution)); err != nil || r == nil {
				t.Errorf("carol never had alice's old sender key: %v", err)
			}
			_, err := protocol.NewGroupCipher(tx, carol.rand).Decrypt(ctx, aliceAddr, skm)
			return err
		})
		if !errors.Is(err, protocol.ErrNoSenderKey) {
			t.Fatalf("carol decrypting under alice's new sender key: %v, want ErrNoSenderKey", err)
		}
	})
}

func mustGroupID(t *testing.T, s string) []byte {
	t.Helper()
	id, err := parseGroupID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id[:]
}

// TestGroupConcurrentChanges: two admins change the group at the same
// time, each without having seen the other's change; once everything is
// delivered every device of every member shows the same group.
func TestGroupConcurrentChanges(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	carol, _ := register(t, ts, "carol")
	dave, _ := register(t, ts, "dave")
	alice2, _ := linkDevice(t, ts, alice)
	all := []*Client{alice, alice2, bob, carol, dave}
	settle := func() {
		for range 3 {
			for _, c := range all {
				for _, ev := range drain(t, c) {
					if ev.Kind == EventUndecryptable {
						t.Logf("%s.%d: undecryptable from %s: %v", c.Self().Username, c.Self().DeviceID, ev.ContactAccount, ev.Err)
					}
				}
			}
		}
	}
	g, err := alice.CreateGroup(ctx, "start", bob.Self().Username, carol.Self().Username)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetGroupAdmin(ctx, g.ID, bob.Self().Username, true); err != nil {
		t.Fatal(err)
	}
	settle()
	// Concurrent: neither has seen the other's changes.
	if err := alice.RenameGroup(ctx, g.ID, "alice's name"); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddGroupMembers(ctx, g.ID, dave.Self().Username); err != nil {
		t.Fatal(err)
	}
	if err := bob.RenameGroup(ctx, g.ID, "bob's name"); err != nil {
		t.Fatal(err)
	}
	if err := bob.RemoveGroupMember(ctx, g.ID, carol.Self().Username); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetGroupAdmin(ctx, g.ID, alice.Self().Username, false); err != nil {
		t.Fatal(err)
	}
	settle()
	var want Group
	for i, c := range []*Client{alice, alice2, bob, dave} {
		got, err := c.Group(ctx, g.ID)
		if err != nil {
			t.Fatalf("%s: %v", c.Self().Username, err)
		}
		got.Member, got.Admin = false, false // per-viewer fields
		for j := range got.Members {
			got.Members[j].Username = ""
		}
		if i == 0 {
			want = got
			continue
		}
		if !reflect.DeepEqual(got, want) {
			for _, c := range []*Client{alice, alice2, bob, carol, dave} {
				g, _ := c.Group(ctx, g.ID)
				t.Logf("%s.%d (%s): %+v", c.Self().Username, c.Self().DeviceID, c.Self().AccountID[:4], g)
				items, _ := c.store.Outbox(ctx, c.now().Add(time.Hour), 100)
				for _, it := range items {
					t.Logf("   outbox to %s attempts %d: %s", it.Recipient, it.Attempts, it.LastError)
				}
			}
			t.Fatalf("devices disagree:\n%+v\n%+v", got, want)
		}
	}
	if len(want.Members) != 3 || want.Name == "start" {
		t.Fatalf("converged on %+v", want)
	}
	// Messages flow in the converged group: dave (added by alice) gets
	// bob's message; carol (removed by bob) does not.
	if _, err := bob.SendGroup(ctx, g.ID, "after the dust settles"); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := groupEvents(drain(t, dave)); !slices.Equal(msgs, []string{"after the dust settles"}) {
		t.Fatalf("dave: %q", msgs)
	}
	if msgs, _ := groupEvents(drain(t, carol)); len(msgs) != 0 {
		t.Fatalf("carol: %q", msgs)
	}
	for _, c := range []*Client{alice, alice2} {
		if msgs, _ := groupEvents(drain(t, c)); !slices.Equal(msgs, []string{"after the dust settles"}) {
			t.Fatalf("%s device %d: %q", c.Self().Username, c.Self().DeviceID, msgs)
		}
	}
}

// TestGroupLeaveAndLimit: a member who leaves stops receiving, the others
// see it; the configured size limit holds.
func TestGroupLeaveAndLimit(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	cfg := testConfig(t.TempDir()+"/alice", ts.URL)
	cfg.GroupLimit = 3
	alice, err := Register(ctx, cfg, uniqueName("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, _ := register(t, ts, "bob")
	carol, _ := register(t, ts, "carol")
	dave, _ := register(t, ts, "dave")
	if _, err := alice.CreateGroup(ctx, "too big", bob.Self().Username, carol.Self().Username, dave.Self().Username); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("creating 4 members with a limit of 3: %v", err)
	}
	g, err := alice.CreateGroup(ctx, "three", bob.Self().Username, carol.Self().Username)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.AddGroupMembers(ctx, g.ID, dave.Self().Username); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("adding a 4th member: %v", err)
	}
	drain(t, bob)
	drain(t, carol)
	if err := bob.LeaveGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	evs := drain(t, alice)
	var left bool
	for _, ev := range evs {
		for _, ch := range ev.GroupChanges {
			if ch.Kind == "left" && ch.Member == bob.Self().AccountID {
				left = true
			}
		}
	}
	if !left {
		t.Fatalf("alice did not see bob leave: %+v", evs)
	}
	drain(t, carol)
	if _, err := alice.SendGroup(ctx, g.ID, "without bob"); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := groupEvents(drain(t, carol)); !slices.Equal(msgs, []string{"without bob"}) {
		t.Fatalf("carol: %q", msgs)
	}
	if msgs, _ := groupEvents(drain(t, bob)); len(msgs) != 0 {
		t.Fatalf("bob received %q after leaving", msgs)
	}
	if got, _ := bob.Group(ctx, g.ID); got.Member || len(got.Members) != 2 {
		t.Fatalf("bob's view after leaving: %+v", got)
	}
}
