package server

import (
	"bytes"
	"encoding/base64"
	"sync"
	"testing"
	"time"
)

// TestLinkingEndpoints: a device mints a link token and leaves a sealed
// message in a relay slot; the new device takes it once and spends the
// token once to join the account; mistakes get their codes.
func TestLinkingEndpoints(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxDevices = 2 })
	alice := e.register(uniqueName("alice"), 1, 1)
	slot := base64.RawURLEncoding.EncodeToString(randBytes(16))

	r := e.do("POST", "/v1/link-tokens", &alice, nil)
	if r.status != 201 {
		t.Fatalf("link token: %d %s", r.status, r.body)
	}
	tok := r.json(t)["token"].(string)

	if r := e.do("GET", "/v1/provisioning/"+slot, nil, nil); r.status != 404 || r.code(t) != "provisioning_not_found" {
		t.Fatalf("take before put: %d %s", r.status, r.body)
	}
	sealed := randBytes(300)
	if r := e.do("PUT", "/v1/provisioning/"+slot, &alice, map[string]any{"message": sealed}); r.status != 204 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/v1/provisioning/"+slot, &alice, map[string]any{"message": sealed}); r.status != 409 || r.code(t) != "provisioning_exists" {
		t.Fatalf("put twice: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/v1/provisioning/"+slot, nil, map[string]any{"message": sealed}); r.status != 401 {
		t.Fatalf("put without a credential: %d", r.status)
	}
	r = e.do("GET", "/v1/provisioning/"+slot, nil, nil)
	if r.status != 200 || r.json(t)["message"] != base64.StdEncoding.EncodeToString(sealed) {
		t.Fatalf("take: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/provisioning/"+slot, nil, nil); r.status != 404 {
		t.Fatalf("take twice: %d", r.status)
	}
	for _, bad := range []string{"short", slot + "AA", "!!!!!!!!!!!!!!!!!!!!!!"} {
		if r := e.do("GET", "/v1/provisioning/"+bad, nil, nil); r.status != 400 || r.code(t) != "invalid_provisioning_id" {
			t.Fatalf("bad slot %q: %d %s", bad, r.status, r.body)
		}
	}
	if r := e.do("PUT", "/v1/provisioning/"+slot, &alice, map[string]any{"message": randBytes(17 << 10)}); r.status != 413 {
		t.Fatalf("oversized message: %d %s", r.status, r.body)
	}

	body := keysBody(1, 1)
	body["registration_id"] = 77
	body["link_token"] = randBytes(32)
	if r := e.do("POST", "/v1/linked-devices", nil, body); r.status != 403 || r.code(t) != "invalid_link_token" {
		t.Fatalf("unknown token: %d %s", r.status, r.body)
	}
	raw, _ := base64.StdEncoding.DecodeString(tok)
	body["link_token"] = raw
	r = e.do("POST", "/v1/linked-devices", nil, body)
	if r.status != 201 {
		t.Fatalf("link with token: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["account_id"] != alice.account || m["device_id"].(float64) != 2 {
		t.Fatalf("linked = %v", m)
	}
	d2 := dev{account: alice.account, id: 2, cred: m["credential"].(string)}
	if r := e.do("GET", "/v1/devices", &d2, nil); r.status != 200 {
		t.Fatalf("the new device's credential: %d", r.status)
	}
	if r := e.do("POST", "/v1/linked-devices", nil, body); r.status != 403 {
		t.Fatalf("a token spent twice: %d %s", r.status, r.body)
	}
	// The device limit (2 here) is a clear conflict.
	r = e.do("POST", "/v1/link-tokens", &alice, nil)
	raw, _ = base64.StdEncoding.DecodeString(r.json(t)["token"].(string))
	body = keysBody(1, 1)
	body["registration_id"] = 78
	body["link_token"] = raw
	if r := e.do("POST", "/v1/linked-devices", nil, body); r.status != 409 || r.code(t) != "device_limit" {
		t.Fatalf("over the device limit: %d %s", r.status, r.body)
	}
}

// TestBlobEndpoints: raw bytes in, the same bytes out once, only to the
// same account.
func TestBlobEndpoints(t *testing.T) {
	e := newEnv(t)
	alice := e.register(uniqueName("alice"), 1, 1)
	bob := e.register(uniqueName("bob"), 1, 1)
	id := base64.RawURLEncoding.EncodeToString(randBytes(16))
	data := randBytes(3 << 20)
	put := func(d *dev, ctype string, body []byte) resp {
		return doReq(t, e.url, "PUT", "/v1/blobs/"+id, d, body, ctype)
	}
	if r := put(&alice, "application/json", data); r.status != 415 {
		t.Fatalf("JSON content type: %d", r.status)
	}
	if r := put(&alice, "application/octet-stream", nil); r.status != 400 {
		t.Fatalf("empty blob: %d %s", r.status, r.body)
	}
	if r := put(nil, "application/octet-stream", data); r.status != 401 {
		t.Fatalf("no credential: %d", r.status)
	}
	if r := put(&alice, "application/octet-stream", data); r.status != 204 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	if r := put(&alice, "application/octet-stream", data); r.status != 409 {
		t.Fatalf("put twice: %d", r.status)
	}
	if r := e.do("GET", "/v1/blobs/"+id, &bob, nil); r.status != 404 {
		t.Fatalf("another account's blob: %d", r.status)
	}
	r := e.do("GET", "/v1/blobs/"+id, &alice, nil)
	if r.status != 200 || !bytes.Equal(r.body, data) || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("get: %d, %d bytes", r.status, len(r.body))
	}
	if r := e.do("GET", "/v1/blobs/"+id, &alice, nil); r.status != 404 {
		t.Fatalf("get twice: %d", r.status)
	}
	if r := e.do("GET", "/v1/blobs/nope", &alice, nil); r.status != 400 || r.code(t) != "invalid_blob_id" {
		t.Fatalf("bad id: %d %s", r.status, r.body)
	}
}

// TestDeviceExpiry: a linked device unseen for the expiry period is
// removed by the sweeper and its credential stops working; the account's
// first device, and devices seen recently, stay.
func TestDeviceExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, func(c *Config) { c.Now = clock })
	alice := e.register(uniqueName("alice"), 1, 1)
	d2 := e.link(alice, 501)
	d3 := e.link(alice, 502)
	mu.Lock()
	now = now.Add(20 * 24 * time.Hour)
	mu.Unlock()
	if r := e.do("GET", "/v1/devices", &d3, nil); r.status != 200 { // d3 is seen on day 20
		t.Fatalf("d3: %d", r.status)
	}
	mu.Lock()
	now = now.Add(15 * 24 * time.Hour) // day 35: d2 unseen for 35 days, d3 for 15
	mu.Unlock()
	e.srv.sweepOnce()
	if r := e.do("GET", "/v1/devices", &d2, nil); r.status != 401 {
		t.Fatalf("an expired device still authenticates: %d", r.status)
	}
	r := e.do("GET", "/v1/devices", &alice, nil)
	if r.status != 200 {
		t.Fatalf("the first device: %d", r.status)
	}
	ds := r.json(t)["devices"].([]any)
	if len(ds) != 2 {
		t.Fatalf("devices after expiry: %v (want 1 and 3)", ds)
	}
}
