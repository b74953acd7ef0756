package sealed

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// verifiedCache remembers signatures that verified: a sealed message
// carries the same sender and server certificates as the previous ones
// from that sender, and their two XEdDSA verifications otherwise cost more
// than the rest of opening the message. Entries are SHA-256 digests of
// (key, message, signature), so a hit means exactly these bytes verified
// before. Only successes are kept (failures are attacker-chosen). No
// secrets are involved; the cache is bounded and dropped when full.
var verifiedCache = struct {
	sync.Mutex
	m map[[32]byte]struct{}
}{m: map[[32]byte]struct{}{}}

const verifiedCacheMax = 1 << 14

func verifiedDigest(key *[KeySize]byte, msg, sig []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	h.Write(key[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(msg)))
	h.Write(n[:])
	h.Write(msg)
	h.Write(sig)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// VerifyCached reports whether sig is key's signature of msg, calling
// verify only when these exact bytes have not verified before.
func VerifyCached(key *[KeySize]byte, msg, sig []byte, verify func() bool) bool {
	d := verifiedDigest(key, msg, sig)
	verifiedCache.Lock()
	_, ok := verifiedCache.m[d]
	verifiedCache.Unlock()
	if ok {
		return true
	}
	if !verify() {
		return false
	}
	verifiedCache.Lock()
	if len(verifiedCache.m) >= verifiedCacheMax {
		clear(verifiedCache.m)
	}
	verifiedCache.m[d] = struct{}{}
	verifiedCache.Unlock()
	return true
}

// ForgetVerified empties the signature cache (for tests and benchmarks).
func ForgetVerified() {
	verifiedCache.Lock()
	clear(verifiedCache.m)
	verifiedCache.Unlock()
}
