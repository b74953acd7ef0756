package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestWebSocketDelivery(t *testing.T) {
	e := newEnv(t, withLimits(func(l *Limits) { l.MaxInFlight = 5 }))
	alice := e.register(uniqueName("alice"), 0, 0)
	bob := e.register(uniqueName("bob"), 0, 0)
	const n = 12
	for i := 0; i < n; i++ {
		if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte(fmt.Sprintf("m%02d", i))); r.status != 200 {
			t.Fatalf("send: %d", r.status)
		}
	}
	ws := e.dial(bob)
	// Exactly MaxInFlight arrive before any ack.
	var got []frame
	for i := 0; i < 5; i++ {
		got = append(got, ws.mustNext(2*time.Second))
	}
	if f, err := ws.next(200 * time.Millisecond); err == nil {
		t.Fatalf("frame beyond the in-flight bound: %+v", f)
	}
	// The failed read's timeout closed our side; reconnect (replacing it).
	ws = e.dial(bob)
	got = got[:0]
	var lastSeq int64
	for len(got) < n {
		f := ws.mustNext(2 * time.Second)
		if f.Type != "envelope" {
			t.Fatalf("frame %d: %+v", len(got), f)
		}
		if f.Envelope.Seq <= lastSeq {
			t.Fatalf("out of order: %d after %d", f.Envelope.Seq, lastSeq)
		}
		if want := fmt.Sprintf("m%02d", len(got)); string(f.Envelope.Content) != want {
			t.Fatalf("content %q, want %q", f.Envelope.Content, want)
		}
		lastSeq = f.Envelope.Seq
		got = append(got, f)
		ws.ack(f.Envelope.Seq)
	}
	if f := ws.mustNext(2 * time.Second); f.Type != "queue_empty" {
		t.Fatalf("want queue_empty, got %+v", f)
	}
	// Acked envelopes are deleted.
	waitFor(t, func() bool {
		d, _ := e.st.QueueDepth(context.Background(), bob.accountID(t), 1)
		return d == 0
	})
	// A new message is pushed promptly over the open connection.
	start := time.Now()
	e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("live"))
	f := ws.mustNext(2 * time.Second)
	if f.Type != "envelope" || string(f.Envelope.Content) != "live" {
		t.Fatalf("live: %+v", f)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("live push took %v", d)
	}
	// Unacked envelopes stay queued and come back on the next connection.
	ws2 := e.dial(bob)
	f = ws2.mustNext(2 * time.Second)
	if f.Type != "envelope" || string(f.Envelope.Content) != "live" {
		t.Fatalf("redelivery: %+v", f)
	}
	// The first connection was replaced.
	if _, err := ws.next(2 * time.Second); websocket.CloseStatus(err) != CloseReplaced {
		t.Fatalf("old connection: %v", err)
	}
	ws2.ack(f.Envelope.Seq)
	if f := ws2.mustNext(2 * time.Second); f.Type != "queue_empty" {
		t.Fatalf("want queue_empty, got %+v", f)
	}
}

func TestWebSocketBadFrameAndAuth(t *testing.T) {
	e := newEnv(t)
	bob := e.register(uniqueName("bob"), 0, 0)
	ws := e.dial(bob)
	if f := ws.mustNext(2 * time.Second); f.Type != "queue_empty" {
		t.Fatalf("got %+v", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ws.c.Write(ctx, websocket.MessageText, []byte(`{"type":"ack","seq":"x"}`))
	if _, err := ws.next(2 * time.Second); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("bad frame: %v", err)
	}
	// No credential: a JSON 401 before any upgrade.
	_, res, err := websocket.Dial(ctx, "ws"+e.url[4:]+"/v1/queue/websocket", nil)
	if err == nil || res == nil || res.StatusCode != 401 {
		t.Fatalf("unauthenticated dial: %v %v", err, res)
	}
	// Plain GET without upgrade.
	if r := e.do("GET", "/v1/queue/websocket", &bob, nil); r.status != 400 || r.code(t) != "websocket_required" {
		t.Fatalf("plain get: %d %s", r.status, r.body)
	}
}

func TestWebSocketShutdownClosesCleanly(t *testing.T) {
	e := newEnv(t)
	bob := e.register(uniqueName("bob"), 0, 0)
	ws := e.dial(bob)
	ws.mustNext(2 * time.Second)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	if _, err := ws.next(3 * time.Second); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("want going away, got %v\n%s", err, e.logs.String())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.srv.Ready() {
		t.Fatal("ready after shutdown")
	}
}

func TestDeviceRemovalClosesWebSocket(t *testing.T) {
	e := newEnv(t)
	a := e.register(uniqueName("a"), 0, 0)
	a2 := e.link(a, 77)
	ws := e.dial(a2)
	ws.mustNext(2 * time.Second)
	if r := e.do("DELETE", "/v1/devices/2", &a, nil); r.status != 204 {
		t.Fatalf("remove: %d", r.status)
	}
	if _, err := ws.next(2 * time.Second); websocket.CloseStatus(err) != CloseDeviceRemoved {
		t.Fatalf("want device removed, got %v", err)
	}
}

// A device removed in the database behind the server's back (an
// administrator's erasure or lifted legal hold) loses its connection at
// the next keepalive.
func TestRemovalInDatabaseClosesWebSocket(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.PingInterval = 200 * time.Millisecond })
	a := e.register(uniqueName("a"), 0, 0)
	a2 := e.link(a, 77)
	ws := e.dial(a2)
	ws.mustNext(2 * time.Second)
	acct, _ := parseAccountID(a.account)
	if err := e.st.RemoveDevice(context.Background(), acct, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.next(3 * time.Second); websocket.CloseStatus(err) != CloseDeviceRemoved {
		t.Fatalf("want device removed, got %v", err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = errors.Is
