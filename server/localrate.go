package server

import (
	"context"
	"sync"
	"time"

	"github.com/veil-e2ee/veil/server/internal/gcra"
)

// localBuckets are token buckets in this node's memory, for the limits on
// the message path (sends, sealed sends): a database write and sync per
// message for them cost about as much as storing the message (throughput
// fell by 40 % on PostgreSQL, 12 % on SQLite). Each node enforces them on
// its own, so with n nodes and a balancer that spreads one device's
// requests a device may send up to n times the rate: enough for a flood
// guard. The limits that protect something stored (prekey fetches,
// registrations, lookups, links, recovery) stay in the database, shared by
// every node.
//
// A bucket whose TAT has passed is full again and behaves like a missing
// one, so such buckets are dropped whenever the map has doubled since the
// last pass: memory follows the requesters active in the last burst
// period, not all that were ever seen.
type localBuckets struct {
	mu        sync.Mutex
	tats      map[string]int64
	nextSweep int
}

func newLocalBuckets() *localBuckets {
	return &localBuckets{tats: make(map[string]int64), nextSweep: 1024}
}

// take spends a token of the bucket key, as store.Store.TakeToken does.
func (b *localBuckets) take(key []byte, burst int, interval time.Duration, now time.Time) (bool, time.Duration) {
	ns := now.UnixNano()
	b.mu.Lock()
	defer b.mu.Unlock()
	tat, ok := b.tats[string(key)]
	if !ok {
		tat = ns
	}
	newTAT, allowed := gcra.Spend(tat, ns, burst, interval)
	if !allowed {
		return false, gcra.RetryAfter(tat, ns, burst, interval)
	}
	b.tats[string(key)] = newTAT
	if len(b.tats) >= b.nextSweep {
		for k, t := range b.tats {
			if t <= ns {
				delete(b.tats, k)
			}
		}
		b.nextSweep = max(1024, 2*len(b.tats))
	}
	return true, 0
}

// limitLocal is limit with the node's in-memory buckets (see localBuckets).
func (s *Server) limitLocal(_ context.Context, name string, rate Rate, parts ...[]byte) error {
	if rate.Burst <= 0 {
		return nil
	}
	if ok, retry := s.local.take(s.keys.rateKey(name, parts...), rate.Burst, rate.Interval, s.now()); !ok {
		s.m.rateLimited.WithLabelValues(name).Inc()
		s.auditRateLimited(name, parts)
		return errRateLimited(retry)
	}
	return nil
}
