package server

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAPIFlow(t *testing.T) {
	e := newEnv(t)
	alice := e.register(uniqueName("alice"), 3, 2)
	bob := e.register(uniqueName("bob"), 2, 1)

	// Registration rejects a taken username.
	body := keysBody(0, 0)
	body["username"], body["identity_key"], body["registration_id"] = "alice_1"+"x", randBytes(33), 7
	if r := e.do("POST", "/v1/accounts", nil, body); r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/accounts", nil, body); r.status != 409 || r.code(t) != "username_taken" {
		t.Fatalf("taken: %d %s", r.status, r.body)
	}

	// The new account lists its one device.
	{
		r := e.do("GET", "/v1/devices", &bob, nil)
		if r.status != 200 {
			t.Fatalf("devices: %d %s", r.status, r.body)
		}
		ds := r.json(t)["devices"].([]any)
		if len(ds) != 1 || ds[0].(map[string]any)["device_id"].(float64) != 1 {
			t.Fatalf("devices: %s", r.body)
		}
	}
	r := e.do("GET", "/v1/usernames/nobody_here", &alice, nil)
	if r.status != 404 || r.code(t) != "account_not_found" {
		t.Fatalf("lookup missing: %d %s", r.status, r.body)
	}

	// Prekey counts and upload.
	r = e.do("GET", "/v1/prekeys", &alice, nil)
	if m := r.json(t); r.status != 200 || m["one_time_prekeys"].(float64) != 3 || m["one_time_kem_prekeys"].(float64) != 2 {
		t.Fatalf("counts: %d %s", r.status, r.body)
	}
	up := keysBody(4, 1)
	delete(up, "signed_prekey")
	r = e.do("PUT", "/v1/prekeys", &alice, up)
	if m := r.json(t); r.status != 200 || m["one_time_prekeys"].(float64) != 7 || m["one_time_kem_prekeys"].(float64) != 3 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}

	// Bob fetches Alice's bundle: one-time keys in upload order, each once.
	var seen []float64
	for i := 0; i < 4; i++ {
		r = e.do("GET", "/v1/bundles/"+alice.account, &bob, nil)
		if r.status != 200 {
			t.Fatalf("bundle: %d %s", r.status, r.body)
		}
		m := r.json(t)
		if m["account_id"] != alice.account || m["identity_key"] != base64.StdEncoding.EncodeToString(alice.identity) {
			t.Fatalf("bundle identity: %s", r.body)
		}
		d := m["devices"].([]any)[0].(map[string]any)
		pk := d["prekey"].(map[string]any)
		seen = append(seen, pk["key_id"].(float64))
		wantLR := i >= 3
		if d["kem_is_last_resort"].(bool) != wantLR {
			t.Fatalf("fetch %d: kem_is_last_resort=%v", i, d["kem_is_last_resort"])
		}
		if d["registration_id"].(float64) != float64(alice.regID) {
			t.Fatalf("registration id: %s", r.body)
		}
	}
	if !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != len(seen) {
		t.Fatalf("prekeys out of order or repeated: %v", seen)
	}

	// Send Alice → Bob, fetch over HTTP, ack, gone.
	msgID := randBytes(16)
	content := []byte("opaque-ciphertext-1")
	if r := e.sendTo(alice, bob.account, msgID, []dev{bob}, content); r.status != 200 || r.json(t)["duplicate"] != false {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/queue", &bob, nil)
	if r.status != 200 {
		t.Fatalf("fetch: %d %s", r.status, r.body)
	}
	m := r.json(t)
	envs := m["envelopes"].([]any)
	if len(envs) != 1 || m["more"] != false {
		t.Fatalf("fetch: %s", r.body)
	}
	env0 := envs[0].(map[string]any)
	if env0["content"] != base64.StdEncoding.EncodeToString(content) || env0["sender"] != alice.account ||
		env0["message_id"] != base64.StdEncoding.EncodeToString(msgID) || env0["sender_device"].(float64) != 1 {
		t.Fatalf("envelope: %s", r.body)
	}
	// Alice cannot see Bob's queue: her own is empty.
	if r := e.do("GET", "/v1/queue", &alice, nil); len(r.json(t)["envelopes"].([]any)) != 0 {
		t.Fatalf("alice sees: %s", r.body)
	}
	seq := int64(env0["seq"].(float64))
	if r := e.do("POST", "/v1/queue/ack", &bob, map[string]any{"seqs": []int64{seq}}); r.status != 204 {
		t.Fatalf("ack: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/queue", &bob, nil); len(r.json(t)["envelopes"].([]any)) != 0 {
		t.Fatalf("after ack: %s", r.body)
	}
	// Resending the same message id is accepted once.
	if r := e.sendTo(alice, bob.account, msgID, []dev{bob}, content); r.status != 200 || r.json(t)["duplicate"] != true {
		t.Fatalf("resend: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/queue", &bob, nil); len(r.json(t)["envelopes"].([]any)) != 0 {
		t.Fatalf("resend stored again: %s", r.body)
	}

	// Sealed sends carry no sender.
	if r := e.do("PUT", "/v1/messages/"+bob.account, &alice, map[string]any{"message_id": randBytes(16), "sealed": true,
		"envelopes": []env1{{DeviceID: 1, RegistrationID: bob.regID, Type: 3, Content: []byte("x")}}}); r.status != 200 {
		t.Fatalf("sealed send: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/queue", &bob, nil)
	env0 = r.json(t)["envelopes"].([]any)[0].(map[string]any)
	if _, ok := env0["sender"]; ok || env0["type"].(float64) != 3 {
		t.Fatalf("sealed envelope: %s", r.body)
	}
}

func TestLookupAndDevices(t *testing.T) {
	e := newEnv(t)
	name := uniqueName("carol")
	carol := e.register(name, 0, 0)
	dave := e.register(uniqueName("dave"), 0, 0)
	r := e.do("GET", "/v1/usernames/"+name, &dave, nil)
	if m := r.json(t); r.status != 200 || m["account_id"] != carol.account {
		t.Fatalf("lookup: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/usernames/Not-Valid", &dave, nil); r.status != 400 || r.code(t) != "invalid_username" {
		t.Fatalf("bad name: %d %s", r.status, r.body)
	}
	c2 := e.link(carol, 222)
	if c2.id != 2 {
		t.Fatalf("linked id %d", c2.id)
	}
	r = e.do("GET", "/v1/devices", &c2, nil)
	if ds := r.json(t)["devices"].([]any); len(ds) != 2 {
		t.Fatalf("devices: %s", r.body)
	}
	// Removing a device revokes its credential.
	if r := e.do("DELETE", "/v1/devices/2", &carol, nil); r.status != 204 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/devices", &c2, nil); r.status != 401 {
		t.Fatalf("removed device still authenticates: %d", r.status)
	}
	if r := e.do("DELETE", "/v1/devices/2", &carol, nil); r.status != 404 || r.code(t) != "device_not_found" {
		t.Fatalf("remove twice: %d %s", r.status, r.body)
	}
	// Device ids are not reused.
	if c3 := e.link(carol, 333); c3.id != 3 {
		t.Fatalf("reused id: %d", c3.id)
	}
}

func TestSendDeviceMismatch(t *testing.T) {
	e := newEnv(t)
	alice := e.register(uniqueName("alice"), 0, 0)
	a2 := e.link(alice, 1002)
	a3 := e.link(alice, 1003)
	bob := e.register(uniqueName("bob"), 0, 0)
	b2 := e.link(bob, 2002)

	r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x"))
	if r.status != 409 || r.code(t) != "device_mismatch" {
		t.Fatalf("missing: %d %s", r.status, r.body)
	}
	if m := r.json(t); fmt.Sprint(m["missing"]) != "[2]" || fmt.Sprint(m["extra"]) != "[]" {
		t.Fatalf("missing lists: %s", r.body)
	}
	ghost := dev{id: 9, regID: 1}
	r = e.sendTo(alice, bob.account, randBytes(16), []dev{bob, b2, ghost}, []byte("x"))
	if m := r.json(t); r.status != 409 || fmt.Sprint(m["extra"]) != "[9]" {
		t.Fatalf("extra: %d %s", r.status, r.body)
	}
	stale := b2
	stale.regID = 4
	r = e.sendTo(alice, bob.account, randBytes(16), []dev{bob, stale}, []byte("x"))
	if m := r.json(t); r.status != 410 || r.code(t) != "stale_devices" || fmt.Sprint(m["stale"]) != "[2]" {
		t.Fatalf("stale: %d %s", r.status, r.body)
	}
	// Nothing was stored by the refused sends.
	if r := e.do("GET", "/v1/queue", &bob, nil); len(r.json(t)["envelopes"].([]any)) != 0 {
		t.Fatalf("refused send stored: %s", r.body)
	}
	// Sync to one's own other devices: the sender's device is excluded.
	r = e.sendTo(alice, alice.account, randBytes(16), []dev{a2, a3}, []byte("sync"))
	if r.status != 200 {
		t.Fatalf("self send: %d %s", r.status, r.body)
	}
	r = e.sendTo(alice, alice.account, randBytes(16), []dev{alice, a2, a3}, []byte("sync"))
	if m := r.json(t); r.status != 409 || fmt.Sprint(m["extra"]) != "[1]" {
		t.Fatalf("self send to self: %d %s", r.status, r.body)
	}
	for _, d := range []dev{a2, a3} {
		if r := e.do("GET", "/v1/queue", &d, nil); len(r.json(t)["envelopes"].([]any)) != 1 {
			t.Fatalf("device %d: %s", d.id, r.body)
		}
	}
	// Unknown recipient.
	r = e.sendTo(alice, "00000000-0000-4000-8000-000000000000", randBytes(16), []dev{bob}, []byte("x"))
	if r.status != 404 || r.code(t) != "account_not_found" {
		t.Fatalf("unknown recipient: %d %s", r.status, r.body)
	}
}

func TestEnvelopeSizeLimit(t *testing.T) {
	e := newEnv(t)
	alice := e.register(uniqueName("alice"), 0, 0)
	bob := e.register(uniqueName("bob"), 0, 0)
	if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, make([]byte, MaxEnvelopeBytes)); r.status != 200 {
		t.Fatalf("96 KiB: %d %s", r.status, r.body)
	}
	r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, make([]byte, MaxEnvelopeBytes+1))
	if r.status != 413 || r.code(t) != "envelope_too_large" {
		t.Fatalf("96 KiB + 1: %d %s", r.status, r.body)
	}
	huge := bytes.Repeat([]byte("a"), int(e.srv.maxSendBody())+10)
	r = e.do("PUT", "/v1/messages/"+bob.account, &alice, huge)
	if r.status != 413 || r.code(t) != "body_too_large" {
		t.Fatalf("huge body: %d %s", r.status, r.body)
	}
}

func TestConcurrentBundleFetchers(t *testing.T) {
	e := newEnv(t)
	const n = 50
	target := e.register(uniqueName("target"), 40, 30)
	fetchers := make([]dev, n)
	for i := range fetchers {
		fetchers[i] = e.register(uniqueName("fetcher"), 0, 0)
	}
	var mu sync.Mutex
	ec, kem := map[float64]int{}, map[float64]int{}
	lastResort, noEC := 0, 0
	var wg sync.WaitGroup
	for i := range fetchers {
		wg.Add(1)
		go func(f dev) {
			defer wg.Done()
			r := doReq(t, e.url, "GET", "/v1/bundles/"+target.account+"/1", &f, nil, "")
			if r.status != 200 {
				t.Errorf("fetch: %d %s", r.status, r.body)
				return
			}
			d := r.json(t)["devices"].([]any)[0].(map[string]any)
			mu.Lock()
			defer mu.Unlock()
			if pk, ok := d["prekey"].(map[string]any); ok {
				ec[pk["key_id"].(float64)]++
			} else {
				noEC++
			}
			if d["kem_is_last_resort"].(bool) {
				lastResort++
			} else {
				kem[d["kem_prekey"].(map[string]any)["key_id"].(float64)]++
			}
		}(fetchers[i])
	}
	wg.Wait()
	for id, c := range ec {
		if c != 1 {
			t.Errorf("EC prekey %v handed out %d times", id, c)
		}
	}
	for id, c := range kem {
		if c != 1 {
			t.Errorf("KEM prekey %v handed out %d times", id, c)
		}
	}
	if len(ec) != 40 || noEC != 10 || len(kem) != 30 || lastResort != 20 {
		t.Fatalf("ec %d (none %d), kem %d (last resort %d)", len(ec), noEC, len(kem), lastResort)
	}
}

func TestRateLimits(t *testing.T) {
	clock, advance := testClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, withClock(clock), withLimits(func(l *Limits) {
		l.PreKeyFetch = Rate{Burst: 6, Interval: 100 * time.Second}
		l.Register = Rate{Burst: 3, Interval: 30 * time.Second}
	}))
	a := e.register(uniqueName("a"), 20, 0)
	b := e.register(uniqueName("b"), 0, 0)
	c := e.register(uniqueName("c"), 0, 0)
	for i := 0; i < 6; i++ {
		if r := e.do("GET", "/v1/bundles/"+a.account, &b, nil); r.status != 200 {
			t.Fatalf("fetch %d: %d %s", i, r.status, r.body)
		}
	}
	r := e.do("GET", "/v1/bundles/"+a.account, &b, nil)
	if r.status != 429 || r.code(t) != "rate_limited" || r.header.Get("Retry-After") != "100" {
		t.Fatalf("7th fetch: %d %s Retry-After=%q", r.status, r.body, r.header.Get("Retry-After"))
	}
	// Another requester has its own bucket.
	if r := e.do("GET", "/v1/bundles/"+a.account, &c, nil); r.status != 200 {
		t.Fatalf("other requester: %d", r.status)
	}
	// Registration: 3 were used above by this client address.
	body := keysBody(0, 0)
	body["username"], body["identity_key"], body["registration_id"] = uniqueName("d"), randBytes(33), 5
	r = e.do("POST", "/v1/accounts", nil, body)
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("4th registration: %d %s", r.status, r.body)
	}
	advance(100 * time.Second)
	if r := e.do("GET", "/v1/bundles/"+a.account, &b, nil); r.status != 200 {
		t.Fatalf("after refill: %d %s", r.status, r.body)
	}
	// The bucket keys are pseudonyms: no requester id or address in the logs.
	if clientLogs(e.logs.String(), "127.0.0.1") {
		t.Fatal("client address logged")
	}
}

