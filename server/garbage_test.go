package server

import (
	"encoding/json"
	"strings"
	"testing"
)

var garbageBodies = []string{
	"", "null", "[]", "{", "}", `"x"`, "0", "{}", `{"a":1}`, "\x00\xff\xfe", strings.Repeat("[", 10000),
	`{"username":1}`, `{"registration_id":-1}`, `{"registration_id":99999999999999999999}`,
	`{"identity_key":"not base64!"}`, `{"identity_key":"YQ="}`, `{"identity_key":"YQ==\n"}`, `{"identity_key":"YR=="}`,
	`{"message_id":"AAAA","envelopes":[]}`, `{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[{"device_id":0,"content":"AA=="}]}`,
	`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[{"device_id":1,"type":256,"content":"AA=="}]}`,
	`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[{"device_id":1,"content":""}]}`,
	`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[{"device_id":1,"content":"AA=="},{"device_id":1,"content":"AA=="}]}`,
	`{"seqs":[]}`, `{"seqs":[0]}`, `{"seqs":["1"]}`, `{"seqs":[1.5]}`,
	`{"signed_prekey":{"key_id":1,"public_key":"","signature":"AA=="}}`,
	`{"one_time_prekeys":[{"key_id":1,"public_key":"AA=="},{"key_id":1,"public_key":"AA=="}]}`,
	`{"username":"ok_name","identity_key":"AA==","registration_id":1,"signed_prekey":null}`,
	`{} {}`, `{"seqs":[1]} trailing`,
}

// TestGarbage throws malformed input at every endpoint, authenticated and
// not: never a 5xx, always a JSON error body with a snake_case code.
func TestGarbage(t *testing.T) {
	e := newEnv(t)
	me := e.register(uniqueName("me"), 2, 2)
	paths := func(p string) []string {
		out := []string{samplePath(p, me.account)}
		if strings.Contains(p, "{") {
			for _, bad := range []string{"%00", "..", "x", "-1", "00000000-0000-0000-0000-00000000000G", "00000000-0000-4000-8000-00000000000A",
				strings.Repeat("a", 5000), "%E2%80%AE", "1e3", "+1", "0", "4294967296", "0x10"} {
				out = append(out, strings.NewReplacer("{username}", bad, "{account}", bad, "{device}", bad).Replace(p))
			}
		}
		return out
	}
	ctypes := []string{"application/json", "text/plain", "application/json; charset=latin1", "", "application/json; charset=utf-8"}
	for _, rt := range e.srv.routes {
		if rt.name == "websocket" {
			continue
		}
		for _, p := range paths(rt.path) {
			for _, d := range []*dev{nil, &me} {
				for _, m := range []string{rt.method, "PATCH", "OPTIONS"} {
					for i, b := range garbageBodies {
						ct := ctypes[i%len(ctypes)]
						h := map[string]string{}
						if ct != "" {
							h["Content-Type"] = ct
						}
						if d != nil {
							h["Authorization"] = d.auth()
						}
						r := doReqWith(t, e.url, m, p, h, []byte(b))
						checkErrorAnswer(t, m+" "+p, r)
					}
				}
			}
		}
	}
	// Query garbage on fetch.
	for _, q := range []string{"?after=-1", "?after=x", "?limit=0", "?limit=1001", "?limit=", "?foo=1", "?after=99999999999999999999"} {
		checkErrorAnswer(t, "fetch"+q, e.do("GET", "/v1/queue"+q, &me, nil))
	}
	// Unknown paths.
	for _, p := range []string{"/", "/v1", "/v1/", "/v2/accounts", "/v1/accounts/", "/v1/queue/ack/x", "/.env"} {
		r := e.do("GET", p, nil, nil)
		if r.status != 404 && r.status != 405 {
			t.Errorf("%s: %d", p, r.status)
		}
		checkErrorAnswer(t, p, r)
	}
}

func checkErrorAnswer(t *testing.T, what string, r resp) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("%s: %d %s", what, r.status, r.body)
	}
	if r.status < 400 {
		return
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("%s: %d non-JSON error body %q", what, r.status, r.body)
	}
	for _, c := range body.Error.Code {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			t.Fatalf("%s: code %q is not snake_case", what, body.Error.Code)
		}
	}
}
