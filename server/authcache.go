package server

import (
	"crypto/subtle"
	"sync"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// authCacheTTL bounds how long a verified credential is trusted without
// asking the store again. Removing a device through this node forgets it
// at once (and closes its WebSockets on every node); on other nodes an
// HTTP request with the removed device's credential can succeed for at
// most this long afterwards. docs/OPERATIONS.md states the bound.
const authCacheTTL = time.Second

// authCache remembers, per device, the credential hash and last-seen day
// the store returned, for authCacheTTL: a device sending many requests
// costs one store lookup a second instead of one per request. Only a
// request presenting the right credential is answered from the cache; a
// wrong credential, like an unknown device, always goes to the store, so
// both still take the same path and time.
type authCache struct {
	mu        sync.Mutex
	m         map[authKey]authEntry
	lastSweep time.Time
}

type authKey struct {
	account store.AccountID
	device  uint32
}

type authEntry struct {
	hash     [32]byte  // the stored credential hash
	lastSeen time.Time // the device's coarse LastSeen when looked up
	// compliance: a legal hold's compliance device (it never stops being
	// one; lifting the hold removes it).
	compliance bool
	expires    time.Time // monotonic
}

// get returns the cached entry for k if it is fresh and sum matches its
// credential hash (compared in constant time).
func (c *authCache) get(k authKey, sum *[32]byte, now time.Time) (authEntry, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) || subtle.ConstantTimeCompare(sum[:], e.hash[:]) != 1 {
		return authEntry{}, false
	}
	return e, true
}

// put remembers a device the store has just confirmed. Expired entries
// are dropped at most once per TTL, so the map holds about the devices
// active in the last second or two.
func (c *authCache) put(k authKey, d store.Device, now time.Time) {
	if len(d.CredentialHash) != 32 {
		return
	}
	e := authEntry{lastSeen: d.LastSeen, compliance: d.Compliance, expires: now.Add(authCacheTTL)}
	copy(e.hash[:], d.CredentialHash)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[authKey]authEntry)
	}
	if now.Sub(c.lastSweep) >= authCacheTTL {
		c.lastSweep = now
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
	}
	c.m[k] = e
}

// forget drops a device at once (it was removed through this node).
func (c *authCache) forget(k authKey) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}
