package client

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/veil-e2ee/veil/client/devicestore"
)

// sealedCounter counts sends by path kind.
type sealedCounter struct {
	base               http.RoundTripper
	sealed, identified atomic.Int64
	credentialOnSealed atomic.Int64
}

func (s *sealedCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "PUT" {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/sealed"):
			s.sealed.Add(1)
			if r.Header.Get("Authorization") != "" {
				s.credentialOnSealed.Add(1)
			}
		case strings.HasPrefix(r.URL.Path, "/v1/messages/"):
			s.identified.Add(1)
		}
	}
	return s.base.RoundTrip(r)
}

// TestSealedOneToOne: once a contact has our profile key (it rides in our
// messages), their messages to us go sealed — no credential, no sender on
// the server — and still arrive from the right sender; a changed profile
// key makes the sender fall back to an identified send, and the next
// message from us restores sealed delivery.
func TestSealedOneToOne(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	count := &sealedCounter{base: http.DefaultTransport}
	bcfg := testConfig(filepath.Join(t.TempDir(), "bob"), ts.URL)
	bcfg.HTTPClient = &http.Client{Transport: count}
	bob, err := Register(ctx, bcfg, uniqueName("bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	// Bob has never heard from Alice: no access key, an identified send.
	mustSend(t, bob, alice.Self().Username, "first, identified")
	if count.sealed.Load() != 0 || count.identified.Load() == 0 {
		t.Fatalf("first send: %d sealed, %d identified", count.sealed.Load(), count.identified.Load())
	}
	drain(t, alice)
	mustSend(t, alice, bob.Self().Username, "here is my profile key")
	drain(t, bob)

	count.identified.Store(0)
	mustSend(t, bob, alice.Self().Username, "now sealed")
	if count.sealed.Load() != 1 {
		t.Fatalf("reply after learning the profile key: %d sealed sends", count.sealed.Load())
	}
	if count.credentialOnSealed.Load() != 0 {
		t.Fatal("a sealed send carried bob's device credential")
	}
	evs := drain(t, alice)
	if got := bodies(evs); len(got) != 1 || got[0] != "now sealed" {
		t.Fatalf("alice received %q", got)
	}
	for _, ev := range evs {
		if ev.Kind == EventMessage && (ev.ContactAccount != bob.Self().AccountID || ev.Contact != bob.Self().Username) {
			t.Fatalf("sealed message attributed to %q (%s)", ev.Contact, ev.ContactAccount)
		}
	}

	// Alice's profile key changes: Bob's sealed send is refused (401),
	// he forgets the key and sends identified; the message arrives.
	newKey := bytes.Repeat([]byte{0x42}, 32)
	if err := alice.store.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetBlobSetting(ctx, settingProfileKey, newKey) }); err != nil {
		t.Fatal(err)
	}
	if err := alice.publishAccess(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	count.sealed.Store(0)
	count.identified.Store(0)
	mustSend(t, bob, alice.Self().Username, "after the key change")
	if count.sealed.Load() != 1 || count.identified.Load() == 0 {
		t.Fatalf("after the key change: %d sealed, %d identified", count.sealed.Load(), count.identified.Load())
	}
	if got := bodies(drain(t, alice)); len(got) != 1 || got[0] != "after the key change" {
		t.Fatalf("alice received %q", got)
	}
	if _, err := bob.store.ProfileKey(ctx, alice.Self().AccountID); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("bob kept the refused profile key: %v", err)
	}
	mustSend(t, alice, bob.Self().Username, "my new key")
	drain(t, bob)
	count.sealed.Store(0)
	mustSend(t, bob, alice.Self().Username, "sealed again")
	if count.sealed.Load() != 1 {
		t.Fatalf("with the new key: %d sealed sends", count.sealed.Load())
	}
	if got := bodies(drain(t, alice)); len(got) != 1 || got[0] != "sealed again" {
		t.Fatalf("alice received %q", got)
	}
}

// TestTrustRootPinned: a device configured with a trust root refuses a
// server that shows another; one pinned at registration keeps it.
func TestTrustRootPinned(t *testing.T) {
	ts := startServer(t, "sqlite")
	cfg := testConfig(filepath.Join(t.TempDir(), "p"), ts.URL)
	cfg.TrustRoot = append([]byte{0x05}, bytes.Repeat([]byte{1}, 32)...)
	name := uniqueName("pin")
	if _, err := Register(context.Background(), cfg, name); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Register with another trust root: %v, want ErrProtocol", err)
	}
	// Refused before the account existed: the name is still free.
	cfg.TrustRoot = ts.srv.TrustRoot()
	c0, err := Register(context.Background(), cfg, name)
	if err != nil {
		t.Fatalf("Register with the right trust root: %v", err)
	}
	c0.Close()
	c, _ := register(t, ts, "ok")
	root, ok, err := c.store.BlobSetting(context.Background(), settingTrustRoot)
	if err != nil || !ok || !bytes.Equal(root, ts.srv.TrustRoot()) {
		t.Fatalf("pinned %x, %v, %v; server shows %x", root, ok, err, ts.srv.TrustRoot())
	}
}

// TestSealedFromAnyone: an account that takes sealed messages from anyone
// gets them sealed even from a stranger who lacks its profile key.
func TestSealedFromAnyone(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	if err := alice.SetSealedFromAnyone(ctx, true); err != nil {
		t.Fatal(err)
	}
	count := &sealedCounter{base: http.DefaultTransport}
	cfg := testConfig(filepath.Join(t.TempDir(), "stranger"), ts.URL)
	cfg.HTTPClient = &http.Client{Transport: count}
	stranger, err := Register(ctx, cfg, uniqueName("stranger"))
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	mustSend(t, stranger, alice.Self().Username, "hello, we have not met")
	if count.sealed.Load() != 1 || count.credentialOnSealed.Load() != 0 {
		t.Fatalf("first message to an open account: %d sealed (%d with a credential), %d identified",
			count.sealed.Load(), count.credentialOnSealed.Load(), count.identified.Load())
	}
	evs := drain(t, alice)
	if got := bodies(evs); len(got) != 1 || got[0] != "hello, we have not met" {
		t.Fatalf("alice received %q", got)
	}
	// Closing it again: the stranger's next sealed send is refused and
	// goes identified.
	if err := alice.SetSealedFromAnyone(ctx, false); err != nil {
		t.Fatal(err)
	}
	count.sealed.Store(0)
	mustSend(t, stranger, alice.Self().Username, "still there?")
	if count.sealed.Load() != 1 || count.identified.Load() == 0 {
		t.Fatalf("after closing: %d sealed, %d identified", count.sealed.Load(), count.identified.Load())
	}
	if got := bodies(drain(t, alice)); len(got) != 1 || got[0] != "still there?" {
		t.Fatalf("alice received %q", got)
	}
}
