package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store/storetest"
)

// TestLocalBuckets checks the in-memory buckets against the same
// sequence the store's TakeToken conformance test uses, and that full
// buckets are dropped as the map grows.
func TestLocalBuckets(t *testing.T) {
	b := newLocalBuckets()
	epoch := storetest.Epoch
	const burst, iv = storetest.TokenBurst, storetest.TokenInterval
	for _, st := range storetest.TokenSequence {
		ok, retry := b.take([]byte("bucket-a"), burst, iv, epoch.Add(st.At))
		if ok != st.OK || retry != st.Retry {
			t.Fatalf("take at +%v = %v, %v; want %v, %v", st.At, ok, retry, st.OK, st.Retry)
		}
	}
	if ok, _ := b.take([]byte("bucket-b"), burst, iv, epoch); !ok {
		t.Fatal("independent bucket refused")
	}

	// Thousands of requesters, each with one token spent: once their
	// buckets are full again they are dropped (at the latest when the map
	// has doubled), not kept forever.
	for i := range 5000 {
		b.take([]byte(fmt.Sprint("r", i)), burst, iv, epoch.Add(2*time.Hour))
	}
	later := epoch.Add(3 * time.Hour)
	for i := range 4000 {
		b.take([]byte(fmt.Sprint("s", i)), burst, iv, later)
	}
	b.mu.Lock()
	n := len(b.tats)
	_, old := b.tats["r0"]
	b.mu.Unlock()
	if old || n > 4000 {
		t.Fatalf("%d buckets kept (first full one kept: %v); want the 4,000 active ones", n, old)
	}
}

// TestSendRateLimits: the send and sealed-send limits answer 429 with
// Retry-After, per device (and per client address and recipient for
// sealed sends), and refill with time.
func TestSendRateLimits(t *testing.T) {
	clock, advance := testClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, withClock(clock), withLimits(func(l *Limits) {
		l.Send = Rate{Burst: 2, Interval: 30 * time.Second}
	}))
	alice := e.register(uniqueName("alice"), 0, 0)
	carol := e.register(uniqueName("carol"), 0, 0)
	bob := e.register(uniqueName("bob"), 0, 0)
	for i := range 2 {
		if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x")); r.status != 200 {
			t.Fatalf("send %d: %d %s", i, r.status, r.body)
		}
	}
	r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x"))
	if r.status != 429 || r.code(t) != "rate_limited" || r.header.Get("Retry-After") != "30" {
		t.Fatalf("3rd send: %d %s Retry-After=%q", r.status, r.body, r.header.Get("Retry-After"))
	}
	if n, err := e.st.QueueDepth(t.Context(), bob.accountID(t), bob.id); err != nil || n != 2 {
		t.Fatalf("bob's queue holds %d envelopes (%v), want 2: the refused send stored nothing", n, err)
	}
	// Another sender has its own bucket.
	if r := e.sendTo(carol, bob.account, randBytes(16), []dev{bob}, []byte("x")); r.status != 200 {
		t.Fatalf("other sender: %d %s", r.status, r.body)
	}
	advance(30 * time.Second)
	if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x")); r.status != 200 {
		t.Fatalf("after refill: %d %s", r.status, r.body)
	}
}
