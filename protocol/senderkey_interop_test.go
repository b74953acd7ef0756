package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/veil-e2ee/veil/interop"
	"github.com/veil-e2ee/veil/protocol"
	"github.com/veil-e2ee/veil/protocol/internal/senderkey"
)

// Sender keys against libsignal 0.90.0 (interop/peer.mjs), both ways.

const (
	skNodeACI = "5b1e8f2a-3c4d-4e6f-8a9b-0c1d2e3f4a5b" // the libsignal sender / receiver
	skGoACI   = "c7d8e9f0-1a2b-4c3d-9e4f-5a6b7c8d9e0f" // the Go sender / receiver
)

// skCheckCanonical asserts that our strict decoders accept a libsignal
// sender-key message or distribution message and re-encode it byte for byte.
func skCheckCanonical(t *testing.T, b []byte, isDistribution bool) {
	t.Helper()
	if isDistribution {
		d, err := senderkey.ParseDistribution(b)
		if err != nil {
			t.Fatalf("our decoder rejects libsignal's SenderKeyDistributionMessage %x: %v", b, err)
		}
		if re := senderkey.AppendDistribution(nil, &d); !bytes.Equal(re, b) {
			t.Fatalf("SenderKeyDistributionMessage re-encodes differently:\n lib %x\n our %x", b, re)
		}
		return
	}
	m, signed, sig, err := senderkey.ParseMessage(b)
	if err != nil {
		t.Fatalf("our decoder rejects libsignal's SenderKeyMessage %x: %v", b, err)
	}
	re := senderkey.AppendMessage(nil, &m)
	if !bytes.Equal(re, signed) || len(re)+len(sig) != len(b) || senderkey.MessageSize(&m) != len(b) {
		t.Fatalf("SenderKeyMessage re-encodes differently:\n lib %x\n our %x", signed, re)
	}
}

// skPlaintexts are n plaintexts of assorted lengths (0, block boundaries, 1 KiB+).
func skPlaintexts(n int) [][]byte {
	sizes := []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 1024, 1500}
	out := make([][]byte, n)
	for i := range out {
		pt := fmt.Appendf(nil, "group message %d;", i)
		for len(pt) < sizes[i%len(sizes)] {
			pt = append(pt, byte('a'+i%26))
		}
		if sizes[i%len(sizes)] < len(pt) && i%len(sizes) < 3 {
			pt = pt[:sizes[i%len(sizes)]]
		}
		out[i] = pt
	}
	return out
}

