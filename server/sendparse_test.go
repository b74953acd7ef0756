package server

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestSendFastPathTakesEncoderOutput: what a JSON encoder writes for a
// send (the SDK's request, with and without "sealed", several devices,
// big and empty contents) takes the hand-written path, with the JSON
// decoder's result; whitespace or an escape sends it to the decoder.
func TestSendFastPathTakesEncoderOutput(t *testing.T) {
	type env struct {
		DeviceID       uint32 `json:"device_id"`
		RegistrationID uint32 `json:"registration_id"`
		Type           uint8  `json:"type"`
		Content        []byte `json:"content"`
	}
	mid := make([]byte, 16)
	big := make([]byte, 96<<10)
	for i := range big {
		big[i] = byte(i)
	}
	for _, v := range []any{
		struct {
			MessageID []byte `json:"message_id"`
			Envelopes []env  `json:"envelopes"`
		}{mid, []env{{1, 7, 1, []byte("hello")}}},
		struct {
			MessageID []byte `json:"message_id"`
			Sealed    bool   `json:"sealed"`
			Envelopes []env  `json:"envelopes"`
		}{mid, true, []env{{1, 4294967295, 255, big}, {2, 0, 0, []byte{}}, {3, 1, 6, []byte{7}}}},
		struct {
			Envelopes []env  `json:"envelopes"`
			Sealed    bool   `json:"sealed"`
			MessageID []byte `json:"message_id"`
		}{[]env{{9, 9, 1, []byte{0}}}, false, mid},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := decodeSendFast(b)
		if !ok {
			t.Fatalf("encoder output left to the decoder: %.120s", b)
		}
		var slow sendRequest
		if e := decodeStrict(b, &slow); e != nil || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast %+v, decoder %+v (%v)", fast, slow, e)
		}
	}
	// A null content is the decoder's to judge too.
	for _, b := range []string{
		`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[{"device_id":1,"content":null}]}`,
		`{ "message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[]}`,
		`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA\u003d\u003d","envelopes":[]}`,
		`{"MESSAGE_ID":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[]}`,
		`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[]}`,
		`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[{"device_id":1e0}]}`,
		`{"message_id":"AAAAAAAAAAAAAAAAAAAAAA==","envelopes":[]}` + "\n",
	} {
		if _, ok := decodeSendFast([]byte(b)); ok {
			t.Errorf("fast path took %q", b)
		}
	}
}
