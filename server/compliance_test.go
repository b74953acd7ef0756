package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/legalhold"
	"github.com/veil-e2ee/veil/server/store"
)

// holdEnv is a server on SQLite with legal holds in the given mode, two
// administrators (2 approvals) and the admin tool over its database.
type holdEnv struct {
	*env
	admin1, admin2 *legalhold.AdminKey
	admins         legalhold.Admins
	tool           *HoldAdmin
}

func newHoldEnv(t *testing.T, mode HoldMode) *holdEnv {
	t.Helper()
	a1, err := legalhold.GenerateAdminKey("ada", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := legalhold.GenerateAdminKey("grace", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	admins := legalhold.Admins{a1.Name: a1.Public(), a2.Name: a2.Public()}
	e := newEnv(t, func(c *Config) { c.LegalHold = LegalHoldConfig{Mode: mode, Approvals: 2, Admins: admins} })
	return &holdEnv{env: e, admin1: a1, admin2: a2, admins: admins,
		tool: &HoldAdmin{Store: e.st, Secret: testSecret, Admins: admins, Approvals: 2}}
}

// request records a hold on d's account, approved by admin1 only (or
// by both when approved).
func (h *holdEnv) request(d dev, approved bool) [16]byte {
	h.t.Helper()
	ctx := context.Background()
	hi, err := h.tool.Request(ctx, h.admin1, d.accountID(h.t), "case 2026-117: preservation order")
	if err != nil {
		h.t.Fatal(err)
	}
	id, err := ParseHoldID(hi.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	if approved {
		if _, err := h.tool.Approve(ctx, h.admin2, id); err != nil {
			h.t.Fatal(err)
		}
	}
	return id
}

// activation is the body of POST /v1/holds/{hold}/device, signed by key
// (as its name) at the given time, as client.registerCompliance sends it,
// with a fresh identity key and credential (returned, the credential in
// base64 as devices use it).
func activation(hold [16]byte, key *legalhold.AdminKey, at time.Time, regID uint32) (map[string]any, []byte, string) {
	ik := append([]byte{5}, randBytes(32)...)
	cred := randBytes(32)
	ch := sha256.Sum256(cred)
	at = at.Truncate(time.Second)
	b := keysBody(2, 2)
	b["admin"], b["signed_at"], b["identity_key"], b["registration_id"], b["credential_hash"] = key.Name, at.Unix(), ik, regID, ch[:]
	b["signature"] = key.Sign(legalhold.ActivationMessage(hold, ch[:], ik, regID, at))
	return b, ik, base64.StdEncoding.EncodeToString(cred)
}

func holdPath(id [16]byte) string { return "/v1/holds/" + hex.EncodeToString(id[:]) + "/device" }

// activate registers the compliance device of hold, signed by admin2.
func (h *holdEnv) activate(hold [16]byte) dev {
	h.t.Helper()
	body, ik, cred := activation(hold, h.admin2, time.Now(), 4321)
	r := h.do("POST", holdPath(hold), nil, body)
	if r.status != 201 {
		h.t.Fatalf("activate: %d %s", r.status, r.body)
	}
	m := r.json(h.t)
	if m["certificate"] == nil || m["credential"] != nil {
		h.t.Fatalf("activation answer without a certificate, or with a credential: %s", r.body)
	}
	return dev{account: m["account_id"].(string), id: uint32(m["device_id"].(float64)), cred: cred, regID: 4321, identity: ik}
}

func (e *env) deviceIDs(d dev) []uint32 {
	e.t.Helper()
	ds, err := e.st.Devices(context.Background(), d.accountID(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []uint32
	for _, x := range ds {
		out = append(out, x.DeviceID)
	}
	return out
}

func wantCode(t *testing.T, what string, r resp, status int, code string) {
	t.Helper()
	if r.status != status || r.code(t) != code {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.body, status, code)
	}
}

// TestComplianceDeviceReceivesOnly: a compliance device authenticates
// like any device, but only the routes open to receivers (route.auth ==
// receiver) accept it; every other authenticated route answers 403
// compliance_device and changes nothing, while the account's own devices
// keep every right.
func TestComplianceDeviceReceivesOnly(t *testing.T) {
	h := newHoldEnv(t, HoldsOn)
	ctx := context.Background()
	alice := h.register(uniqueName("alice"), 3, 3)
	bob := h.register(uniqueName("bob"), 3, 3)
	bob2 := h.link(bob, 77)
	comp := h.activate(h.request(bob, true))
	if comp.account != bob.account || comp.id != 3 {
		t.Fatalf("compliance device %s.%d, want %s.3", comp.account, comp.id, bob.account)
	}
	if d, err := h.st.Device(ctx, bob.accountID(t), comp.id); err != nil || !d.Compliance {
		t.Fatalf("stored compliance device: %+v %v", d, err)
	}

	// What receiving needs works with its credential.
	r := h.do("GET", "/v1/holds", &comp, nil)
	if r.status != 200 || !strings.Contains(string(r.body), fmt.Sprintf(`"device_id":%d`, comp.id)) {
		t.Fatalf("GET /v1/holds: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1/prekeys", &comp, nil); r.status != 200 {
		t.Fatalf("GET /v1/prekeys: %d %s", r.status, r.body)
	}
	if r := h.do("PUT", "/v1/prekeys", &comp, keysBody(2, 1)); r.status != 200 {
		t.Fatalf("PUT /v1/prekeys: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/v1/devices", &comp, nil)
	var list struct {
		Devices []struct {
			DeviceID   uint32         `json:"device_id"`
			Compliance map[string]any `json:"compliance"`
		} `json:"devices"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &list) != nil || len(list.Devices) != 3 {
		t.Fatalf("GET /v1/devices: %d %s", r.status, r.body)
	}
	for _, d := range list.Devices {
		if (d.Compliance != nil) != (d.DeviceID == comp.id) {
			t.Fatalf("GET /v1/devices marks the wrong device: %s", r.body)
		}
	}
	// A receiver confirms the username a new sender claims.
	if r := h.do("GET", "/v1/usernames/"+lookupName(t, h.env, alice), &comp, nil); r.status != 200 {
		t.Fatalf("lookup: %d %s", r.status, r.body)
	}
	// The queue: fetch, ack, WebSocket.
	if r := h.sendTo(alice, bob.account, randBytes(16), []dev{bob, bob2, comp}, []byte("to bob")); r.status != 200 {
		t.Fatalf("send to bob: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/v1/queue", &comp, nil)
	var q struct {
		Envelopes []struct {
			Seq int64 `json:"seq"`
		} `json:"envelopes"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &q) != nil || len(q.Envelopes) != 1 {
		t.Fatalf("GET /v1/queue: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/queue/ack", &comp, map[string]any{"seqs": []int64{q.Envelopes[0].Seq}}); r.status != 204 {
		t.Fatalf("ack: %d %s", r.status, r.body)
	}
	if n, err := h.st.QueueDepth(ctx, bob.accountID(t), comp.id); err != nil || n != 0 {
		t.Fatalf("queue after the ack: %d %v", n, err)
	}
	if r := h.sendTo(alice, bob.account, randBytes(16), []dev{bob, bob2, comp}, []byte("pushed")); r.status != 200 {
		t.Fatalf("send to bob: %d %s", r.status, r.body)
	}
	ws := h.dial(comp)
	if f := ws.mustNext(5 * time.Second); f.Type != "envelope" || string(f.Envelope.Content) != "pushed" {
		t.Fatalf("websocket pushed %+v", f)
	}

	// What the account does is refused, and changes nothing.
	aliceKeys, _ := h.st.PreKeyCounts(ctx, alice.accountID(t), 1)
	bobAccess, _ := h.srv.sealedStore().AccessOf(ctx, []store.AccountID{bob.accountID(t)})
	refused := []struct {
		method, path string
		body         any
	}{
		{"PUT", "/v1/messages/" + alice.account, map[string]any{"message_id": randBytes(16),
			"envelopes": []env1{{DeviceID: 1, RegistrationID: alice.regID, Type: 1, Content: []byte("as bob")}}}},
		{"GET", "/v1/certificate/sender", nil},
		{"GET", "/v1/certificate/sender", nil}, // again, from the verified-credential cache
		{"PUT", "/v1/accounts/me/access", map[string]any{"access_key": randBytes(AccessKeyLen), "unrestricted": true}},
		{"DELETE", "/v1/accounts/me", nil},
		{"GET", "/v1/accounts/me/export", nil},
		{"GET", "/v1/accounts/me/audit", nil},
		{"POST", "/v1/link-tokens", nil},
		{"POST", "/v1/devices", keysBody(1, 1)},
		{"GET", "/v1/bundles/" + alice.account, nil},
		{"GET", "/v1/bundles/" + alice.account + "/1", nil},
		{"DELETE", "/v1/devices/1", nil},
		{"DELETE", fmt.Sprintf("/v1/devices/%d", comp.id), nil},
		{"PUT", "/v1/devices/1/name", map[string]any{"name": randBytes(40)}},
		{"POST", "/v1/reports/decrypt-failures", map[string]any{"counts": map[string]int{"bad_mac": 1}}},
		{"PUT", "/v1/accounts/me/recovery", map[string]any{"credential": randBytes(32)}},
	}
	for _, c := range refused {
		r := h.do(c.method, c.path, &comp, c.body)
		wantCode(t, c.method+" "+c.path, r, 403, "compliance_device")
		if !strings.Contains(string(r.body), "only receive") {
			t.Fatalf("%s %s: message %s", c.method, c.path, r.body)
		}
	}
	// Every route that acts as the account, by the route table.
	for _, rt := range h.srv.routes {
		r := h.do(rt.method, samplePath(rt.path, alice.account), &comp, sampleBody(rt.name, alice.account, alice.regID))
		switch rt.auth {
		case accountDevice:
			if r.status != 403 || r.code(t) != "compliance_device" {
				t.Errorf("%s %s: %d %s, want 403 compliance_device", rt.method, rt.path, r.status, r.body)
			}
		case receiver:
			if r.status == 403 || r.status == 401 {
				t.Errorf("%s %s (open to receivers): %d %s", rt.method, rt.path, r.status, r.body)
			}
		}
	}

	if n, err := h.st.QueueDepth(ctx, alice.accountID(t), 1); err != nil || n != 0 {
		t.Fatalf("alice's queue after refused sends: %d %v", n, err)
	}
	if c, _ := h.st.PreKeyCounts(ctx, alice.accountID(t), 1); c != aliceKeys {
		t.Fatalf("refused bundle fetches took alice's prekeys: %+v, was %+v", c, aliceKeys)
	}
	if a, _ := h.srv.sealedStore().AccessOf(ctx, []store.AccountID{bob.accountID(t)}); !accessEqual(a[bob.accountID(t)], bobAccess[bob.accountID(t)]) {
		t.Fatalf("bob's access changed: %+v, was %+v", a, bobAccess)
	}
	if ids := h.deviceIDs(bob); !slices.Equal(ids, []uint32{1, 2, comp.id}) {
		t.Fatalf("bob's devices = %v", ids)
	}
	if _, err := h.st.Account(ctx, bob.accountID(t)); err != nil {
		t.Fatalf("bob's account: %v", err)
	}

	// The account's own devices keep their rights; removing the
	// compliance device stays refused to them.
	if r := h.do("GET", "/v1/accounts/me/export", &bob2, nil); r.status != 200 {
		t.Fatalf("bob's device 2, export: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1/bundles/"+alice.account, &bob, nil); r.status != 200 {
		t.Fatalf("bob's bundles: %d %s", r.status, r.body)
	}
	r = h.do("DELETE", fmt.Sprintf("/v1/devices/%d", comp.id), &bob, nil)
	wantCode(t, "bob removes the compliance device", r, 403, "compliance_device")

	// Lifting removes it: its credential then fails like any removed
	// device's (after the verified-credential cache's TTL).
	if _, err := h.tool.Lift(ctx, h.admin1, mustHold(t, h, bob), "order expired"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(authCacheTTL + 100*time.Millisecond)
	if r := h.do("GET", "/v1/prekeys", &comp, nil); r.status != 401 {
		t.Fatalf("the lifted hold's device: %d %s", r.status, r.body)
	}
}

// lookupName returns d's username (the test registered it).
func lookupName(t *testing.T, e *env, d dev) string {
	t.Helper()
	a, err := e.st.Account(context.Background(), d.accountID(t))
	if err != nil {
		t.Fatal(err)
	}
	return a.Username
}

func mustHold(t *testing.T, h *holdEnv, d dev) [16]byte {
	t.Helper()
	acc := d.accountID(t)
	list, err := h.tool.List(context.Background(), &acc)
	if err != nil || len(list) != 1 {
		t.Fatalf("holds of %s: %v %v", d.account, list, err)
	}
	id, _ := ParseHoldID(list[0].ID)
	return id
}

func accessEqual(a, b store.Access) bool {
	return string(a.KeyHash) == string(b.KeyHash) && a.Unrestricted == b.Unrestricted
}

// TestAuthCacheCarriesCompliance: a credential answered from the cache
// is still known to be a compliance device's.
func TestAuthCacheCarriesCompliance(t *testing.T) {
	var c authCache
	sum := sha256.Sum256([]byte("credential"))
	now := time.Now()
	k := authKey{device: 3}
	c.put(k, store.Device{CredentialHash: sum[:], Compliance: true}, now)
	if e, ok := c.get(k, &sum, now); !ok || !e.compliance {
		t.Fatalf("cached entry %+v, %v; want compliance", e, ok)
	}
	k2 := authKey{device: 1}
	c.put(k2, store.Device{CredentialHash: sum[:]}, now)
	if e, ok := c.get(k2, &sum, now); !ok || e.compliance {
		t.Fatalf("cached ordinary entry %+v, %v", e, ok)
	}
}

// TestActivateHoldRefusals: the activation endpoint adds a device only
// for a pending hold with enough approvals, signed by an administrator
// of the admins file within the time window, on a server with holds on.
func TestActivateHoldRefusals(t *testing.T) {
	h := newHoldEnv(t, HoldsOn)
	bob := h.register(uniqueName("bob"), 1, 1)
	now := time.Now()

	// One approval: not yet.
	hold := h.request(bob, false)
	body, _, _ := activation(hold, h.admin1, now, 100)
	wantCode(t, "one approval", h.do("POST", holdPath(hold), nil, body), 403, "hold_not_approved")
	if _, err := h.tool.Approve(context.Background(), h.admin2, hold); err != nil {
		t.Fatal(err)
	}

	// A key not in the admins file under an administrator's name.
	impostor, _ := legalhold.GenerateAdminKey("ada", rand.Reader)
	body, _, _ = activation(hold, impostor, now, 100)
	wantCode(t, "wrong admin key", h.do("POST", holdPath(hold), nil, body), 403, "bad_signature")
	// A signature over something else (another registration id).
	body, _, _ = activation(hold, h.admin1, now, 100)
	body["registration_id"] = 101
	wantCode(t, "signature over another message", h.do("POST", holdPath(hold), nil, body), 403, "bad_signature")
	// An administrator the admins file does not list.
	stranger, _ := legalhold.GenerateAdminKey("mallory", rand.Reader)
	body, _, _ = activation(hold, stranger, now, 100)
	wantCode(t, "unknown admin", h.do("POST", holdPath(hold), nil, body), 403, "bad_signature")
	// Signed 10 minutes ago (correctly, for that time), or 10 ahead.
	body, _, _ = activation(hold, h.admin1, now.Add(-10*time.Minute), 100)
	wantCode(t, "stale signature", h.do("POST", holdPath(hold), nil, body), 403, "bad_signature")
	body, _, _ = activation(hold, h.admin1, now.Add(10*time.Minute), 100)
	wantCode(t, "signature from the future", h.do("POST", holdPath(hold), nil, body), 403, "bad_signature")

	// An unknown hold, validly signed.
	var unknown [16]byte
	rand.Read(unknown[:])
	body, _, _ = activation(unknown, h.admin1, now, 100)
	wantCode(t, "unknown hold", h.do("POST", holdPath(unknown), nil, body), 404, "hold_not_found")

	// Malformed requests.
	for what, r := range map[string]resp{
		"garbage body":  h.do("POST", holdPath(hold), nil, []byte("{not json")),
		"empty object":  h.do("POST", holdPath(hold), nil, []byte("{}")),
		"unknown field": h.do("POST", holdPath(hold), nil, map[string]any{"admin": "ada", "surprise": 1}),
		"short identity": h.do("POST", holdPath(hold), nil, func() map[string]any {
			b, _, _ := activation(hold, h.admin1, now, 100)
			b["identity_key"] = randBytes(32)
			return b
		}()),
		"invalid hold id": h.do("POST", "/v1/holds/not-a-hold/device", nil, body),
	} {
		if r.status != 400 {
			t.Errorf("%s: %d %s, want 400", what, r.status, r.body)
		}
	}
	if ids := h.deviceIDs(bob); !slices.Equal(ids, []uint32{1}) {
		t.Fatalf("refused activations added devices: %v", ids)
	}

	// The activation; then the hold is no longer pending.
	body, _, cred := activation(hold, h.admin1, time.Now(), 100)
	first := h.do("POST", holdPath(hold), nil, body)
	if first.status != 201 {
		t.Fatalf("activate: %d %s", first.status, first.body)
	}
	m := first.json(t)
	comp := dev{account: m["account_id"].(string), id: uint32(m["device_id"].(float64)), cred: cred}
	// The same request again (a lost answer, or a replay) gets the same
	// answer — which carries no credential: only the device that drew it
	// can authenticate.
	again := h.do("POST", holdPath(hold), nil, body)
	if again.status != 201 || again.json(t)["device_id"] != m["device_id"] {
		t.Fatalf("repeated activation: %d %s", again.status, again.body)
	}
	if r := h.do("GET", "/v1/holds", &comp, nil); r.status != 200 {
		t.Fatalf("the device that drew the credential: %d %s", r.status, r.body)
	}
	guess := comp
	guess.cred = base64.StdEncoding.EncodeToString(randBytes(32))
	if r := h.do("GET", "/v1/holds", &guess, nil); r.status != 401 {
		t.Fatalf("a replayer without the credential authenticates: %d", r.status)
	}
	// Another device (another key and credential) for the same hold: no.
	body, _, _ = activation(hold, h.admin1, now, 100)
	wantCode(t, "second activation", h.do("POST", holdPath(hold), nil, body), 409, "hold_not_pending")
	if ids := h.deviceIDs(bob); !slices.Equal(ids, []uint32{1, comp.id}) {
		t.Fatalf("bob's devices = %v", ids)
	}
	// A lifted hold cannot be activated either.
	if _, err := h.tool.Lift(context.Background(), h.admin1, hold, "withdrawn"); err != nil {
		t.Fatal(err)
	}
	body, _, _ = activation(hold, h.admin1, now, 100)
	wantCode(t, "lifted hold", h.do("POST", holdPath(hold), nil, body), 409, "hold_not_pending")
}

// TestHoldModes: with holds off an approved hold is not activated; once a
// database has seen mode never, no server turns them on again.
func TestHoldModes(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		h := newHoldEnv(t, HoldsOff)
		bob := h.register(uniqueName("bob"), 1, 1)
		hold := h.request(bob, true)
		body, _, _ := activation(hold, h.admin2, time.Now(), 100)
		wantCode(t, "holds off", h.do("POST", holdPath(hold), nil, body), 403, "legal_hold_disabled")
		if ids := h.deviceIDs(bob); !slices.Equal(ids, []uint32{1}) {
			t.Fatalf("bob's devices = %v", ids)
		}
		if r := h.do("GET", "/v1/holds", &bob, nil); r.status != 200 || !strings.Contains(string(r.body), `"policy":"off"`) {
			t.Fatalf("GET /v1/holds: %d %s", r.status, r.body)
		}
	})
	t.Run("never", func(t *testing.T) {
		h := newHoldEnv(t, HoldsNever)
		bob := h.register(uniqueName("bob"), 1, 1)
		if r := h.do("GET", "/v1/holds", &bob, nil); r.status != 200 || !strings.Contains(string(r.body), `"policy":"never"`) {
			t.Fatalf("GET /v1/holds: %d %s", r.status, r.body)
		}
		if _, err := h.tool.Request(context.Background(), h.admin1, bob.accountID(t), "after never"); !errors.Is(err, ErrHoldsDisabled) {
			t.Fatalf("Request after never: %v, want ErrHoldsDisabled", err)
		}
		var hold [16]byte
		rand.Read(hold[:])
		body, _, _ := activation(hold, h.admin2, time.Now(), 100)
		wantCode(t, "holds never", h.do("POST", holdPath(hold), nil, body), 403, "legal_hold_disabled")

		cfg := func(mode HoldMode) Config {
			return Config{Secret: testSecret, Store: h.st, Logger: slog.New(slog.DiscardHandler),
				LegalHold: LegalHoldConfig{Mode: mode, Approvals: 2, Admins: h.admins}}
		}
		if _, err := New(cfg(HoldsOn)); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), ErrHoldsDisabled.Error()) {
			t.Fatalf("New(mode on) after never: %v, want ErrConfig (%v)", err, ErrHoldsDisabled)
		}
		// Off (or unset) starts, but stays never.
		for _, mode := range []HoldMode{HoldsOff, ""} {
			s, err := New(cfg(mode))
			if err != nil {
				t.Fatalf("New(mode %q) after never: %v", mode, err)
			}
			if s.holdMode() != HoldsNever {
				t.Fatalf("mode %q after never: %q", mode, s.holdMode())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("shutdown: %v", err)
			}
			cancel()
		}
	})
}
