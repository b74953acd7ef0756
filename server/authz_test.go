package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// samplePath fills a route's path parameters with valid values.
func samplePath(path, account string) string {
	r := strings.NewReplacer("{username}", "some_user", "{account}", account, "{device}", "2")
	return r.Replace(path)
}

// sampleBody is a well-formed body for the route (nil for none).
func sampleBody(name, account string, regID uint32) any {
	switch name {
	case "register":
		b := keysBody(1, 1)
		b["username"], b["identity_key"], b["registration_id"] = uniqueName("auth"), randBytes(33), 9
		return b
	case "link_device":
		b := keysBody(1, 1)
		b["registration_id"] = 10
		return b
	case "upload_prekeys":
		return keysBody(1, 1)
	case "send":
		return map[string]any{"message_id": randBytes(16), "envelopes": []env1{{DeviceID: 1, RegistrationID: regID, Type: 1, Content: []byte("x")}}}
	case "ack":
		return map[string]any{"seqs": []int64{1}}
	}
	return nil
}

// TestAuthzMatrix: every authenticated endpoint refuses a missing or wrong
// credential, and another device's credential reaches only that device's
// own data.
func TestAuthzMatrix(t *testing.T) {
	e := newEnv(t)
	bob := e.register(uniqueName("bob"), 5, 5)
	b2 := e.link(bob, 4242)
	mallory := e.register(uniqueName("mallory"), 0, 0)
	alice := e.register(uniqueName("alice"), 0, 0)
	secret := []byte("for-bob-only")
	if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob, b2}, secret); r.status != 200 {
		t.Fatalf("send: %d %s", r.status, r.body)
	}

	wrongCred := bob
	wrongCred.cred = base64.StdEncoding.EncodeToString(randBytes(32))
	crossDevice := b2
	crossDevice.cred = bob.cred // device 2 with device 1's credential
	noDevice := bob
	noDevice.id = 99
	badAccount := bob
	badAccount.account = "00000000-0000-4000-8000-000000000000"
	garbled := []string{"Basic !!!", "Bearer abc", "Basic " + base64.StdEncoding.EncodeToString([]byte("nodot:x")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte(bob.account+".1:"+"short"))}

	for _, rt := range e.srv.routes {
		if rt.auth == anyone {
			continue
		}
		path := samplePath(rt.path, alice.account)
		t.Run(rt.name, func(t *testing.T) {
			for label, d := range map[string]*dev{"none": nil, "wrong": &wrongCred, "cross-device": &crossDevice, "no-such-device": &noDevice, "no-such-account": &badAccount} {
				r := e.do(rt.method, path, d, sampleBody(rt.name, alice.account, alice.regID))
				if r.status != 401 || r.code(t) != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s credential: %d %s", label, r.status, r.body)
				}
			}
			for _, h := range garbled {
				r := doReqHeader(t, e.url, rt.method, path, h)
				if r.status != 401 {
					t.Errorf("garbled %q: %d %s", h, r.status, r.body)
				}
			}
		})
	}

	// Another device's credential acts only on its own data.
	acc := bob.accountID(t)
	depth := func() int {
		d, err := e.st.QueueDepth(context.Background(), acc, 1)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if r := e.do("POST", "/v1/queue/ack", &mallory, map[string]any{"seqs": []int64{1, 2, 3}}); r.status != 204 || depth() != 1 {
		t.Fatalf("mallory's ack touched bob's queue: %d depth %d", r.status, depth())
	}
	if r := e.do("POST", "/v1/queue/ack", &b2, map[string]any{"seqs": []int64{1, 2, 3}}); r.status != 204 || depth() != 1 {
		t.Fatalf("bob's device 2 acked device 1's queue: depth %d", depth())
	}
	if r := e.do("GET", "/v1/queue", &mallory, nil); strings.Contains(string(r.body), base64.StdEncoding.EncodeToString(secret)) {
		t.Fatal("mallory fetched bob's envelope")
	}
	ws := e.dial(mallory)
	if f := ws.mustNext(2 * time.Second); f.Type != "queue_empty" {
		t.Fatalf("mallory's websocket pushed %+v", f)
	}
	before, _ := e.st.PreKeyCounts(context.Background(), acc, 1)
	e.do("PUT", "/v1/prekeys", &mallory, keysBody(3, 0))
	after, _ := e.st.PreKeyCounts(context.Background(), acc, 1)
	if before != after {
		t.Fatal("mallory's upload changed bob's prekeys")
	}
	if r := e.do("DELETE", "/v1/devices/2", &mallory, nil); r.status != 404 {
		t.Fatalf("mallory removed a device: %d", r.status)
	}
	if _, err := e.st.Device(context.Background(), acc, 2); err != nil {
		t.Fatal("bob's device 2 is gone")
	}
	if r := e.do("GET", "/v1/devices", &mallory, nil); strings.Contains(string(r.body), "4242") {
		t.Fatal("mallory listed bob's devices")
	}
}

func doReqHeader(t *testing.T, base, method, path, authz string) resp {
	t.Helper()
	return doReqWith(t, base, method, path, map[string]string{"Authorization": authz}, nil)
}

var _ = fmt.Sprint
