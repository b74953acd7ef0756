package server

import (
	"encoding/base64"
	"testing"
)

// TestAccountBackupOnServer: a device keeps its account's backup on the
// server; with the username and recovery credential anyone gets it back
// (the person who lost every device), with anything else nobody does,
// and the refusals do not tell whether the username exists.
func TestAccountBackupOnServer(t *testing.T) {
	e := newEnv(t)
	name := uniqueName("alice")
	alice := e.register(name, 1, 1)
	cred := randBytes(RecoveryCredentialLen)
	if r := e.do("PUT", "/v1/accounts/me/recovery", &alice, map[string]any{"credential": cred}); r.status != 204 {
		t.Fatalf("set recovery: %d", r.status)
	}
	fetch := func(user string, c []byte) resp {
		return e.do("POST", "/v1/recovery/backup", nil, map[string]any{"username": user, "credential": c})
	}
	if r := fetch(name, cred); r.status != 404 || r.code(t) != "backup_not_found" {
		t.Fatalf("before any backup: %d %s", r.status, r.body)
	}
	put := func(d *dev, body []byte, ctype string) resp {
		h := map[string]string{"Content-Type": ctype}
		if d != nil {
			h["Authorization"] = d.auth()
		}
		return doReqWith(t, e.url, "PUT", "/v1/accounts/me/backup", h, body)
	}
	if r := put(nil, []byte("x"), "application/octet-stream"); r.status != 401 {
		t.Fatalf("anonymous put: %d", r.status)
	}
	if r := put(&alice, []byte("x"), "application/json"); r.status != 415 {
		t.Fatalf("wrong type: %d", r.status)
	}
	if r := put(&alice, nil, "application/octet-stream"); r.status != 400 {
		t.Fatalf("empty: %d", r.status)
	}
	for _, v := range []string{"age-encrypted backup v1", "age-encrypted backup v2"} {
		if r := put(&alice, []byte(v), "application/octet-stream"); r.status != 204 {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
	}
	r := fetch(name, cred)
	if r.status != 200 {
		t.Fatalf("fetch: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["account_id"] != alice.account || m["backup"] != base64.StdEncoding.EncodeToString([]byte("age-encrypted backup v2")) {
		t.Fatalf("fetched %s", r.body)
	}
	wrong := fetch(name, randBytes(RecoveryCredentialLen))
	unknown := fetch(uniqueName("nobody"), cred)
	if wrong.status != 401 || string(wrong.body) != string(unknown.body) {
		t.Fatalf("refusals differ: %d %s / %d %s", wrong.status, wrong.body, unknown.status, unknown.body)
	}
}
