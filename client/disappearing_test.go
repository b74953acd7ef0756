package client

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
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
	alice2, a2cfg := linkDevice(t, ts, alice)
	alice2.now = clk.Now
	dirs := []string{acfg.Dir, a2cfg.Dir, bcfg.Dir}
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
	// Control: the unique word is in each device's decrypted database or
	// WAL now (so the scan below can see it).
	word := []byte("xyzzy-vanishing-word")
	for i, c := range devices {
		if err := c.store.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		db, wal, err := devicestore.DecryptedFiles(dirs[i], Passphrase(testPass))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(db, word) && !bytes.Contains(wal, word) {
			t.Fatalf("control: device %d's decrypted files do not hold the word", i)
		}
	}
	clk.Add(2 * time.Minute)
	for i, c := range devices {
		got := conv(c)
		if len(got) != 1 || !slices.Contains([]string{"> before the timer", "< before the timer"}, got[0]) {
			t.Fatalf("%s.%d after expiry: %q", c.Self().Username, c.Self().DeviceID, got)
		}
		if rs, err := c.Search(ctx, "xyzzy*", SearchOptions{}); err != nil || len(rs) != 0 {
			t.Fatalf("device %d still finds the expired message: %d, %v", i, len(rs), err)
		}
		// Gone from the decrypted pages (free space included) and WAL, and
		// from the raw files.
		db, wal, err := devicestore.DecryptedFiles(dirs[i], Passphrase(testPass))
		if err != nil {
			t.Fatal(err)
		}
		if j := bytes.Index(db, word); j >= 0 {
			t.Errorf("device %d: the expired word is still in the decrypted database, page %d", i, j/4096+1)
		}
		if bytes.Contains(wal, word) {
			t.Errorf("device %d: the expired word is still in the decrypted WAL", i)
		}
		ents, _ := os.ReadDir(dirs[i])
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(dirs[i], e.Name()))
			if bytes.Contains(b, word) {
				t.Errorf("device %d: %s holds the word in the clear", i, e.Name())
			}
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

	// Deleted for everyone: the text goes from every device the same way.
	m := mustSend(t, alice, bu, "plugh-deleted-word, sent by mistake")
	drainAll()
	deleted := []byte("plugh-deleted-word")
	for i, c := range devices { // control
		if err := c.store.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if db, wal, err := devicestore.DecryptedFiles(dirs[i], Passphrase(testPass)); err != nil || (!bytes.Contains(db, deleted) && !bytes.Contains(wal, deleted)) {
			t.Fatalf("control: device %d's decrypted files do not hold the word (%v)", i, err)
		}
	}
	if _, err := alice.Delete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	drainAll()
	for i, c := range devices {
		if err := c.store.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if rs, err := c.Search(ctx, "plugh*", SearchOptions{}); err != nil || len(rs) != 0 {
			t.Fatalf("device %d still finds the deleted message: %d, %v", i, len(rs), err)
		}
		db, wal, err := devicestore.DecryptedFiles(dirs[i], Passphrase(testPass))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(db, deleted) || bytes.Contains(wal, deleted) {
			t.Errorf("device %d: the deleted text is still in the decrypted database or WAL", i)
		}
	}
}
