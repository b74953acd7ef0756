package loadgen

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// TestPut checks the lean send connection against a real HTTP server:
// the request arrives as net/http would send it, responses (plain,
// chunked, with Connection: close) are read whole, and connections are
// reused unless the server closes them.
func TestPut(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != "PUT" || r.URL.Path != "/v1/messages/x" || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("Authorization") == "" || string(b) != `{"a":1}` {
			http.Error(w, "bad request", 400)
			return
		}
		switch r.Header.Get("Authorization") {
		case (Device{Account: "chunked", Credential: "c"}).auth():
			w.WriteHeader(201)
			w.(http.Flusher).Flush()
			w.Write(bytes.Repeat([]byte("x"), 5000))
		case (Device{Account: "close", Credential: "c"}).auth():
			w.Header().Set("Connection", "close")
			w.Write([]byte(`{"closed":true}`))
		default:
			w.Write([]byte(`{"duplicate":false}`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := NewClient(srv.URL, 4)
	for i, tc := range []struct {
		dev  Device
		code int
		body string
	}{
		{Device{Account: "a", Credential: "c"}, 200, `{"duplicate":false}`},
		{Device{Account: "a", Credential: "c"}, 200, `{"duplicate":false}`},
		{Device{Account: "chunked", Credential: "c"}, 201, strings.Repeat("x", 5000)},
		{Device{Account: "close", Credential: "c"}, 200, `{"closed":true}`},
		{Device{Account: "a", Credential: "c"}, 200, `{"duplicate":false}`},
	} {
		code, body, err := c.put(t.Context(), "/v1/messages/x", &tc.dev, []byte(`{"a":1}`))
		if err != nil || code != tc.code || string(body) != tc.body {
			t.Fatalf("request %d: %d %.40q %v; want %d %.40q", i, code, body, err, tc.code, tc.body)
		}
	}
	// One connection until the server closed it, then a second one.
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}
