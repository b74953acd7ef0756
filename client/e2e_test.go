package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// scanProfile fails if any file of a device profile contains one of the
// texts.
func scanProfile(t *testing.T, dir string, texts []string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("plaintext %q found in %s", s, e.Name())
			}
		}
	}
}

// TestConversation: two users, several hundred messages both ways, a
// server restart and a client restart in the middle; every message
// arrives exactly once and in per-sender order.
func TestConversation(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		ts := startServer(t, backend)
		alice, acfg := register(t, ts, "alice")
		bob, bcfg := register(t, ts, "bob")
		an, bn := alice.Self().Username, bob.Self().Username
		var wantBob, wantAlice, gotBob, gotAlice []string
		const rounds, perRound = 10, 15
		for r := 0; r < rounds; r++ {
			switch r {
			case 3:
				ts.restart()
			case 6:
				alice, bob = reopen(t, alice, acfg), reopen(t, bob, bcfg)
			}
			for i := 0; i < perRound; i++ {
				a := fmt.Sprintf("a→b %d.%d", r, i)
				if m := mustSend(t, alice, bn, a); m.Status != Sent || !m.Outgoing || m.Body != a || m.Peer != bn {
					t.Fatalf("sent message = %+v", m)
				}
				wantBob = append(wantBob, a)
				b := fmt.Sprintf("b→a %d.%d", r, i)
				mustSend(t, bob, an, b)
				wantAlice = append(wantAlice, b)
			}
			gotBob = append(gotBob, bodies(drain(t, bob))...)
			gotAlice = append(gotAlice, bodies(drain(t, alice))...)
		}
		if !slices.Equal(gotBob, wantBob) {
			t.Fatalf("bob received %d messages, want %d in order\n got %q\nwant %q", len(gotBob), len(wantBob), gotBob, wantBob)
		}
		if !slices.Equal(gotAlice, wantAlice) {
			t.Fatalf("alice received %d messages, want %d in order", len(gotAlice), len(wantAlice))
		}
		// The stored conversation holds both directions, each message once.
		ctx := context.Background()
		ms, err := bob.Messages(ctx, an, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		var in, out []string
		for _, m := range ms {
			if m.Outgoing {
				out = append(out, m.Body)
			} else {
				in = append(in, m.Body)
				if m.Peer != an || m.Status != Incoming {
					t.Fatalf("stored incoming message %+v", m)
				}
			}
		}
		if !slices.Equal(in, wantBob) || !slices.Equal(out, wantAlice) {
			t.Fatalf("bob's store: %d in, %d out; want %d and %d", len(in), len(out), len(wantBob), len(wantAlice))
		}
		convs, err := alice.Conversations(ctx)
		if err != nil || len(convs) != 1 || convs[0].Peer != bn {
			t.Fatalf("alice's conversations = %+v, %v", convs, err)
		}
		// The profiles hold no plaintext, open (WAL) or not.
		for _, dir := range []string{acfg.Dir, bcfg.Dir} {
			scanProfile(t, dir, append(wantBob, wantAlice...))
		}
		// Nothing is left in either outbox.
		for _, c := range []*Client{alice, bob} {
			if items, _ := c.store.Outbox(ctx, c.now().AddDate(1, 0, 0), 10); len(items) != 0 {
				t.Fatalf("outbox not empty: %d items", len(items))
			}
		}
	})
}

// Bad arguments get ErrInvalidArgument or ErrNoSuchUser and change
// nothing.
func TestBadArguments(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	bn := bob.Self().Username
	for _, c := range []struct {
		to, text string
		want     error
	}{
		{bn, "", ErrInvalidArgument},
		{bn, string(make([]byte, MaxTextBytes+1)), ErrInvalidArgument},
		{bn, "\xff\xfe", ErrInvalidArgument},
		{"", "hi", ErrNoSuchUser},
		{"Bob", "hi", ErrNoSuchUser},
		{"nobody_here", "hi", ErrNoSuchUser},
		{alice.Self().Username, "hi", ErrInvalidArgument}, // yourself
	} {
		if _, err := alice.Send(ctx, c.to, c.text); !errors.Is(err, c.want) {
			t.Errorf("Send(%q, %d bytes) = %v, want %v", c.to, len(c.text), err, c.want)
		}
	}
	if convs, _ := alice.Conversations(ctx); len(convs) != 0 {
		t.Fatalf("failed sends left conversations: %+v", convs)
	}
	if items, _ := alice.store.Outbox(ctx, alice.now().AddDate(1, 0, 0), 10); len(items) != 0 {
		t.Fatalf("failed sends left %d outbox items", len(items))
	}
	if _, err := alice.Messages(ctx, "", 0, 10); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Messages(\"\") = %v", err)
	}
	if _, err := Register(ctx, testConfig(t.TempDir()+"/x", ts.URL), "No Way"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Register with a bad username: %v", err)
	}
	if _, err := Register(ctx, testConfig(t.TempDir()+"/y", "ftp://x"), "valid_name"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Register with a bad server URL: %v", err)
	}
	dir := t.TempDir() + "/z"
	if _, err := Register(ctx, testConfig(dir, ts.URL), bn); !errors.Is(err, ErrUsernameTaken) {
		t.Errorf("Register with a taken username: %v", err)
	}
	if _, err := os.Stat(dir + "/device.hdr"); !os.IsNotExist(err) {
		t.Errorf("a failed registration left its store behind: %v", err)
	}
	if _, err := Open(ctx, testConfig(dir, ts.URL)); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Open of an empty profile: %v", err)
	}
}
