package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// TestEnvelopeFrame checks the hand-written frame encoder produces the
// bytes encoding/json produces for the same frame.
func TestEnvelopeFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bytesN := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var sender store.AccountID
	copy(sender[:], bytesN(16))
	envs := []store.Envelope{
		{Seq: 1, Type: 0, Content: nil, ReceivedAt: time.Unix(0, 0)},
		{Seq: 1<<63 - 1, Type: 255, Content: []byte{}, ReceivedAt: time.Unix(1_700_000_040, 0)},
		{Seq: 42, Type: 3, Content: bytesN(1024), ReceivedAt: time.Unix(1_800_000_000, 0), Sender: sender, SenderDevice: 7},
		{Seq: 43, Type: 1, Content: bytesN(1), ReceivedAt: time.Unix(1_800_000_000, 0), Sender: sender}, // device 0: omitted
		{Seq: 44, Type: 6, Content: bytesN(2), SenderDevice: 9, ReceivedAt: time.Unix(-60, 0)},          // no sender: device omitted
	}
	for i := range 200 {
		e := store.Envelope{Seq: rng.Int64(), Type: uint8(rng.Uint32()), Content: bytesN(rng.IntN(300)),
			ReceivedAt: time.Unix(rng.Int64N(1<<40)-1<<39, 0), SenderDevice: rng.Uint32()}
		copy(e.MessageID[:], bytesN(16))
		if i%2 == 0 {
			copy(e.Sender[:], bytesN(16))
		}
		envs = append(envs, e)
	}
	for _, e := range envs {
		// Independent of b64.MarshalJSON: base64 text as a plain string.
		type envText struct {
			Seq          int64  `json:"seq"`
			MessageID    string `json:"message_id"`
			Type         uint8  `json:"type"`
			Sender       string `json:"sender,omitempty"`
			SenderDevice uint32 `json:"sender_device,omitempty"`
			Content      string `json:"content"`
			ReceivedAt   int64  `json:"received_at"`
		}
		j := toEnvelopeJSON(e)
		want, err := json.Marshal(struct {
			Type     string  `json:"type"`
			Envelope envText `json:"envelope"`
		}{"envelope", envText{j.Seq, base64.StdEncoding.EncodeToString(j.MessageID), j.Type, j.Sender, j.SenderDevice,
			base64.StdEncoding.EncodeToString(j.Content), j.ReceivedAt}})
		if err != nil {
			t.Fatal(err)
		}
		if viaJSON, _ := json.Marshal(wsFrame{Type: "envelope", Envelope: &j}); !bytes.Equal(viaJSON, want) {
			t.Fatalf("envelopeJSON encodes as\n%s\nwant\n%s", viaJSON, want)
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEnvelopeFrame([]byte("junk"), &e); !bytes.Equal(got[4:], want) || string(got[:4]) != "junk" {
			t.Fatalf("frame differs from encoding/json:\n got %s\nwant junk%s", got, want)
		}
	}
	want, _ := json.Marshal(wsFrame{Type: "queue_empty"})
	if !bytes.Equal(queueEmptyFrame, want) {
		t.Fatalf("queue_empty frame %s, want %s", queueEmptyFrame, want)
	}
}

// TestCanonicalAck checks the hand parser on the inputs where it and
// the JSON decoder could disagree.
func TestCanonicalAck(t *testing.T) {
	for in, want := range map[string]int64{
		`{"type":"ack","seq":1}`:                   1,
		`{"type":"ack","seq":999999999999999999}`:  999999999999999999,
		`{"type":"ack","seq":9223372036854775807}`: 9223372036854775807, // decoder path
		`{"type":"ack","seq": 5}`:                  5,                   // decoder path
		`{"seq":5,"type":"ack"}`:                   5,                   // decoder path
		`{"type":"ack","seq":0}`:                   -1,
		`{"type":"ack","seq":01}`:                  -1,
		`{"type":"ack","seq":9223372036854775808}`: -1,
		`{"type":"ack","seq":-1}`:                  -1,
		`{"type":"ack","seq":1.0}`:                 -1,
		`{"type":"ack","seq":}`:                    -1,
		`{"type":"ack","seq":1}}`:                  -1,
		`{"type":"ack","seq":1} `:                  1, // decoder path: trailing space is valid JSON
	} {
		got, err := parseClientFrame([]byte(in))
		if want < 0 {
			if err == nil {
				t.Errorf("%s: accepted as %d", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", in, got, err, want)
		}
	}
}
