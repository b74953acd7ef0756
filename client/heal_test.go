package client

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// copyDir copies a closed profile's files.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// settle lets devices receive (and so answer resend requests) until no
// one gets anything new, and returns the message bodies each received
// and how many undecryptable messages each saw.
func settle(t *testing.T, cs ...*Client) ([][]string, []int) {
	t.Helper()
	got, bad := make([][]string, len(cs)), make([]int, len(cs))
	for round := 0; round < 6; round++ {
		quiet := true
		for i, c := range cs {
			evs := drain(t, c)
			if len(evs) > 1 { // more than queue_empty
				quiet = false
			}
			got[i] = append(got[i], bodies(evs)...)
			for _, ev := range evs {
				if ev.Kind == EventUndecryptable {
					bad[i]++
				}
			}
		}
		if quiet {
			return got, bad
		}
	}
	t.Fatal("devices did not settle")
	return nil, nil
}

// TestSessionHeals: bob's device goes back to an old copy of its state
// (a restored disk image, say). Messages from alice then do not decrypt
// on bob's side, and bob's messages reuse ratchet keys alice has already
// used; both sides reset the session and ask for the messages again, and
// every message arrives exactly once without anyone doing anything.
func TestSessionHeals(t *testing.T) {
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	bob, bcfg := register(t, ts, "bob")
	an, bn := alice.Self().Username, bob.Self().Username
	mustSend(t, alice, bn, "before 1")
	drain(t, bob)
	mustSend(t, bob, an, "before 2")
	drain(t, alice)

	bob.Close()
	snapshot := filepath.Join(t.TempDir(), "bob-snapshot")
	copyDir(t, bcfg.Dir, snapshot)
	bob = reopen(t, bob, bcfg)
	for i := 0; i < 3; i++ {
		// Bob first: his restored state will reuse these ratchet keys.
		// Then several ratchet steps the snapshot will not know.
		mustSend(t, bob, an, fmt.Sprintf("between b%d", i))
		drain(t, alice)
		mustSend(t, alice, bn, fmt.Sprintf("between a%d", i))
		drain(t, bob)
	}
	bob.Close()
	if err := os.RemoveAll(bcfg.Dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, snapshot, bcfg.Dir)
	bob = reopen(t, bob, bcfg)

	var wantBob, wantAlice []string
	for i := 0; i < 3; i++ {
		wantBob = append(wantBob, fmt.Sprintf("after a%d", i))
		mustSend(t, alice, bn, wantBob[i])
		wantAlice = append(wantAlice, fmt.Sprintf("after b%d", i))
		mustSend(t, bob, an, wantAlice[i])
	}
	got, bad := settle(t, alice, bob)
	if bad[0] == 0 || bad[1] == 0 {
		t.Fatalf("undecryptable messages: alice %d, bob %d; the restore should break both directions", bad[0], bad[1])
	}
	slices.Sort(got[0])
	slices.Sort(got[1])
	if !slices.Equal(got[0], wantAlice) || !slices.Equal(got[1], wantBob) {
		t.Fatalf("after the restore alice got %q (want %q), bob got %q (want %q)", got[0], wantAlice, got[1], wantBob)
	}
	// The healed session carries on normally, in order.
	mustSend(t, alice, bn, "healed 1")
	mustSend(t, bob, an, "healed 2")
	got, bad = settle(t, alice, bob)
	if !slices.Equal(got[0], []string{"healed 2"}) || !slices.Equal(got[1], []string{"healed 1"}) || bad[0]+bad[1] != 0 {
		t.Fatalf("after healing: alice %q, bob %q, undecryptable %v", got[0], got[1], bad)
	}
	// Both devices reported what they could not decrypt, as counts by
	// cause only.
	mfs, err := ts.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	reported := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "veil_client_decrypt_failures_total" {
			for _, m := range mf.GetMetric() {
				reported += m.GetCounter().GetValue()
			}
		}
	}
	if reported < 2 {
		t.Fatalf("the server counted %v reported decryption failures, want at least 2", reported)
	}
}
