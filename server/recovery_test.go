package server

import (
	"testing"
)

// TestAccountRecovery: with the recovery credential the account gets one
// new device in place of all its devices (whose credentials stop
// working); a wrong credential, an account without one and an unknown
// account get the same refusal; guesses are limited.
func TestAccountRecovery(t *testing.T) {
	e := newEnv(t)
	alice := e.register(uniqueName("alice"), 2, 2)
	second := e.link(alice, 4321)
	cred := randBytes(RecoveryCredentialLen)
	if r := e.do("PUT", "/v1/accounts/me/recovery", &alice, map[string]any{"credential": randBytes(5)}); r.status != 400 {
		t.Fatalf("short credential: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/v1/accounts/me/recovery", &alice, map[string]any{"credential": cred}); r.status != 204 {
		t.Fatalf("set recovery: %d %s", r.status, r.body)
	}
	recoverBody := func(c []byte) map[string]any {
		b := keysBody(2, 2)
		b["credential"] = c
		b["registration_id"] = 999
		return b
	}
	bob := e.register(uniqueName("bob"), 1, 1) // no recovery credential set
	wrong := e.do("POST", "/v1/accounts/"+alice.account+"/recover", nil, recoverBody(randBytes(RecoveryCredentialLen)))
	none := e.do("POST", "/v1/accounts/"+bob.account+"/recover", nil, recoverBody(cred))
	unknown := e.do("POST", "/v1/accounts/0b8a3f1e-5a6c-4b1d-9e2f-3c4d5e6f7a8b/recover", nil, recoverBody(cred))
	for name, r := range map[string]resp{"wrong": wrong, "none set": none, "unknown account": unknown} {
		if r.status != 401 || r.code(t) != "recovery_denied" {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	if string(wrong.body) != string(unknown.body) || string(none.body) != string(unknown.body) {
		t.Fatal("refusals differ between a wrong credential and an unknown account")
	}
	if r := e.do("GET", "/v1/devices", &alice, nil); r.status != 200 {
		t.Fatalf("a refused recovery broke the account: %d", r.status)
	}

	r := e.do("POST", "/v1/accounts/"+alice.account+"/recover", nil, recoverBody(cred))
	if r.status != 201 {
		t.Fatalf("recover: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["account_id"] != alice.account || m["device_id"].(float64) != 3 {
		t.Fatalf("recovered device: %s", r.body)
	}
	nd := dev{account: alice.account, id: 3, cred: m["credential"].(string), regID: 999}
	for _, old := range []dev{alice, second} {
		if r := e.do("GET", "/v1/devices", &old, nil); r.status != 401 {
			t.Fatalf("old device %d still authenticates: %d", old.id, r.status)
		}
	}
	r = e.do("GET", "/v1/devices", &nd, nil)
	if r.status != 200 {
		t.Fatalf("new device: %d %s", r.status, r.body)
	}
	if ds := r.json(t)["devices"].([]any); len(ds) != 1 {
		t.Fatalf("devices after recovery: %s", r.body)
	}
	// The account and its identity key stay.
	if r := e.do("GET", "/v1/bundles/"+alice.account, &bob, nil); r.status != 200 || r.json(t)["identity_key"] == nil {
		t.Fatalf("bundles after recovery: %d %s", r.status, r.body)
	}

	// Guesses are limited per account.
	var limited bool
	for range 8 {
		r := e.do("POST", "/v1/accounts/"+bob.account+"/recover", nil, recoverBody(randBytes(RecoveryCredentialLen)))
		if r.status == 429 {
			limited = r.header.Get("Retry-After") != ""
			break
		}
	}
	if !limited {
		t.Fatal("recovery guesses are not rate limited")
	}
}
