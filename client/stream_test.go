package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestReceiveStream: a long-running Receive gets messages as they are
// sent, survives a server restart (it reconnects), reports ErrReplaced
// when the same device connects elsewhere, and ends quietly when its
// context ends.
func TestReceiveStream(t *testing.T) {
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	bob, bcfg := register(t, ts, "bob")
	bn := bob.Self().Username

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan Event, 1000)
	done := make(chan error, 1)
	go func() {
		var last error
		for ev, err := range bob.Receive(ctx, ReceiveOptions{}) {
			if err != nil {
				last = err
				continue
			}
			events <- ev
		}
		done <- last
	}()
	want := func(n int, prefix string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for i := 0; i < n; {
			select {
			case ev := <-events:
				if ev.Kind != EventMessage {
					continue
				}
				if w := fmt.Sprintf("%s %d", prefix, i); ev.Message.Body != w {
					t.Fatalf("got %q, want %q", ev.Message.Body, w)
				}
				i++
			case <-deadline:
				t.Fatalf("only %d of %d %q messages arrived", i, n, prefix)
			}
		}
	}
	for i := 0; i < 30; i++ {
		mustSend(t, alice, bn, fmt.Sprintf("live %d", i))
	}
	want(30, "live")

	ts.restart() // the stream reconnects by itself
	for i := 0; i < 10; i++ {
		mustSend(t, alice, bn, fmt.Sprintf("after restart %d", i))
	}
	want(10, "after restart")

	// The same profile receiving in another process takes over.
	other, err := Open(context.Background(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	octx, ocancel := context.WithCancel(context.Background())
	defer ocancel()
	go func() {
		for range other.Receive(octx, ReceiveOptions{}) {
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrReplaced) {
			t.Fatalf("the replaced stream ended with %v, want ErrReplaced", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the first stream was not replaced")
	}
	ocancel()

	// A context that ends, ends the stream without an error.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel2() }()
	for _, err := range bob.Receive(ctx2, ReceiveOptions{}) {
		if err != nil {
			t.Fatalf("a cancelled stream yielded %v", err)
		}
	}
}

// TestReceiveBreakEarly: a caller that stops after the first event loses
// nothing: the rest of the batch is stored (and acknowledged), so it is
// in the conversation, and nothing arrives twice later.
func TestReceiveBreakEarly(t *testing.T) {
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	for i := 0; i < 5; i++ {
		mustSend(t, alice, bob.Self().Username, fmt.Sprintf("m%d", i))
	}
	ctx := context.Background()
	for ev, err := range bob.Receive(ctx, ReceiveOptions{Once: true}) {
		if err != nil || ev.Kind != EventMessage || ev.Message.Body != "m0" {
			t.Fatalf("first event: %+v, %v", ev, err)
		}
		break
	}
	// Envelopes that were not yet in the first batch come now; none twice.
	later := bodies(drain(t, bob))
	seen := map[string]bool{"m0": true}
	for _, b := range later {
		if seen[b] {
			t.Fatalf("after an early break %q came again (later: %q)", b, later)
		}
		seen[b] = true
	}
	if got := conversation(t, bob, alice.Self().Username); len(got) != 5 {
		t.Fatalf("bob's conversation holds %q, want all 5", got)
	}
}
