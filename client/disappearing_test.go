package client

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestDisappearing: a timer set on one device reaches every device of
// both participants; messages sent while it is on disappear from all
// three devices once their time is up, with every copy of their text
// (the sender's queued and logged sends); turning it off stops timing
// new messages.
func TestDisappearing(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	clk := &clock{t: time.Now()}
	acfg := testConfig(filepath.Join(t.TempDir(), "alice"), ts.URL)
	acfg.Now = clk.Now
	alice, err := Register(ctx, acfg, uniqueName("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bcfg := testConfig(filepath.Join(t.TempDir(), "bob"), ts.URL)
	bcfg.Now = clk.Now
	bob, err := Register(ctx, bcfg, uniqueName("bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	alice2, _ := linkDevice(t, ts, alice)
	alice2.now = clk.Now
	devices := []*Client{alice, alice2, bob}
	drainAll := func() {
		for _, c := range devices {
			drain(t, c)
		}
	}
	bu, au := bob.Self().Username, alice.Self().Username

	mustSend(t, alice, bu, "before the timer")
	drainAll()
	if err := alice.SetDisappearing(ctx, bu, time.Hour); err != nil {
		t.Fatal(err)
	}
	var seen int
	for _, c := range []*Client{alice2, bob} {
		for _, ev := range drain(t, c) {
			if ev.Kind == EventTimerChanged && ev.Timer == time.Hour {
				seen++
			}
		}
	}
	if seen != 2 {
		t.Fatalf("%d devices reported the new timer, want 2", seen)
	}
	for _, c := range devices {
		peer := bu
		if c == bob {
			peer = au
		}
		if d, err := c.Disappearing(ctx, peer); err != nil || d != time.Hour {
			t.Fatalf("%s.%d sees timer %v, %v", c.Self().Username, c.Self().DeviceID, d, err)
		}
	}

	mustSend(t, alice, bu, "xyzzy-vanishing-word from alice")
	drainAll()
	mustSend(t, bob, au, "reply that also goes")
	drainAll()
	conv := func(c *Client) []string {
		peer := bu
		if c == bob {
			peer = au
		}
		return conversation(t, c, peer)
	}
	for _, c := range devices {
		if got := conv(c); len(got) != 3 {
			t.Fatalf("%s.%d before expiry: %q", c.Self().Username, c.Self().DeviceID, got)
		}
	}
	clk.Add(59 * time.Minute)
	for _, c := range devices {
		if got := conv(c); len(got) != 3 {
			t.Fatalf("%s.%d expired early: %q", c.Self().Username, c.Self().DeviceID, got)
		}
	}
	clk.Add(2 * time.Minute)
	for _, c := range devices {
		got := conv(c)
		if len(got) != 1 || !slices.Contains([]string{"> before the timer", "< before the timer"}, got[0]) {
			t.Fatalf("%s.%d after expiry: %q", c.Self().Username, c.Self().DeviceID, got)
		}
	}
	// Off: new messages stay.
	if err := bob.SetDisappearing(ctx, au, 0); err != nil {
		t.Fatal(err)
	}
	drainAll()
	mustSend(t, alice, bu, "this one stays")
	drainAll()
	clk.Add(48 * time.Hour)
	for _, c := range devices {
		if got := conv(c); len(got) != 2 {
			t.Fatalf("%s.%d after turning it off: %q", c.Self().Username, c.Self().DeviceID, got)
		}
	}
}
