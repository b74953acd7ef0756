package server

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestLocalBuckets checks the in-memory buckets against the same
// sequence the store's TakeToken conformance test uses, and that full
// buckets are dropped as the map grows.
func TestLocalBuckets(t *testing.T) {
	b := newLocalBuckets()
	epoch := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	key := []byte("bucket-a")
	const burst, iv = 3, 10 * time.Second
	take := func(at time.Duration, wantOK bool, wantRetry time.Duration) {
		t.Helper()
		ok, retry := b.take(key, burst, iv, epoch.Add(at))
		if ok != wantOK || retry != wantRetry {
			t.Fatalf("take at +%v = %v, %v; want %v, %v", at, ok, retry, wantOK, wantRetry)
		}
	}
	take(0, true, 0)
	take(0, true, 0)
	take(time.Second, true, 0)
	take(time.Second, false, 9*time.Second)
	take(4*time.Second, false, 6*time.Second)
	take(10*time.Second, true, 0)
	take(10*time.Second, false, 10*time.Second)
	if ok, _ := b.take([]byte("bucket-b"), burst, iv, epoch); !ok {
		t.Fatal("independent bucket refused")
	}
	for i := range burst {
		take(time.Hour+time.Duration(i), true, 0)
	}
	take(time.Hour+time.Second, false, 9*time.Second)

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
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
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
	mu.Lock()
	now = now.Add(30 * time.Second)
	mu.Unlock()
	if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x")); r.status != 200 {
		t.Fatalf("after refill: %d %s", r.status, r.body)
	}
}
