package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/veil-e2ee/veil/protocol"
	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// flight is one message on the simulated network.
type flight struct {
	from, to  int
	ct        protocol.CiphertextMessage
	pt        string
	ratchet   string // the sender's ratchet key (identifies its chain)
	delivered bool   // decrypted by the recipient
	lost      bool   // dropped by the network, or undecryptable by design
}

// party is one side of the property test plus the model of what it has
// seen: the order in which it first met each peer ratchet key (libsignal
// keeps only the last 5 receiving chains).
type party struct {
	dev      *device
	canSend  bool
	seenKeys []string
}

func ratchetKeyOf(t *rapid.T, ct protocol.CiphertextMessage) string {
	body := ct.Body
	if ct.Type == protocol.PreKeyMessageType {
		m, err := wire.ParsePreKeySignalMessage(body)
		if err != nil {
			t.Fatalf("our own PreKey message does not parse: %v", err)
		}
		body = m.Message
	}
	m, _, err := wire.ParseSignalMessage(body)
	if err != nil {
		t.Fatalf("our own message does not parse: %v", err)
	}
	return string(m.RatchetKey)
}

// TestPropertyTwoParties runs random sequences of send / deliver (in any
// order) / drop / duplicate / serialize-and-reload between two Go parties
// and checks that every delivered message decrypts exactly once to what
// was sent, replays are rejected without changing state, and the session
// never wedges.
func TestPropertyTwoParties(t *testing.T) {
	// Longer runs than rapid's default of 30 steps, so sequences cross
	// many DH ratchet steps, unless the caller chose (-rapid.steps).
	if f := flag.Lookup("rapid.steps"); f != nil && f.Value.String() == "30" {
		f.Value.Set("150")
		defer f.Value.Set("30")
	}
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		a, b := newDevice(t, "alice"), newDevice(t, "bob")
		if err := a.cipher.ProcessPreKeyBundle(ctx, b.addr, b.bundle(t, rapid.Bool().Draw(t, "otk"))); err != nil {
			t.Fatal(err)
		}
		parties := []*party{{dev: a, canSend: true}, {dev: b}}
		var net []*flight
		sent := 0

		pending := func() []*flight {
			var out []*flight
			for _, f := range net {
				if !f.delivered && !f.lost {
					out = append(out, f)
				}
			}
			return out
		}
		delivered := func() []*flight {
			var out []*flight
			for _, f := range net {
				if f.delivered {
					out = append(out, f)
				}
			}
			return out
		}
		// evicted reports whether the receiver has already dropped the
		// chain this message belongs to (more than 5 newer chains seen).
		evicted := func(f *flight) bool {
			seen := parties[f.to].seenKeys
			for i, k := range seen {
				if k == f.ratchet {
					return len(seen)-i > 5
				}
			}
			return false
		}
		deliver := func(t *rapid.T, f *flight) {
			to, from := parties[f.to], parties[f.from]
			expectEvicted := evicted(f)
			pt, err := to.dev.cipher.Decrypt(ctx, from.dev.addr, f.ct)
			if expectEvicted {
				if !errors.Is(err, protocol.ErrDecryption) {
					t.Fatalf("message on an evicted chain: %v", err)
				}
				f.lost = true // lost by design; never retried
				return
			}
			if err != nil {
				t.Fatalf("deliver %q %d→%d: %v", f.pt, f.from, f.to, err)
			}
			if string(pt) != f.pt {
				t.Fatalf("decrypted %q, want %q", pt, f.pt)
			}
			f.delivered = true
			to.canSend = true
			found := false
			for _, k := range to.seenKeys {
				found = found || k == f.ratchet
			}
			if !found {
				to.seenKeys = append(to.seenKeys, f.ratchet)
			}
		}

		actions := map[string]func(*rapid.T){
			"send": func(t *rapid.T) {
				from := rapid.IntRange(0, 1).Draw(t, "from")
				p := parties[from]
				if !p.canSend {
					t.Skip("no session yet")
				}
				to := 1 - from
				msg := fmt.Sprintf("m%d-%s", sent, rapid.StringN(0, 40, -1).Draw(t, "text"))
				sent++
				ct, err := p.dev.cipher.Encrypt(ctx, parties[to].dev.addr, []byte(msg))
				if err != nil {
					t.Fatalf("encrypt: %v", err)
				}
				net = append(net, &flight{from: from, to: to, ct: ct, pt: msg, ratchet: ratchetKeyOf(t, ct)})
			},
			"deliver": func(t *rapid.T) {
				ps := pending()
				if len(ps) == 0 {
					t.Skip("nothing in flight")
				}
				deliver(t, ps[rapid.IntRange(0, len(ps)-1).Draw(t, "msg")])
			},
			"drop": func(t *rapid.T) {
				ps := pending()
				if len(ps) == 0 {
					t.Skip("nothing in flight")
				}
				ps[rapid.IntRange(0, len(ps)-1).Draw(t, "msg")].lost = true
			},
			"duplicate": func(t *rapid.T) {
				ds := delivered()
				if len(ds) == 0 {
					t.Skip("nothing delivered")
				}
				f := ds[rapid.IntRange(0, len(ds)-1).Draw(t, "msg")]
				to, from := parties[f.to], parties[f.from]
				before, _ := to.dev.store.LoadSession(ctx, from.dev.addr)
				pt, err := to.dev.cipher.Decrypt(ctx, from.dev.addr, f.ct)
				if err == nil {
					t.Fatalf("a replay decrypted again: %q", pt)
				}
				if !errors.Is(err, protocol.ErrDuplicateMessage) && !errors.Is(err, protocol.ErrDecryption) {
					t.Fatalf("replay: unexpected error %v", err)
				}
				after, _ := to.dev.store.LoadSession(ctx, from.dev.addr)
				if before != nil && !bytes.Equal(before.Marshal(), after.Marshal()) {
					t.Fatal("a rejected replay changed the session")
				}
			},
			"reload": func(t *rapid.T) {
				p := parties[rapid.IntRange(0, 1).Draw(t, "who")]
				peer := parties[0]
				if p == parties[0] {
					peer = parties[1]
				}
				rec, _ := p.dev.store.LoadSession(ctx, peer.dev.addr)
				if rec == nil {
					t.Skip("no session")
				}
				rec2, err := protocol.ParseSessionRecord(rec.Marshal())
				if err != nil {
					t.Fatalf("record does not reload: %v", err)
				}
				p.dev.store.StoreSession(ctx, peer.dev.addr, rec2)
			},
		}
		// Weight the common operations: send and deliver three times as
		// often as loss, replay and restart.
		actions["send2"], actions["send3"] = actions["send"], actions["send"]
		actions["deliver2"], actions["deliver3"] = actions["deliver"], actions["deliver"]
		t.Repeat(actions)

		// Never wedged: deliver what is still in flight, then each side
		// can still reach the other.
		for _, f := range pending() {
			deliver(t, f)
		}
		for round := 0; round < 2; round++ {
			for from := 0; from < 2; from++ {
				p, q := parties[from], parties[1-from]
				if !p.canSend {
					continue
				}
				msg := fmt.Sprintf("final-%d-%d", round, from)
				ct, err := p.dev.cipher.Encrypt(ctx, q.dev.addr, []byte(msg))
				if err != nil {
					t.Fatalf("final encrypt: %v", err)
				}
				f := &flight{from: from, to: 1 - from, ct: ct, pt: msg, ratchet: ratchetKeyOf(t, ct)}
				deliver(t, f)
			}
		}
	})
}
