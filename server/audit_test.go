package server

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/audit"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
)

type auditPage struct {
	Entries []struct {
		Seq     uint64            `json:"seq"`
		Time    string            `json:"time"`
		Type    string            `json:"type"`
		Device  uint32            `json:"device"`
		Details map[string]string `json:"details"`
		Hash    string            `json:"hash"`
	} `json:"entries"`
}

func (e *env) myAudit(d dev, query string) auditPage {
	e.t.Helper()
	r := e.do("GET", "/v1/accounts/me/audit"+query, &d, nil)
	if r.status != 200 {
		e.t.Fatalf("audit: %d %s", r.status, r.body)
	}
	var p auditPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func types(p auditPage) []string {
	var out []string
	for _, e := range p.Entries {
		out = append(out, e.Type)
	}
	return out
}

// TestAuditHooks: the handlers' events reach the log under the account's
// pseudonym, each user reads only their own entries, the chain verifies
// with the server's audit key, and a sweep checkpoints the head.
func TestAuditHooks(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAuditHooks(t) })
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		testAuditHooks(t, withStore(st))
	})
}

func testAuditHooks(t *testing.T, opts ...envOpt) {
	e := newEnv(t, append([]envOpt{withLimits(func(l *Limits) { l.Lookup = Rate{Burst: 1, Interval: time.Hour} })}, opts...)...)
	alice := e.register(uniqueName("alice"), 2, 2)
	bob := e.register(uniqueName("bob"), 2, 0) // no one-time KEM keys: bundles hand out the last resort
	a2 := e.link(alice, 77)
	if r := e.do("DELETE", "/v1/devices/2", &alice, nil); r.status != 204 {
		t.Fatalf("remove device: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/bundles/"+bob.account, &alice, nil); r.status != 200 {
		t.Fatalf("bundles: %d %s", r.status, r.body)
	}
	for range 3 { // the second and third trip the limit; recorded once
		e.do("GET", "/v1/usernames/nobody_here", &alice, nil)
	}

	pa := e.myAudit(alice, "")
	if want := []string{audit.AccountCreated, audit.DeviceLinked, audit.DeviceRemoved, audit.RateLimited}; !slices.Equal(types(pa), want) {
		t.Fatalf("alice's audit = %v, want %v", types(pa), want)
	}
	if pa.Entries[0].Device != 1 || pa.Entries[1].Device != a2.id || pa.Entries[2].Device != a2.id ||
		pa.Entries[2].Details["reason"] != "removed_by_user" || pa.Entries[3].Details["limit"] != "lookup" {
		t.Fatalf("alice's entries: %+v", pa.Entries)
	}
	if _, err := time.Parse(time.RFC3339, pa.Entries[0].Time); err != nil || len(pa.Entries[0].Hash) != 64 {
		t.Fatalf("entry encoding: %+v", pa.Entries[0])
	}
	pb := e.myAudit(bob, "")
	if want := []string{audit.AccountCreated, audit.PreKeysExhausted}; !slices.Equal(types(pb), want) || pb.Entries[1].Device != 1 {
		t.Fatalf("bob's audit = %+v, want %v", pb.Entries, want)
	}
	// Paging.
	if p := e.myAudit(alice, "?limit=2"); len(p.Entries) != 2 || p.Entries[1].Type != audit.DeviceLinked {
		t.Fatalf("first page: %+v", p.Entries)
	}
	if p := e.myAudit(alice, "?after="+itoaU(pa.Entries[1].Seq)); !slices.Equal(types(p), []string{audit.DeviceRemoved, audit.RateLimited}) {
		t.Fatalf("page after: %v", types(p))
	}
	for _, q := range []string{"?after=x", "?limit=0", "?limit=101", "?after=-1"} {
		if r := e.do("GET", "/v1/accounts/me/audit"+q, &alice, nil); r.status != 400 {
			t.Fatalf("%s: %d", q, r.status)
		}
	}
	if r := e.do("GET", "/v1/accounts/me/audit", nil, nil); r.status != 401 {
		t.Fatalf("unauthenticated: %d", r.status)
	}

	// The store holds the same entries under alice's pseudonym only.
	al := e.st.(store.AuditLog)
	k, _ := audit.DeriveKeys(testSecret)
	mine, err := al.ListAudit(t.Context(), store.AuditQuery{Account: k.Pseudonym(alice.accountID(t))})
	if err != nil || len(mine) != 4 || mine[0].Type != audit.AccountCreated {
		t.Fatalf("store entries of alice: %+v, %v", mine, err)
	}
	e.srv.sweepOnce()
	rep, err := audit.Verify(t.Context(), al, e.srv.AuditKey())
	if err != nil || !rep.OK || rep.Entries != 6 || rep.LastCheckpoint != 6 || rep.Unprotected != 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if !bytes.Equal(e.srv.AuditKey(), k.Public) {
		t.Fatal("AuditKey differs from the key derived from the secret")
	}

	// Nothing in the audit tables names an account, a username, a
	// credential, a key or an address.
	var all bytes.Buffer
	es, _ := al.ListAudit(t.Context(), store.AuditQuery{})
	for _, x := range es {
		b, _ := json.Marshal(x)
		all.Write(b)
		all.WriteString(x.Type)
		all.Write(x.Account)
		all.Write(x.Details)
	}
	cps, _ := al.AuditCheckpoints(t.Context(), 0, 0)
	for _, c := range cps {
		b, _ := json.Marshal(c)
		all.Write(b)
	}
	dump := all.Bytes()
	for _, d := range []dev{alice, a2, bob} {
		id := d.accountID(t)
		cred, _ := base64.StdEncoding.DecodeString(d.cred)
		for _, needle := range [][]byte{id[:], []byte(d.account), []byte(hex.EncodeToString(id[:])), []byte(base64.StdEncoding.EncodeToString(id[:])),
			[]byte(d.cred), cred, d.identity, []byte(base64.StdEncoding.EncodeToString(d.identity))} {
			if bytes.Contains(dump, needle) {
				t.Fatalf("the audit log contains an identifier of %s: %q", d.account, needle)
			}
		}
	}
	for _, needle := range []string{"alice", "bob", "nobody_here", "127.0.0.1"} {
		if bytes.Contains(dump, []byte(needle)) {
			t.Fatalf("the audit log contains %q", needle)
		}
	}
}

func itoaU(n uint64) string { return countText(int(n)) }

// TestAuditFailureDoesNotFailRequest: the action committed, so a failed
// append is logged and counted, and the client still gets its answer.
func TestAuditFailureDoesNotFailRequest(t *testing.T) {
	e, fs := newFaultEnv(t)
	fs.Inject(func(op string) error {
		if op == "AppendAudit" {
			return store.ErrClosed
		}
		return nil
	})
	d := e.register(uniqueName("carol"), 1, 1)
	if p := e.myAudit(d, ""); len(p.Entries) != 0 {
		t.Fatalf("entries despite the failure: %+v", p.Entries)
	}
	if !bytes.Contains([]byte(e.logs.String()), []byte("audit record failed")) {
		t.Fatal("the failed append was not logged")
	}
}

// TestAuditRecoveryAndExpiry: refused and successful recoveries, and a
// device expired by the sweeper, are recorded against the account.
func TestAuditRecoveryAndExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, withClock(clock))
	alice := e.register(uniqueName("alice"), 2, 2)
	e.link(alice, 501)
	cred := randBytes(RecoveryCredentialLen)
	if r := e.do("PUT", "/v1/accounts/me/recovery", &alice, map[string]any{"credential": cred}); r.status != 204 {
		t.Fatalf("set recovery: %d %s", r.status, r.body)
	}
	body := func(c []byte) map[string]any {
		b := keysBody(2, 2)
		b["credential"] = c
		b["registration_id"] = 999
		return b
	}
	if r := e.do("POST", "/v1/accounts/"+alice.account+"/recover", nil, body(randBytes(RecoveryCredentialLen))); r.status != 401 {
		t.Fatalf("wrong credential: %d", r.status)
	}
	r := e.do("POST", "/v1/accounts/"+alice.account+"/recover", nil, body(cred))
	if r.status != 201 {
		t.Fatalf("recover: %d %s", r.status, r.body)
	}
	m := r.json(t)
	rec := dev{account: alice.account, id: uint32(m["device_id"].(float64)), cred: m["credential"].(string)}
	linked := e.link(rec, 502)

	mu.Lock()
	now = now.Add(40 * 24 * time.Hour)
	mu.Unlock()
	if r := e.do("GET", "/v1/devices", &rec, nil); r.status != 200 { // the recovered device is seen
		t.Fatalf("devices: %d", r.status)
	}
	e.srv.sweepOnce()
	p := e.myAudit(rec, "")
	want := []string{audit.AccountCreated, audit.DeviceLinked, audit.RecoveryRefused, audit.AccountRecovered, audit.DeviceLinked, audit.DeviceRemoved}
	if !slices.Equal(types(p), want) {
		t.Fatalf("audit = %v, want %v", types(p), want)
	}
	if x := p.Entries[3]; x.Device != rec.id || x.Details["devices_removed"] != "2" {
		t.Fatalf("recovered entry: %+v", x)
	}
	if x := p.Entries[5]; x.Device != linked.id || x.Details["reason"] != "expired" {
		t.Fatalf("expired entry: %+v", x)
	}
	rep, err := audit.Verify(t.Context(), e.st.(store.AuditLog), e.srv.AuditKey())
	if err != nil || !rep.OK || rep.Unprotected != 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}