func TestSenderKeysFromLibsignal(t *testing.T) {
	p := interop.Start(t)
	ctx := context.Background()
	if _, err := p.Create(skNodeACI, 0); err != nil {
		t.Fatal(err)
	}
	lib := interop.Address{Name: skNodeACI, DeviceID: 1}
	sender := protocol.Address{Name: skNodeACI, DeviceID: 1}
	id := newSKDistributionID(t)

	skdm, err := p.GroupDistribution(skNodeACI, lib, id.String())
	if err != nil {
		t.Fatal(err)
	}
	skCheckCanonical(t, skdm, true)
	goSide := newSKMember(skGoACI)
	if got, err := goSide.cipher.ProcessDistribution(ctx, sender, skdm); err != nil || got != id {
		t.Fatalf("ProcessDistribution(libsignal's message) = %s, %v; want %s", got, err, id)
	}

	const n = 300
	pts := skPlaintexts(n)
	msgs := make([][]byte, n)
	for i, pt := range pts {
		if msgs[i], err = p.GroupEncrypt(skNodeACI, lib, id.String(), pt); err != nil {
			t.Fatal(err)
		}
		skCheckCanonical(t, msgs[i], false)
		if got, err := protocol.DistributionIDOf(msgs[i]); err != nil || got != id {
			t.Fatalf("DistributionIDOf(libsignal's message) = %s, %v", got, err)
		}
	}

	// Deliver in runs: each run shuffled, some messages held back a run or
	// two, and one replay per run.
	rng := mrand.New(mrand.NewPCG(1, 2))
	var held []int
	decrypted := map[int]bool{}
	for start := 0; start < n || len(held) > 0; start += 30 {
		var batch []int
		for i := start; i < min(start+30, n); i++ {
			if rng.IntN(6) == 0 {
				held = append(held, i)
			} else {
				batch = append(batch, i)
			}
		}
		if start%60 == 0 || start >= n {
			batch, held = append(batch, held...), nil
		}
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		for _, i := range batch {
			pt, err := goSide.cipher.Decrypt(ctx, sender, msgs[i])
			if err != nil || !bytes.Equal(pt, pts[i]) {
				t.Fatalf("libsignal message %d: %q, %v", i, pt, err)
			}
			decrypted[i] = true
		}
		if len(batch) > 0 {
			replay := batch[rng.IntN(len(batch))]
			if _, err := goSide.cipher.Decrypt(ctx, sender, msgs[replay]); !errors.Is(err, protocol.ErrDuplicateMessage) {
				t.Fatalf("replayed libsignal message %d: err = %v, want ErrDuplicateMessage", replay, err)
			}
		}
	}
	if len(decrypted) != n {
		t.Fatalf("decrypted %d of %d messages", len(decrypted), n)
	}

	// A tampered libsignal message is refused and changes nothing.
	last, err := p.GroupEncrypt(skNodeACI, lib, id.String(), []byte("last"))
	if err != nil {
		t.Fatal(err)
	}
	before := goSide.record(t, sender, id)
	for _, i := range []int{len(last) - 1, len(last) - 40, len(last) - 70, 25} {
		bad := bytes.Clone(last)
		bad[i] ^= 0x04
		if _, err := goSide.cipher.Decrypt(ctx, sender, bad); !errors.Is(err, protocol.ErrDecryption) {
			t.Fatalf("tampered byte %d: err = %v, want ErrDecryption", i, err)
		}
	}
	if !bytes.Equal(before, goSide.record(t, sender, id)) {
		t.Fatal("tampered messages changed the record")
	}
	if pt, err := goSide.cipher.Decrypt(ctx, sender, last); err != nil || string(pt) != "last" {
		t.Fatalf("last message: %q, %v", pt, err)
	}

	// A member who joins late gets libsignal's distribution at its current
	// iteration and reads from there on.
	skdm2, err := p.GroupDistribution(skNodeACI, lib, id.String())
	if err != nil {
		t.Fatal(err)
	}
	skCheckCanonical(t, skdm2, true)
	if d, _ := senderkey.ParseDistribution(skdm2); d.Iteration != n+1 {
		t.Fatalf("libsignal's second distribution is at iteration %d, want %d", d.Iteration, n+1)
	}
	late := newSKMember("late")
	if _, err := late.cipher.ProcessDistribution(ctx, sender, skdm2); err != nil {
		t.Fatal(err)
	}
	next, err := p.GroupEncrypt(skNodeACI, lib, id.String(), []byte("next"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*skMember{goSide, late} {
		if pt, err := m.cipher.Decrypt(ctx, sender, next); err != nil || string(pt) != "next" {
			t.Fatalf("%s: %q, %v", m.addr.Name, pt, err)
		}
	}
	if _, err := late.cipher.Decrypt(ctx, sender, msgs[0]); !errors.Is(err, protocol.ErrDuplicateMessage) {
		t.Fatalf("late member, earlier message: err = %v", err)
	}
}

func TestSenderKeysToLibsignal(t *testing.T) {
	p := interop.Start(t)
	ctx := context.Background()
	if _, err := p.Create(skNodeACI, 0); err != nil {
		t.Fatal(err)
	}
	goSide := newSKMember(skGoACI)
	from := interop.Address{Name: skGoACI, DeviceID: 1}
	id := newSKDistributionID(t)

	skdm, err := goSide.cipher.NewDistribution(ctx, goSide.addr, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.GroupProcessDistribution(skNodeACI, from, skdm); err != nil || got != id.String() {
		t.Fatalf("libsignal processing our distribution: %q, %v; want %s", got, err, id)
	}

	const n = 300
	pts := skPlaintexts(n)
	msgs := make([][]byte, n)
	for i, pt := range pts {
		if msgs[i], err = goSide.cipher.Encrypt(ctx, goSide.addr, id, pt); err != nil {
			t.Fatal(err)
		}
	}
	rng := mrand.New(mrand.NewPCG(3, 4))
	order := rng.Perm(n)
	for k, i := range order {
		pt, err := p.GroupDecrypt(skNodeACI, from, msgs[i])
		if err != nil || !bytes.Equal(pt, pts[i]) {
			t.Fatalf("libsignal decrypting our message %d: %q, %v", i, pt, err)
		}
		if k%50 == 0 {
			if _, err := p.GroupDecrypt(skNodeACI, from, msgs[i]); !interop.HasCode(err, interop.CodeDuplicatedMessage) {
				t.Fatalf("libsignal, replay of our message %d: err = %v", i, err)
			}
		}
	}
	bad := bytes.Clone(msgs[0])
	bad[len(bad)-10] ^= 1
	if _, err := p.GroupDecrypt(skNodeACI, from, bad); !errors.Is(err, interop.ErrPeer) {
		t.Fatalf("libsignal accepted our message with a flipped signature bit: %v", err)
	}

	// Rotation: libsignal takes the new chain, still reads the old one's
	// late messages, and a device given only the old distribution cannot
	// read the new chain.
	late := [][]byte{}
	for _, pt := range []string{"in flight 1", "in flight 2"} {
		m, err := goSide.cipher.Encrypt(ctx, goSide.addr, id, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		late = append(late, m)
	}
	const leaver = "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7"
	if _, err := p.Create(leaver, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GroupProcessDistribution(leaver, from, skdm); err != nil {
		t.Fatal(err)
	}
	if err := goSide.cipher.Rotate(ctx, goSide.addr, id); err != nil {
		t.Fatal(err)
	}
	skdm2, err := goSide.cipher.NewDistribution(ctx, goSide.addr, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.GroupProcessDistribution(skNodeACI, from, skdm2); err != nil {
		t.Fatal(err)
	}
	rotated, err := goSide.cipher.Encrypt(ctx, goSide.addr, id, []byte("after rotation"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := p.GroupDecrypt(skNodeACI, from, rotated); err != nil || string(pt) != "after rotation" {
		t.Fatalf("libsignal, new chain: %q, %v", pt, err)
	}
	for i, m := range late {
		if pt, err := p.GroupDecrypt(skNodeACI, from, m); err != nil || string(pt) != fmt.Sprintf("in flight %d", i+1) {
			t.Fatalf("libsignal, old chain after rotation: %q, %v", pt, err)
		}
	}
	if _, err := p.GroupDecrypt(leaver, from, rotated); !errors.Is(err, interop.ErrPeer) {
		t.Fatalf("libsignal device with only the old distribution read the new chain: %v", err)
	}
}

// TestSenderKeyForwardJumpInterop: libsignal's limit is ours — it accepts a
// message exactly 25,000 iterations ahead and refuses one 25,001 ahead.
func TestSenderKeyForwardJumpInterop(t *testing.T) {
	p := interop.Start(t)
	ctx := context.Background()
	goSide := newSKMember(skGoACI)
	from := interop.Address{Name: skGoACI, DeviceID: 1}
	id := newSKDistributionID(t)
	skdm, err := goSide.cipher.NewDistribution(ctx, goSide.addr, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{skNodeACI, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"} {
		if _, err := p.Create(dev, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := p.GroupProcessDistribution(dev, from, skdm); err != nil {
			t.Fatal(err)
		}
	}
	// encryptAt encrypts as the Go sender at a given iteration, from a copy
	// of its record at iteration 0.
	start := goSide.record(t, goSide.addr, id)
	encryptAt := func(iteration int, pt string) []byte {
		t.Helper()
		r, err := protocol.ParseSenderKeyRecord(start)
		if err != nil {
			t.Fatal(err)
		}
		c := newSKMember(skGoACI)
		if err := c.store.StoreSenderKey(ctx, c.addr, id, r); err != nil {
			t.Fatal(err)
		}
		skAdvance(t, c, id, iteration)
		return skEncrypt(t, c, id, pt)[0]
	}
	if pt, err := p.GroupDecrypt(skNodeACI, from, encryptAt(25_000, "at the limit")); err != nil || string(pt) != "at the limit" {
		t.Fatalf("libsignal, 25,000 ahead: %q, %v", pt, err)
	}
	if _, err := p.GroupDecrypt("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", from, encryptAt(25_001, "beyond")); !errors.Is(err, interop.ErrPeer) {
		t.Fatalf("libsignal, 25,001 ahead: err = %v, want a refusal", err)
	}
	// Like us, libsignal kept the newest 2,000 skipped keys (23,000–24,999).
	if _, err := p.GroupDecrypt(skNodeACI, from, encryptAt(22_999, "dropped")); !interop.HasCode(err, interop.CodeDuplicatedMessage) {
		t.Fatalf("libsignal, skipped iteration 22,999: err = %v, want DuplicatedMessage", err)
	}
	if pt, err := p.GroupDecrypt(skNodeACI, from, encryptAt(23_000, "kept")); err != nil || string(pt) != "kept" {
		t.Fatalf("libsignal, skipped iteration 23,000: %q, %v", pt, err)
	}
}
