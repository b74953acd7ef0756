package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
	"github.com/veil-e2ee/veil/server/wake"
)

// TestTwoNodes runs two server nodes on one PostgreSQL database, with
// wake-ups over LISTEN/NOTIFY and over NATS: a message sent to node A
// reaches a device connected to node B within 100 ms, and a second
// connection on B replaces the first on A.
func TestTwoNodes(t *testing.T) {
	for _, bus := range []string{"postgres", "nats"} {
		t.Run(bus, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			node := func() *env {
				st, err := postgres.Open(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				var w wake.Waker
				if bus == "postgres" {
					w, err = wake.NewPostgres(context.Background(), dsn, nil)
					if err != nil {
						t.Fatal(err)
					}
				} else {
					w, err = wake.NewNATS(envOr("VEIL_TEST_NATS", "nats://127.0.0.1:4222"), nil)
					if err != nil {
						skipOrFail(t, "NATS (VEIL_TEST_NATS)", err)
					}
				}
				return newEnv(t, withStore(st), withWaker(w))
			}
			a, b := node(), node()
			alice := a.register(uniqueName("alice"), 0, 0)
			bob := b.register(uniqueName("bob"), 0, 0)
			ws := b.dial(bob)
			if f := ws.mustNext(2 * time.Second); f.Type != "queue_empty" {
				t.Fatalf("got %+v", f)
			}
			var lat []time.Duration
			for i := 0; i < 20; i++ {
				start := time.Now()
				if r := a.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte(fmt.Sprint(i))); r.status != 200 {
					t.Fatalf("send: %d %s", r.status, r.body)
				}
				f := ws.mustNext(2 * time.Second)
				lat = append(lat, time.Since(start))
				if f.Type != "envelope" || string(f.Envelope.Content) != fmt.Sprint(i) {
					t.Fatalf("frame %d: %+v", i, f)
				}
				ws.ack(f.Envelope.Seq)
			}
			slices.Sort(lat)
			t.Logf("%s: cross-node send→push latency p50 %v, max %v", bus, lat[len(lat)/2], lat[len(lat)-1])
			if lat[len(lat)-2] > 100*time.Millisecond {
				t.Fatalf("cross-node delivery too slow: %v", lat)
			}
			// A connection on A is replaced by a new one on B.
			wsA := a.dial(bob)
			deadline := time.Now().Add(3 * time.Second)
			for {
				_, err := ws.next(time.Until(deadline))
				if err != nil {
					if websocket.CloseStatus(err) != CloseReplaced {
						t.Fatalf("old connection on B: %v", err)
					}
					break
				}
			}
			wsB := b.dial(bob)
			for {
				_, err := wsA.next(3 * time.Second)
				if err != nil {
					if websocket.CloseStatus(err) != CloseReplaced {
						t.Fatalf("connection on A: %v", err)
					}
					break
				}
			}
			_ = wsB
		})
	}
}
