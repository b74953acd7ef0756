package client

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"slices"
	"testing"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// linkDevice adds a device to primary's account the way the server
// allows today (POST /v1/devices with the account's credential), giving
// it primary's identity key in-process. Secure provisioning between
// devices is the multi-device issue's; this is enough to test fan-out.
func linkDevice(t testing.TB, ts *testServer, primary *Client) (*Client, Config) {
	t.Helper()
	ctx := context.Background()
	cfg := testConfig(filepath.Join(t.TempDir(), "linked"), ts.URL)
	cfg.defaults()
	store, err := devicestore.Create(ctx, cfg.Dir, cfg.Unlock, cfg.storeOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	nc := &Client{cfg: cfg, store: store, api: primary.api, id: primary.id, now: cfg.Now, rand: cfg.Rand, log: cfg.Logger}
	reg, _ := protocol.GenerateRegistrationID(cfg.Rand)
	var up prekeyUpload
	err = store.Update(ctx, func(tx *devicestore.Tx) (err error) {
		if err := tx.SetLocalIdentity(ctx, primary.id, reg); err != nil {
			return err
		}
		up, err = nc.newKeys(ctx, tx, keyPlan{true, true, true, true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	body := struct {
		RegistrationID uint32 `json:"registration_id"`
		prekeyUpload
	}{reg, up}
	var resp registerResponse
	if err := primary.api.do(ctx, "POST", "/v1/devices", body, &resp); err != nil {
		t.Fatalf("linking: %v", err)
	}
	cred, _ := base64.StdEncoding.DecodeString(resp.Credential)
	pk, err := primary.profileKey(ctx) // as the provisioning message carries it
	if err != nil {
		t.Fatal(err)
	}
	err = store.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.SetBlobSetting(ctx, settingProfileKey, pk); err != nil {
			return err
		}
		return tx.SetAccount(ctx, devicestore.Account{AccountID: primary.self.AccountID, DeviceID: resp.DeviceID,
			Username: primary.self.Username, ServerURL: ts.URL, Credential: cred})
	})
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	c, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, cfg
}

// conversation returns a device's stored conversation with username as
// "> body" (outgoing) and "< body" (incoming) lines.
func conversation(t testing.TB, c *Client, username string) []string {
	t.Helper()
	ms, err := c.Messages(context.Background(), username, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		dir := "< "
		if m.Outgoing {
			dir = "> "
		}
		out = append(out, dir+m.Body)
	}
	return out
}

func TestMultiDevice(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	an, bn := alice.Self().Username, bob.Self().Username

	mustSend(t, alice, bn, "1") // sessions with bob's only device
	bob2, _ := linkDevice(t, ts, bob)
	if bob2.Self().DeviceID != 2 || bob2.Self().AccountID != bob.Self().AccountID {
		t.Fatalf("linked device = %+v", bob2.Self())
	}
	// Alice's next send meets 409 (device 2 missing), fetches its bundle
	// and reaches both devices.
	if m := mustSend(t, alice, bn, "2"); m.Status != Sent {
		t.Fatalf("send after bob linked a device: %v", m.Status)
	}
	if got := bodies(drain(t, bob)); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("bob 1 got %q", got)
	}
	if got := bodies(drain(t, bob2)); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("bob 2 got %q", got)
	}
	// Bob writes from device 1: alice gets it, device 2 gets a transcript.
	mustSend(t, bob, an, "3")
	if got := bodies(drain(t, alice)); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("alice got %q", got)
	}
	evs := drain(t, bob2)
	if len(evs) != 2 || evs[0].Kind != EventMessage || !evs[0].Message.Outgoing || evs[0].Message.Peer != an || evs[0].Message.SenderDevice != 1 {
		t.Fatalf("bob 2's transcript events: %+v", evs)
	}
	if got := conversation(t, bob2, an); !slices.Equal(got, []string{"< 2", "> 3"}) {
		t.Fatalf("bob 2's conversation: %q", got)
	}

	alice2, _ := linkDevice(t, ts, alice)
	mustSend(t, bob2, an, "4")
	mustSend(t, alice2, bn, "5")
	for _, c := range []*Client{alice, alice2, bob, bob2} {
		drain(t, c)
	}
	if got := conversation(t, alice, bn); !slices.Equal(got, []string{"> 1", "> 2", "< 3", "< 4", "> 5"}) {
		t.Fatalf("alice 1: %q", got)
	}
	// Stored order: alice 2 wrote 5 before 4 reached her.
	if got := conversation(t, alice2, bn); !slices.Equal(got, []string{"> 5", "< 4"}) {
		t.Fatalf("alice 2: %q", got)
	}
	if got := conversation(t, bob, an); !slices.Equal(got, []string{"< 1", "< 2", "> 3", "> 4", "< 5"}) {
		t.Fatalf("bob 1: %q", got)
	}

	// Bob unlinks device 2: alice's next send meets 409 (extra device)
	// and drops that session.
	ds, err := bob.Devices(ctx)
	if err != nil || len(ds) != 2 || !ds[0].Current || ds[1].ID != 2 {
		t.Fatalf("bob's devices = %+v, %v", ds, err)
	}
	if err := bob.RemoveDevice(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := bob.RemoveDevice(ctx, bob.Self().DeviceID); err == nil {
		t.Fatal("a device removed itself")
	}
	mustSend(t, alice, bn, "6")
	if got := bodies(drain(t, bob)); !slices.Equal(got, []string{"6"}) {
		t.Fatalf("bob 1 after unlinking 2: %q", got)
	}
	if devs, _ := alice.store.SessionDevices(ctx, bob.Self().AccountID); !slices.Equal(devs, []uint32{1}) {
		t.Fatalf("alice still has sessions with bob's devices %v", devs)
	}
	// The removed device learns it is gone.
	for _, err := range bob2.Receive(ctx, ReceiveOptions{Once: true}) {
		if err != ErrDeviceRemoved {
			t.Fatalf("removed device receiving: %v, want ErrDeviceRemoved", err)
		}
	}
}
