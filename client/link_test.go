package client

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

func init() { linkPoll = 20 * time.Millisecond }

// linkNew links a new device to c's account through the real code flow.
func linkNew(t *testing.T, ts *testServer, c *Client) (*Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(filepath.Join(t.TempDir(), "new"), ts.URL)
	cfg.DeviceName = "new phone"
	codes := make(chan string, 1)
	approved := make(chan error, 1)
	go func() {
		code := <-codes
		approved <- c.ApproveLink(ctx, code)
	}()
	nc, err := Link(ctx, cfg, func(code string) { codes <- code })
	if aerr := <-approved; aerr != nil && err == nil {
		err = aerr
	}
	if nc != nil {
		t.Cleanup(func() { nc.Close() })
	}
	return nc, err
}

// TestLinkDevice: a new device joins through a link code approved by an
// existing one; it has the account's identity (same safety numbers),
// receives what is sent to the account, and its sends reach the other
// side and, as transcripts, the first device.
func TestLinkDevice(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	an, bn := alice.Self().Username, bob.Self().Username
	mustSend(t, bob, an, "before the link")
	drain(t, alice)
	first := mustSend(t, alice, bn, "helo")
	if _, err := alice.Edit(ctx, first.ID, "hello"); err != nil {
		t.Fatal(err)
	}
	drain(t, bob)
	bsn, _ := bob.SafetyNumber(ctx, an)
	if err := alice.Verify(ctx, bn, bsn.Digits); err != nil {
		t.Fatal(err)
	}
	var stages []string
	alice.cfg.Progress = func(p Progress) {
		if len(stages) == 0 || stages[len(stages)-1] != p.Stage {
			stages = append(stages, p.Stage)
		}
	}

	alice2, err := linkNew(t, ts, alice)
	if err != nil {
		t.Fatal(err)
	}
	// The new device has the history, with edits and verification state.
	if got := conversation(t, alice2, bn); !slices.Equal(got, []string{"< before the link", "> hello"}) {
		t.Fatalf("the new device's history: %q", got)
	}
	if ct, err := alice2.Contact(ctx, bn); err != nil || !ct.Verified() {
		t.Fatalf("the new device's contact: %+v, %v (want verified, as on the first device)", ct, err)
	}
	if !slices.Equal(stages, []string{"export", "upload"}) {
		t.Fatalf("progress stages on the approving device: %q", stages)
	}
	if s := alice2.Self(); s.AccountID != alice.Self().AccountID || s.DeviceID != 2 || s.Username != an {
		t.Fatalf("linked device = %+v", s)
	}
	sn1, _ := alice.SafetyNumber(ctx, bn)
	sn2, _ := alice2.SafetyNumber(ctx, bn)
	if sn1.Digits != sn2.Digits {
		t.Fatal("the linked device has another identity")
	}
	mustSend(t, bob, an, "to both")
	if got := bodies(drain(t, alice)); !slices.Equal(got, []string{"to both"}) {
		t.Fatalf("device 1 got %q", got)
	}
	if got := bodies(drain(t, alice2)); !slices.Equal(got, []string{"to both"}) {
		t.Fatalf("device 2 got %q", got)
	}
	mustSend(t, alice2, bn, "from the new device")
	if got := bodies(drain(t, bob)); !slices.Equal(got, []string{"from the new device"}) {
		t.Fatalf("bob got %q", got)
	}
	drain(t, alice)
	if got := conversation(t, alice, bn); !slices.Contains(got, "> from the new device") {
		t.Fatalf("device 1 lacks the transcript: %q", got)
	}

	// Device names: encrypted, readable by the account's devices.
	if err := alice.SetDeviceName(ctx, 0, "laptop"); err != nil {
		t.Fatal(err)
	}
	ds, err := alice2.Devices(ctx)
	if err != nil || len(ds) != 2 || ds[0].Name != "laptop" || ds[1].Name != "new phone" || !ds[1].Current {
		t.Fatalf("devices seen from the new one: %+v, %v", ds, err)
	}

	// A damaged code is refused before anything is sent.
	if err := alice.ApproveLink(ctx, "veil-link:garbage"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("approving garbage: %v", err)
	}
}

// TestLinkDeviceLimit: at the server's device limit, linking fails with
// ErrDeviceLimit and leaves no profile behind.
func TestLinkDeviceLimit(t *testing.T) {
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	for i := 0; i < 5; i++ { // the default limit is 6 devices
		if _, err := linkNew(t, ts, alice); err != nil {
			t.Fatalf("link %d: %v", i+2, err)
		}
	}
	if _, err := linkNew(t, ts, alice); !errors.Is(err, ErrDeviceLimit) {
		t.Fatalf("a seventh device: %v, want ErrDeviceLimit", err)
	}
}

// TestServerCannotAddDevice plays a malicious server that adds its own
// device to bob's account. Without bob's identity key it cannot sign the
// device's prekeys, so alice's client refuses to encrypt to bob while
// that device is listed, and says so.
func TestServerCannotAddDevice(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	bn := bob.Self().Username
	mustSend(t, alice, bn, "hello")
	drain(t, bob)

	var acct store.AccountID
	raw, _ := uuidBytes(bob.Self().AccountID)
	copy(acct[:], raw)
	rnd := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	ec := append([]byte{5}, rnd(32)...)
	kem := append([]byte{8}, rnd(1568)...)
	_, err := ts.st.AddDevice(ctx, acct, store.NewDevice{RegistrationID: 4242, CredentialHash: rnd(32), Now: time.Now(),
		PreKeys: store.PreKeyUpload{
			SignedPreKey:  &store.SignedPreKey{KeyID: 1, PublicKey: ec, Signature: rnd(64)},
			LastResortKEM: &store.SignedPreKey{KeyID: 2, PublicKey: kem, Signature: rnd(64)},
		}}, 6)
	if err != nil {
		t.Fatal(err)
	}
	m, err := alice.Send(ctx, bn, "are you alone?")
	var ude *UnverifiedDeviceError
	if !errors.As(err, &ude) || ude.Username != bn || !slices.Equal(ude.Devices, []uint32{2}) || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("send with a server-made device: %v", err)
	}
	if m.Status != Queued {
		t.Fatalf("the message is %v, want held in the outbox", m.Status)
	}
	// A name the server makes up for its device does not decrypt on bob's.
	if err := ts.st.(store.DeviceNamer).SetDeviceName(ctx, acct, 2, []byte("0123456789abcdef0123456789abcdef-fake")); err != nil {
		t.Fatal(err)
	}
	if ds, _ := bob.Devices(ctx); len(ds) != 2 || !ds[1].NameUnreadable {
		t.Fatalf("bob's device list does not flag the server's device: %+v", ds)
	}
	if got := bodies(drain(t, bob)); len(got) != 0 {
		t.Fatalf("bob received %q while the listener was listed", got)
	}
	// Bob removes the device; the held message goes out.
	if err := bob.RemoveDevice(ctx, 2); err != nil {
		t.Fatal(err)
	}
	items, _ := alice.store.Outbox(ctx, time.UnixMilli(1<<62), 10)
	var ids [][]byte
	for _, it := range items {
		ids = append(ids, it.MessageID)
	}
	if err := alice.flush(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if got := bodies(drain(t, bob)); !slices.Equal(got, []string{"are you alone?"}) {
		t.Fatalf("after removing the device bob got %q", got)
	}
}
