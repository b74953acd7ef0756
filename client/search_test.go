package client

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func searchBodies(t *testing.T, c *Client, q string, opts SearchOptions) []string {
	t.Helper()
	rs, err := c.Search(context.Background(), q, opts)
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Message.Body)
	}
	return out
}

// TestSearchAcrossDevices: a device linked later (with the history
// transfer) answers the same queries with the same results as the device
// that lived through the conversation — 1:1 and group messages, edits,
// deletes — and gets the conversations' disappearing-messages timers.
func TestSearchAcrossDevices(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	bu, au := bob.Self().Username, alice.Self().Username
	for _, m := range []string{"The budget meeting moved to Thursday", "Réunion budgétaire jeudi à Zürich", "Встреча в четверг",
		"会議は木曜日に東京都で", "ประชุมวันพฤหัสบดี", "budget draft attached 📎"} {
		mustSend(t, alice, bu, m)
	}
	drain(t, bob)
	reply := mustSend(t, bob, au, "thanks, the budgets look fine")
	mustSend(t, bob, au, "typo in the budgt")
	drain(t, alice)
	g, err := alice.CreateGroup(ctx, "finance", bu)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendGroup(ctx, g.ID, "group budget review at noon"); err != nil {
		t.Fatal(err)
	}
	drain(t, bob)
	// bob edits and deletes; alice's device applies both.
	if _, err := bob.Edit(ctx, reply.ID, "thanks, the forecast looks fine"); err != nil {
		t.Fatal(err)
	}
	ms, _ := bob.Messages(ctx, au, 0, 100)
	if _, err := bob.Delete(ctx, ms[len(ms)-1].ID); err != nil {
		t.Fatal(err)
	}
	drain(t, alice)
	if err := alice.SetDisappearing(ctx, bu, 24*time.Hour); err != nil {
		t.Fatal(err)
	}

	queries := []struct {
		q    string
		opts SearchOptions
		want int
	}{
		{"budget", SearchOptions{}, 3},
		{"budget*", SearchOptions{}, 4},
		{"budgetaire", SearchOptions{}, 1},
		{`"budget meeting"`, SearchOptions{}, 1},
		{"budget OR четверг", SearchOptions{}, 4},
		{"budget -draft", SearchOptions{}, 2},
		{"東京", SearchOptions{}, 1},
		{"พฤหัส", SearchOptions{}, 1},
		{"forecast", SearchOptions{From: bu}, 1},
		{"budget", SearchOptions{In: g.ID}, 1},
		{"budget", SearchOptions{In: bu}, 2},
		{"budgt", SearchOptions{}, 0},   // deleted for everyone
		{"budgets", SearchOptions{}, 0}, // edited away
	}
	before := map[string][]string{}
	for _, q := range queries {
		got := searchBodies(t, alice, q.q, q.opts)
		if len(got) != q.want {
			t.Errorf("%q %+v on the first device: %q, want %d results", q.q, q.opts, got, q.want)
		}
		before[q.q+"|"+q.opts.In+"|"+q.opts.From] = got
	}

	nc, err := linkNew(t, ts, alice)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := nc.Group(ctx, g.ID); err != nil || got.Name != "finance" {
		t.Fatalf("the group on the new device: %+v, %v", got, err)
	}
	for _, q := range queries {
		got := searchBodies(t, nc, q.q, q.opts)
		if want := before[q.q+"|"+q.opts.In+"|"+q.opts.From]; !slices.Equal(got, want) {
			t.Errorf("%q %+v: the new device finds %q, the first %q", q.q, q.opts, got, want)
		}
	}
	if _, err := nc.Search(ctx, `"unbalanced`, SearchOptions{}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("a malformed query: %v", err)
	}
	if d, err := nc.Disappearing(ctx, bu); err != nil || d != 24*time.Hour {
		t.Errorf("the new device's timer with bob: %v, %v", d, err)
	}
}
