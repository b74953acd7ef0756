package server

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Each fuzz target feeds raw bytes to a request decoder: it must never
// panic, and whatever it accepts must survive a re-encode/decode round
// trip unchanged (one meaning per accepted input).

func roundTrip[T any](t *testing.T, v T, parse func([]byte) (T, *apiError)) {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	again, e := parse(b)
	if e != nil {
		t.Fatalf("re-encoded value rejected: %v (%s)", e, b)
	}
	if !reflect.DeepEqual(v, again) {
		t.Fatalf("round trip changed the value:\n%#v\n%#v", v, again)
	}
}

func FuzzParseRegister(f *testing.F) {
	f.Add([]byte(`{"username":"alice","identity_key":"BQ==","registration_id":1,"signed_prekey":{"key_id":1,"public_key":"AA==","signature":"AA=="},"last_resort_kem_prekey":{"key_id":2,"public_key":"AA==","signature":"AA=="},"one_time_prekeys":[{"key_id":3,"public_key":"AQ=="}]}`))
	f.Add([]byte(`{"username":"a"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, _, e := parseRegister(in)
		if e != nil {
			return
		}
		roundTrip(t, req, func(b []byte) (registerRequest, *apiError) { r, _, e := parseRegister(b); return r, e })
	})
}

func FuzzParseUpload(f *testing.F) {
	f.Add([]byte(`{"one_time_kem_prekeys":[{"key_id":3,"public_key":"AQ==","signature":"Ag=="}]}`))
	f.Add([]byte(`{"signed_prekey":{"key_id":1,"public_key":"AA==","signature":"AA=="}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, e := parseUpload(in); e != nil {
			return
		}
		var req uploadRequest
		if e := decodeStrict(in, &req); e != nil {
			t.Fatal("accepted then rejected")
		}
		roundTrip(t, req, func(b []byte) (uploadRequest, *apiError) {
			var r uploadRequest
			if _, e := parseUpload(b); e != nil {
				return r, e
			}
			return r, decodeStrict(b, &r)
		})
	})
}

func FuzzParseSend(f *testing.F) {
	f.Add([]byte(`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[{"device_id":1,"registration_id":7,"type":1,"content":"AA=="}]}`))
	f.Add([]byte(`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","sealed":true,"envelopes":[{"device_id":2,"registration_id":7,"type":3,"content":"AAE="},{"device_id":3,"registration_id":1,"type":1,"content":"/w=="}]}`))
	f.Add([]byte(`{"envelopes":[],"message_id":"","sealed":false}`))
	f.Add([]byte(`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[{"device_id":4294967295,"registration_id":0,"type":255,"content":""}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		// The hand-written decoder accepts a subset of what the JSON
		// decoder does, with the same result.
		if fast, ok := decodeSendFast(in); ok {
			var slow sendRequest
			if e := decodeStrict(in, &slow); e != nil {
				t.Fatalf("fast path accepted what the decoder refuses (%s): %q", e.message, in)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("fast path %+v, decoder %+v", fast, slow)
			}
		}
		req, envs, e := parseSend(in, 6)
		if e != nil {
			return
		}
		if len(envs) != len(req.Envelopes) {
			t.Fatal("envelope count changed")
		}
		roundTrip(t, req, func(b []byte) (sendRequest, *apiError) { r, _, e := parseSend(b, 6); return r, e })
	})
}

func FuzzParseAck(f *testing.F) {
	f.Add([]byte(`{"seqs":[1,2,3]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		seqs, e := parseAck(in)
		if e != nil {
			return
		}
		for _, s := range seqs {
			if s < 1 {
				t.Fatal("non-positive seq accepted")
			}
		}
	})
}

func FuzzClientFrame(f *testing.F) {
	f.Add([]byte(`{"type":"ack","seq":1}`))
	f.Add([]byte(`{"type":"ack","seq":0}`))
	f.Add([]byte(`{"type":"ack","seq":01}`))
	f.Add([]byte(`{"type":"ack","seq":1234567890123456789}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		seq, err := parseClientFrame(in)
		if err == nil && seq < 1 {
			t.Fatal("non-positive seq accepted")
		}
		// The hand-parsed fast path must agree with the JSON decoder.
		jseq, jerr := parseClientFrameJSON(in)
		if (err == nil) != (jerr == nil) || seq != jseq {
			t.Fatalf("fast path %d, %v; decoder %d, %v", seq, err, jseq, jerr)
		}
	})
}

func FuzzPathIDs(f *testing.F) {
	f.Add("0a1b2c3d-0000-4000-8000-00000000000f", "12")
	f.Fuzz(func(t *testing.T, acc, devs string) {
		if id, ok := parseAccountID(acc); ok && id.String() != acc {
			t.Fatalf("non-canonical account id accepted: %q", acc)
		}
		if d, ok := parseDeviceID(devs); ok && (d == 0 || devs != itoa(d)) {
			t.Fatalf("non-canonical device id accepted: %q", devs)
		}
	})
}

func itoa(d uint32) string { b, _ := json.Marshal(d); return string(b) }

// FuzzB64 checks the in-place base64 path of b64.UnmarshalJSON agrees
// with decoding through encoding/json's string decoder, on JSON strings
// as the decoder hands them over (escaped or raw).
func FuzzB64(f *testing.F) {
	f.Add("AAEC")
	f.Add("AAE=")
	f.Add("AAF=") // non-zero padding bits
	f.Add("AA\nEC")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		escaped, err := json.Marshal(text)
		if err != nil {
			t.Skip()
		}
		for _, data := range [][]byte{escaped, []byte(`"` + text + `"`)} {
			if !json.Valid(data) {
				continue
			}
			var fast, slow b64
			ferr, serr := fast.UnmarshalJSON(data), slow.unmarshalJSONSlow(data)
			if (ferr == nil) != (serr == nil) || !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%s: fast %x, %v; slow %x, %v", data, fast, ferr, slow, serr)
			}
		}
	})
}

func FuzzParseLinking(f *testing.F) {
	f.Add([]byte(`{"link_token":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","registration_id":7,"signed_prekey":{"key_id":1,"public_key":"AA==","signature":"AA=="},"last_resort_kem_prekey":{"key_id":2,"public_key":"AA==","signature":"AA=="}}`))
	f.Add([]byte(`{"message":"AAEC"}`))
	f.Add([]byte(`{"name":"AAEC"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if req, _, e := parseLinkWithToken(in); e == nil {
			roundTrip(t, req, func(b []byte) (linkWithTokenRequest, *apiError) { r, _, e := parseLinkWithToken(b); return r, e })
		}
		// Empty fields are refused by the handlers (nil and empty decode
		// alike there), so only non-empty values must round-trip.
		var p provisioningJSON
		if decodeStrict(in, &p) == nil && len(p.Message) > 0 {
			roundTrip(t, p, func(b []byte) (provisioningJSON, *apiError) { var r provisioningJSON; return r, decodeStrict(b, &r) })
		}
		var n deviceNameJSON
		if decodeStrict(in, &n) == nil && len(n.Name) > 0 {
			roundTrip(t, n, func(b []byte) (deviceNameJSON, *apiError) { var r deviceNameJSON; return r, decodeStrict(b, &r) })
		}
	})
}

// FuzzParseMulti: the sealed sender v2 send decoder (JSON around
// libsignal's multi-recipient format) never panics, and what it accepts
// addresses at least one device, each recipient once, with access keys
// only for addressed accounts.
func FuzzParseMulti(f *testing.F) {
	f.Add([]byte(`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","message":"Ig==","access_keys":{}}`))
	f.Add([]byte(`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","message":"` + sealedV2Seed + `"}`))
	f.Add([]byte(`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","message":"` + sealedV2Seed + `","access_keys":{"9d0652a3-dcc3-4d11-975f-74d61598733f":"AAAAAAAAAAAAAAAAAAAAAA=="}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, e := parseMulti(in, 6)
		if e != nil {
			if e.status >= 500 {
				t.Fatalf("a client's bytes made a %d", e.status)
			}
			return
		}
		if len(p.rcpts) == 0 {
			t.Fatal("accepted a send to nobody")
		}
		seen := map[[16]byte]bool{}
		for _, rc := range p.rcpts {
			if seen[rc.account] || len(rc.envs) == 0 || len(rc.envs) > 6 {
				t.Fatalf("recipient %v: %d envelopes, seen %v", rc.account, len(rc.envs), seen[rc.account])
			}
			seen[rc.account] = true
		}
		for acc := range p.keys {
			if !seen[acc] {
				t.Fatal("an access key for an account the message does not address")
			}
		}
	})
}

func FuzzParseActivate(f *testing.F) {
	key := `"BQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`
	f.Add([]byte(`{"admin":"ada","signed_at":1800000000,"signature":"AA==","identity_key":` + key + `,"credential_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","registration_id":7,"signed_prekey":{"key_id":1,"public_key":"AA==","signature":"AA=="},"last_resort_kem_prekey":{"key_id":2,"public_key":"AA==","signature":"AA=="}}`))
	f.Add([]byte(`{"admin":"Not Valid"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, _, e := parseActivate(in)
		if e != nil {
			return
		}
		if len(req.IdentityKey) != 33 || len(req.CredentialHash) != 32 || req.RegistrationID == 0 {
			t.Fatalf("accepted an activation without a valid key or registration id: %s", in)
		}
		roundTrip(t, req, func(b []byte) (activateRequest, *apiError) { r, _, e := parseActivate(b); return r, e })
	})
}
