package server

import (
	"strings"
	"testing"

	"github.com/veil-e2ee/veil/server/store"
)

func TestRedact(t *testing.T) {
	cases := []struct {
		in      string
		mustNot []string
		keep    []string
	}{
		{"dial tcp 192.168.1.20:5432: connection refused", []string{"192.168.1.20"}, []string{"connection refused"}},
		{"http: TLS handshake error from [2001:db8::1]:55012: EOF", []string{"2001:db8::1"}, []string{"TLS handshake error"}},
		{"peer fe80::1ff:fe23:4567:890a reset", []string{"fe80::1ff:fe23:4567:890a"}, []string{"reset"}},
		{"account 0a1b2c3d-1111-4222-8333-444455556666 not found", []string{"0a1b2c3d-1111-4222-8333-444455556666"}, []string{"not found"}},
		{"Authorization: Basic YWxpY2U6c2VjcmV0", []string{"YWxpY2U6c2VjcmV0"}, []string{"Authorization"}},
		{"bearer abc.def:ghi", []string{"abc.def:ghi"}, nil},
		{"credential Mre+jCiNqcvBHvXMo6HlsubE76/neGEOUp9Yc7UnqFg= rejected", []string{"Mre+jCiNqcvBHvXMo6HlsubE76/neGEOUp9Yc7UnqFg="}, []string{"rejected"}},
		{"queue depth 42 for route send", nil, []string{"queue depth 42 for route send"}},
	}
	for _, c := range cases {
		got := redact(c.in)
		for _, s := range c.mustNot {
			if strings.Contains(got, s) {
				t.Errorf("redact(%q) = %q still contains %q", c.in, got, s)
			}
		}
		for _, s := range c.keep {
			if !strings.Contains(got, s) {
				t.Errorf("redact(%q) = %q lost %q", c.in, got, s)
			}
		}
	}
}

func TestPseudonymsAreKeyedAndSeparate(t *testing.T) {
	var id store.AccountID
	id[0] = 7
	k1 := deriveKeys(testSecret)
	k2 := deriveKeys([]byte(strings.Repeat("z", 32)))
	if k1.logID(id) == k2.logID(id) {
		t.Fatal("log pseudonym does not depend on the secret")
	}
	if strings.Contains(k1.logID(id), id.String()[:8]) {
		t.Fatal("log pseudonym reveals the id")
	}
	if string(k1.rateKey("prekeys", id[:], id[:])) == string(k1.rateKey("send", id[:], id[:])) {
		t.Fatal("rate keys of different limits collide")
	}
	w := k1.wakeKey(id, 1)
	if w == k1.wakeKey(id, 2) || w != k1.wakeKey(id, 1) {
		t.Fatal("wake keys are not per device or not stable")
	}
}
