package loadgen

import (
	"encoding/binary"
	"encoding/json"
	"testing"
)

// TestParseEnvelopeFrame checks the hand parser against the JSON decoder
// on frames as the server encodes them (with and without a sender), and
// that other frames are passed over.
func TestParseEnvelopeFrame(t *testing.T) {
	content := make([]byte, ContentSize)
	binary.BigEndian.PutUint64(content, 1234567890123456789)
	type env struct {
		Seq          int64  `json:"seq"`
		MessageID    []byte `json:"message_id"`
		Type         uint8  `json:"type"`
		Sender       string `json:"sender,omitempty"`
		SenderDevice uint32 `json:"sender_device,omitempty"`
		Content      []byte `json:"content"`
		ReceivedAt   int64  `json:"received_at"`
	}
	for _, e := range []env{
		{Seq: 42, MessageID: make([]byte, 16), Type: 1, Sender: "5f0c8a9e-7d1b-4c2a-9e3f-0a1b2c3d4e5f", SenderDevice: 2, Content: content, ReceivedAt: 1764000000},
		{Seq: 7, MessageID: make([]byte, 16), Type: 3, Content: content, ReceivedAt: 1764000000},
		{Seq: 9, MessageID: make([]byte, 16), Type: 3, Content: []byte{1, 2}, ReceivedAt: 1764000000},
	} {
		b, err := json.Marshal(struct {
			Type     string `json:"type"`
			Envelope env    `json:"envelope"`
		}{"envelope", e})
		if err != nil {
			t.Fatal(err)
		}
		seq, stamp, ok := parseEnvelopeFrame(b)
		var want int64
		if len(e.Content) >= 8 {
			want = int64(binary.BigEndian.Uint64(e.Content))
		}
		if !ok || seq != e.Seq || stamp != want {
			t.Errorf("%s: got %d %d %v, want %d %d", b[:80], seq, stamp, ok, e.Seq, want)
		}
	}
	for _, f := range []string{`{"type":"queue_empty"}`, `not json`, `{"type":"envelope","envelope":{"seq":x,"content":"AAAAAAAAAAAAAAAA"}}`} {
		if _, _, ok := parseEnvelopeFrame([]byte(f)); ok {
			t.Errorf("%s: parsed as an envelope", f)
		}
	}
}
