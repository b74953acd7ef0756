package server

import (
	"sync"
	"testing"
	"time"
)

// TestInactiveAccounts: with a retention for inactive accounts, the
// sweeper erases an account none of whose devices came back in that time,
// and keeps one that did; without it, nothing is erased.
func TestInactiveAccounts(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	for _, retain := range []time.Duration{0, 180 * 24 * time.Hour} {
		e := newEnv(t, withClock(clock), withLimits(func(l *Limits) { l.InactiveAccounts = retain }))
		active := e.register(uniqueName("active"), 1, 1)
		quiet := e.register(uniqueName("quiet"), 1, 1)
		advance(200 * 24 * time.Hour)
		if r := e.do("GET", "/v1/devices", &active, nil); r.status != 200 { // seen today
			t.Fatalf("active: %d", r.status)
		}
		e.srv.sweepOnce()
		r := e.do("GET", "/v1/devices", &quiet, nil)
		switch {
		case retain == 0 && r.status != 200:
			t.Fatalf("without a retention the quiet account went: %d", r.status)
		case retain > 0 && r.status != 401:
			t.Fatalf("the quiet account outlived its retention: %d", r.status)
		}
		if r := e.do("GET", "/v1/devices", &active, nil); r.status != 200 {
			t.Fatalf("the active account was erased: %d", r.status)
		}
	}
}
