package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"regexp"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/wake"
)

// keys holds the subkeys derived from Config.Secret. Each use has its own
// key so a pseudonym from one place (a log line) cannot be matched with
// another (a rate-limit bucket in the database).
type keys struct {
	rate, wake, log []byte
}

func deriveKeys(secret []byte) keys {
	sub := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("veil server v1 " + label))
		return m.Sum(nil)
	}
	return keys{rate: sub("rate-limit"), wake: sub("wake"), log: sub("log")}
}

// wakeKey names a device on the wake bus without revealing its address.
func (k keys) wakeKey(a store.AccountID, d uint32) wake.Key {
	m := hmac.New(sha256.New, k.wake)
	m.Write(a[:])
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], d)
	m.Write(b[:])
	var out wake.Key
	copy(out[:], m.Sum(nil))
	return out
}

// rateKey names a rate-limit bucket: a keyed hash of the limit's name and
// the (requester, target) parts, so the database holds no social graph.
func (k keys) rateKey(limit string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, k.rate)
	m.Write([]byte(limit))
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	return m.Sum(nil)[:16]
}

// logID is a short, stable pseudonym of an account for log correlation:
// operators can follow one account across log lines without the log
// holding its id. It is keyed, so it cannot be computed from a known id
// without the server secret.
func (k keys) logID(a store.AccountID) string {
	m := hmac.New(sha256.New, k.log)
	m.Write(a[:])
	return "acct:" + hex.EncodeToString(m.Sum(nil)[:6])
}

// redactPatterns match values that must never reach a log even when they
// slip into free text (an error message from a dependency, say): UUIDs,
// HTTP credentials, IPv4/IPv6 addresses with optional port, and long
// base64 runs (keys, credentials, content).
var redactPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._:~-]+`),
	regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`),
	regexp.MustCompile(`\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](:\d+)?`),
	regexp.MustCompile(`\b(\d{1,3}\.){3}\d{1,3}(:\d+)?\b`),
	regexp.MustCompile(`\b([0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}\b`),
	regexp.MustCompile(`[A-Za-z0-9+/_-]{20,}={0,2}`),
}

// redact removes identifiers, addresses and secrets from free text before
// it is logged.
func redact(s string) string {
	for _, re := range redactPatterns {
		s = re.ReplaceAllString(s, "[redacted]")
	}
	return s
}

// redactErr is a log attribute for an error, redacted.
func redactErr(err error) slog.Attr {
	if err == nil {
		return slog.String("err", "")
	}
	return slog.String("err", redact(err.Error()))
}
