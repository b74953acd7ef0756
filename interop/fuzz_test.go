package interop

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeResponse checks that any line from the peer is either a result
// for the right id, a *PeerError, or ErrProtocol — never a panic, and never a
// result accepted for another request.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"id":7,"result":{"valid":true}}`+"\n"), uint64(7))
	f.Add([]byte(`{"id":7,"error":"message with old counter 2 / 1","code":"DuplicatedMessage"}`), uint64(7))
	f.Add([]byte(`{"id":8,"result":{}}`), uint64(7))
	f.Add([]byte(`{"id":null,"error":"bad JSON","code":"BadRequest"}`), uint64(0))
	f.Add([]byte(`{"id":7}`), uint64(7))
	f.Add([]byte(`{"id":7,"result":{}} {}`), uint64(7))
	f.Fuzz(func(t *testing.T, line []byte, id uint64) {
		res, err := decodeResponse(line, id, "fuzz")
		var pe *PeerError
		switch {
		case err == nil:
			if len(res) == 0 || string(res) == "null" {
				t.Fatalf("accepted an empty result from %q", line)
			}
			var r struct{ ID uint64 }
			if json.Unmarshal(line, &r) != nil || r.ID != id {
				t.Fatalf("accepted %q for id %d", line, id)
			}
		case errors.As(err, &pe):
			if !errors.Is(err, ErrPeer) || pe.Code == "" {
				t.Fatalf("peer error %#v lacks a code or does not match ErrPeer", pe)
			}
		case !errors.Is(err, ErrProtocol):
			t.Fatalf("error %v is neither a PeerError nor ErrProtocol", err)
		}
	})
}

// FuzzBundleJSON checks that a bundle that decodes re-encodes to a form that
// decodes to the same bundle, and that preKeyId never travels without preKey.
func FuzzBundleJSON(f *testing.F) {
	f.Add([]byte(`{"registrationId":1,"deviceId":1,"identityKey":"BQ==","preKeyId":0,"preKey":"BQ==","signedPreKeyId":2,"signedPreKey":"BQ==","signedPreKeySignature":"AA==","kyberPreKeyId":3,"kyberPreKey":"CA==","kyberPreKeySignature":"AA=="}`))
	f.Add([]byte(`{"registrationId":1,"deviceId":1,"identityKey":"BQ==","signedPreKeyId":2,"signedPreKey":"BQ==","signedPreKeySignature":"AA==","kyberPreKeyId":3,"kyberPreKey":"CA==","kyberPreKeySignature":"AA=="}`))
	f.Add([]byte(`{"preKeyId":5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Bundle
		if err := json.Unmarshal(data, &b); err != nil {
			return
		}
		out, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal %+v: %v", b, err)
		}
		var w map[string]json.RawMessage
		if err := json.Unmarshal(out, &w); err != nil {
			t.Fatal(err)
		}
		_, hasID := w["preKeyId"]
		_, hasKey := w["preKey"]
		if hasID != hasKey || hasKey != (len(b.PreKey) > 0) {
			t.Fatalf("%s: preKeyId and preKey must travel together", out)
		}
		var again Bundle
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		if !reflect.DeepEqual(normalize(b), normalize(again)) {
			t.Fatalf("round trip changed the bundle:\n%+v\n%+v", b, again)
		}
	})
}

// normalize maps empty byte slices to nil: JSON cannot tell them apart for
// the optional fields, and the peer treats them alike.
func normalize(b Bundle) Bundle {
	for _, f := range []*[]byte{&b.IdentityKey, &b.PreKey, &b.SignedPreKey, &b.SignedPreKeySignature, &b.KyberPreKey, &b.KyberPreKeySignature} {
		if len(*f) == 0 {
			*f = nil
		}
	}
	return b
}