func TestQueueFull(t *testing.T) {
	e := newEnv(t, withLimits(func(l *Limits) { l.MaxQueue = 3; l.QueueFullRetry = 42 * time.Second }))
	alice := e.register(uniqueName("alice"), 0, 0)
	bob := e.register(uniqueName("bob"), 0, 0)
	for i := 0; i < 3; i++ {
		if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x")); r.status != 200 {
			t.Fatalf("send %d: %d", i, r.status)
		}
	}
	r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x"))
	if r.status != 429 || r.code(t) != "recipient_queue_full" || r.header.Get("Retry-After") != "42" {
		t.Fatalf("overflow: %d %s %v", r.status, r.body, r.header)
	}
	// Nothing accepted was dropped.
	if r := e.do("GET", "/v1/queue", &bob, nil); len(r.json(t)["envelopes"].([]any)) != 3 {
		t.Fatalf("queue: %s", r.body)
	}
}

func TestExpirySweeper(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, withClock(clock), withLimits(func(l *Limits) { l.EnvelopeTTL = time.Hour; l.DedupWindow = 2 * time.Hour }))
	alice := e.register(uniqueName("alice"), 0, 0)
	bob := e.register(uniqueName("bob"), 0, 0)
	old := randBytes(16)
	e.sendTo(alice, bob.account, old, []dev{bob}, []byte("old"))
	mu.Lock()
	now = now.Add(90 * time.Minute)
	mu.Unlock()
	e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("new"))
	e.srv.sweepOnce()
	r := e.do("GET", "/v1/queue", &bob, nil)
	envs := r.json(t)["envelopes"].([]any)
	if len(envs) != 1 || envs[0].(map[string]any)["content"] != base64.StdEncoding.EncodeToString([]byte("new")) {
		t.Fatalf("after sweep: %s", r.body)
	}
	// The expired message id is still remembered within the dedup window.
	if r := e.sendTo(alice, bob.account, old, []dev{bob}, []byte("old")); r.json(t)["duplicate"] != true {
		t.Fatalf("dedup forgot too early: %s", r.body)
	}
}

// clientLogs reports whether needle appears in any log line other than the
// one announcing the listen address (which is configuration, not a client).
func clientLogs(logs, needle string) bool {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, needle) && !strings.Contains(line, "server: serving") {
			return true
		}
	}
	return false
}
