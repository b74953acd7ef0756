package server

import (
	"strings"
	"testing"
)

// TestObservability: clients' decryption-failure reports become counts by
// cause (unknown causes refused), and the sweeper's runs and the audit
// chain's length are exported; no label names an account.
func TestObservability(t *testing.T) {
	e := newEnv(t)
	alice := e.register(uniqueName("alice"), 1, 1)
	if r := e.do("POST", "/v1/reports/decrypt-failures", &alice, map[string]any{"counts": map[string]int{"bad_mac": 2, "no_sender_key": 1}}); r.status != 204 {
		t.Fatalf("report: %d %s", r.status, r.body)
	}
	for _, bad := range []map[string]any{{"counts": map[string]int{"my_own_cause": 1}}, {"counts": map[string]int{"bad_mac": -1}}, {"counts": map[string]int{}}} {
		if r := e.do("POST", "/v1/reports/decrypt-failures", &alice, bad); r.status != 400 {
			t.Fatalf("bad report %v: %d", bad, r.status)
		}
	}
	if r := e.do("POST", "/v1/reports/decrypt-failures", nil, map[string]any{"counts": map[string]int{"bad_mac": 1}}); r.status != 401 {
		t.Fatalf("anonymous report: %d", r.status)
	}
	e.srv.sweepOnce()
	m := string(e.do("GET", "/metrics", nil, nil).body)
	for _, want := range []string{`veil_client_decrypt_failures_total{cause="bad_mac"} 2`, `veil_client_decrypt_failures_total{cause="no_sender_key"} 1`,
		`veil_client_decrypt_failures_total{cause="no_session"} 0`, "veil_sweeper_runs_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(m, "veil_audit_chain_length 0\n") || !strings.Contains(m, "veil_audit_chain_length ") {
		t.Error("the audit chain length is not exported (registration wrote an entry)")
	}
	if strings.Contains(m, alice.account) {
		t.Error("a metric names an account")
	}
}
