package client

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/internal/syncbuf"
	"github.com/veil-e2ee/veil/legalhold"
	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
)

// holdSetup is a server with legal holds on, two administrators, and the
// admin tool over its database.
type holdSetup struct {
	ts             *testServer
	admin1, admin2 *legalhold.AdminKey
	tool           *server.HoldAdmin
	logs           *syncbuf.Buffer // the server's log
}

func startHoldServer(t *testing.T, backend string) *holdSetup {
	t.Helper()
	a1, _ := legalhold.GenerateAdminKey("ada", rand.Reader)
	a2, _ := legalhold.GenerateAdminKey("grace", rand.Reader)
	admins := legalhold.Admins{a1.Name: a1.Public(), a2.Name: a2.Public()}
	logs := &syncbuf.Buffer{}
	ts := &testServer{t: t, backend: backend, secret: make([]byte, 32),
		holds:  server.LegalHoldConfig{Mode: server.HoldsOn, Approvals: 2, Admins: admins},
		logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	rand.Read(ts.secret)
	if backend == "sqlite" {
		ts.dsn = filepath.Join(t.TempDir(), "veil.db")
	} else {
		ts.dsn = pgtest.DSN(t)
	}
	ts.start()
	t.Cleanup(ts.stop)
	return &holdSetup{ts: ts, admin1: a1, admin2: a2, logs: logs,
		tool: &server.HoldAdmin{Store: ts.st, Secret: ts.secret, Admins: admins, Approvals: 2}}
}

func accountID(t *testing.T, c *Client) store.AccountID {
	t.Helper()
	b, err := parseAccountBytes(c.Self().AccountID)
	if err != nil {
		t.Fatal(err)
	}
	return store.AccountID(b)
}

// kinds returns the hold events' kinds and accounts as "kind account".
func holdEvents(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind == EventLegalHold || ev.Kind == EventLegalHoldLifted {
			out = append(out, ev.Kind.String()+" "+ev.Hold.AccountID)
		}
	}
	return out
}

// TestLegalHold is the disclosed legal hold end to end with three users:
// bob is put under hold. A hold with one approval does nothing; with the
// second, the compliance device joins bob's account, every device of
// every participant shows the notice in every conversation that includes
// bob (and only there), the compliance device receives exactly what is
// sent to and by bob while the hold is on, and lifting the hold removes
// it.
func TestLegalHold(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		hs := startHoldServer(t, backend)
		ts := hs.ts
		alice, _ := register(t, ts, "alice")
		bob, _ := register(t, ts, "bob")
		carol, _ := register(t, ts, "carol")
		bob2, _ := linkDevice(t, ts, bob)
		alice2, _ := linkDevice(t, ts, alice)
		a, b, cn := alice.Self().Username, bob.Self().Username, carol.Self().Username

		mustSend(t, alice, b, "before the hold")
		mustSend(t, carol, a, "hello alice")
		g, err := carol.CreateGroup(ctx, "trio", a, b)
		if err != nil {
			t.Fatal(err)
		}
		everyone := []*Client{alice, alice2, bob, bob2, carol}
		for _, c := range everyone {
			drain(t, c)
		}

		// One approval: nothing happens.
		hold, err := hs.tool.Request(ctx, hs.admin1, accountID(t, bob), "case 2026-117: preservation order")
		if err != nil {
			t.Fatal(err)
		}
		if hold.State != "pending" || len(hold.ApprovedBy) != 1 {
			t.Fatalf("new hold: %+v", hold)
		}
		if _, err := hs.tool.Approve(ctx, hs.admin1, mustHoldID(t, hold.ID)); err == nil {
			t.Fatal("the requester approved its own hold a second time")
		}
		compCfg := testConfig(filepath.Join(t.TempDir(), "compliance"), ts.URL)
		compCfg.Unlock = KeyFile(make([]byte, 32))
		_, err = RegisterCompliance(ctx, compCfg, hold.ID, hs.admin1)
		var se *ServerError
		if !errors.As(err, &se) || se.Code != "hold_not_approved" {
			t.Fatalf("activation with one approval: %v, want hold_not_approved", err)
		}
		mustSend(t, alice, b, "while pending")
		for _, c := range everyone {
			if evs := holdEvents(drain(t, c)); len(evs) != 0 {
				t.Fatalf("a pending hold is shown: %v", evs)
			}
		}
		if ds, err := bob.Devices(ctx); err != nil || len(ds) != 2 {
			t.Fatalf("bob's devices while pending: %v %v", ds, err)
		}

		// The second approval; the compliance device registers.
		if _, err := hs.tool.Approve(ctx, hs.admin2, mustHoldID(t, hold.ID)); err != nil {
			t.Fatal(err)
		}
		comp, err := RegisterCompliance(ctx, compCfg, hold.ID, hs.admin2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { comp.Close() })
		if !comp.Compliance() || comp.Self().AccountID != bob.Self().AccountID {
			t.Fatalf("compliance device: %+v", comp.Self())
		}
		if _, err := comp.Send(ctx, a, "hi"); !errors.Is(err, ErrComplianceDevice) {
			t.Fatalf("a compliance device sent: %v", err)
		}

		// Every device of every participant learns of it.
		for _, c := range everyone {
			evs := holdEvents(drain(t, c))
			if !slices.Equal(evs, []string{"legal_hold " + bob.Self().AccountID}) {
				t.Fatalf("%s (device %d) saw %v", c.Self().Username, c.Self().DeviceID, evs)
			}
		}
		// The notice is in every conversation that includes bob, and only
		// there.
		wantHeld := func(c *Client, conv string, want bool) {
			t.Helper()
			hs, err := c.ConversationHolds(ctx, conv)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(hs) == 1 && hs[0].AccountID == bob.Self().AccountID; got != want || (!want && len(hs) != 0) {
				t.Fatalf("%s's conversation %s: holds %+v, want held=%v", c.Self().Username, conv, hs, want)
			}
			if want && !strings.Contains(hs[0].Notice(), "compliance device") {
				t.Fatalf("notice %q", hs[0].Notice())
			}
		}
		for _, c := range []*Client{alice, alice2} {
			wantHeld(c, b, true)
			wantHeld(c, g.ID, true)
			wantHeld(c, cn, false)
		}
		for _, c := range []*Client{bob, bob2} {
			wantHeld(c, a, true)
			wantHeld(c, g.ID, true)
		}
		wantHeld(carol, g.ID, true)
		wantHeld(carol, a, false)
		convs, err := alice.Conversations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cv := range convs {
			held := len(cv.Holds) > 0
			if want := cv.PeerAccount == bob.Self().AccountID || strings.HasPrefix(cv.PeerAccount, groupPrefix); held != want {
				t.Fatalf("alice's conversation with %q: holds %v", cv.PeerAccount, cv.Holds)
			}
		}
		ds, err := bob.Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := slices.IndexFunc(ds, func(d Device) bool { return d.Compliance }); n < 0 || ds[n].ID != comp.Self().DeviceID || len(ds) != 3 {
			t.Fatalf("bob's devices do not mark the compliance device: %+v", ds)
		}

		// Bob can neither remove the compliance device nor erase his
		// account while the hold lasts.
		if err := bob.RemoveDevice(ctx, comp.Self().DeviceID); !errors.As(err, &se) || se.Code != "compliance_device" {
			t.Fatalf("removing the compliance device: %v", err)
		}
		if _, err := bob.DeleteAccount(ctx); !errors.As(err, &se) || se.Code != "legal_hold" {
			t.Fatalf("deleting a held account: %v", err)
		}

		// While the hold is on, the compliance device receives what is
		// sent to and by bob, 1:1 and in the group, and nothing else.
		mustSend(t, alice, b, "during the hold")
		mustSend(t, bob, a, "reply during the hold")
		if _, err := carol.SendGroup(ctx, g.ID, "group during the hold"); err != nil {
			t.Fatal(err)
		}
		mustSend(t, carol, a, "carol to alice only")
		for _, c := range everyone {
			drain(t, c)
		}
		got := bodies(drain(t, comp))
		slices.Sort(got)
		if want := []string{"during the hold", "group during the hold", "reply during the hold"}; !slices.Equal(got, want) {
			t.Fatalf("the compliance device received %q, want %q", got, want)
		}
		if got := conversation(t, bob, a); !slices.Contains(got, "< during the hold") {
			t.Fatalf("bob's conversation: %q", got)
		}

		// Lifting removes the device; senders drop it, notices go.
		if _, err := hs.tool.Lift(ctx, hs.admin1, mustHoldID(t, hold.ID), "order expired"); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var last error
		for _, err := range comp.Receive(rctx, ReceiveOptions{}) {
			if err != nil {
				last = err
			}
		}
		cancel()
		if !errors.Is(last, ErrDeviceRemoved) {
			t.Fatalf("the compliance device after lifting: %v, want ErrDeviceRemoved", last)
		}
		mustSend(t, alice, b, "after the hold")
		if _, err := carol.SendGroup(ctx, g.ID, "group after the hold"); err != nil {
			t.Fatal(err)
		}
		for _, c := range everyone {
			evs := holdEvents(drain(t, c))
			if !slices.Equal(evs, []string{"legal_hold_lifted " + bob.Self().AccountID}) {
				t.Fatalf("%s (device %d) after lifting saw %v", c.Self().Username, c.Self().DeviceID, evs)
			}
			if hs, err := c.LegalHolds(ctx); err != nil || len(hs) != 0 {
				t.Fatalf("holds after lifting: %v %v", hs, err)
			}
		}
		if got := conversation(t, bob2, a); !slices.Contains(got, "< after the hold") {
			t.Fatalf("bob's second device after lifting: %q", got)
		}

		// Bob reads the hold's history in his account's audit events.
		evs, err := bob.AuditLog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ev := range evs {
			if strings.HasPrefix(ev.Type, "legal_hold_") {
				types = append(types, ev.Type)
			}
		}
		if want := []string{"legal_hold_requested", "legal_hold_approved", "legal_hold_activated", "legal_hold_lifted"}; !slices.Equal(types, want) {
			t.Fatalf("bob's audit events %v, want %v", types, want)
		}

		// The server's log and metrics name nobody and carry no content.
		resp, err := http.Get(ts.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(hs.logs.String(), "legal hold activated") {
			t.Fatal("the server's log was not captured")
		}
		if !strings.Contains(string(metrics), `veil_legal_holds{state="active"}`) {
			t.Fatal("no legal-hold gauge in the metrics")
		}
		for _, c := range []*Client{alice, bob, carol} {
			for _, secret := range []string{c.Self().Username, c.Self().AccountID, strings.ReplaceAll(c.Self().AccountID, "-", ""),
				"during the hold", "case 2026-117", hold.ID} {
				if strings.Contains(hs.logs.String(), secret) || strings.Contains(string(metrics), secret) {
					t.Fatalf("%q appears in the server's log or metrics", secret)
				}
			}
		}
	})
}

func mustHoldID(t *testing.T, s string) [16]byte {
	t.Helper()
	id, err := server.ParseHoldID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// activeHold puts a two-approval hold on c's account and registers its
// compliance device.
func activeHold(t *testing.T, hs *holdSetup, c *Client) *Client {
	t.Helper()
	ctx := context.Background()
	h, err := hs.tool.Request(ctx, hs.admin1, accountID(t, c), "test hold")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hs.tool.Approve(ctx, hs.admin2, mustHoldID(t, h.ID)); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(filepath.Join(t.TempDir(), "compliance"), hs.ts.URL)
	cfg.Unlock = KeyFile(make([]byte, 32))
	comp, err := RegisterCompliance(ctx, cfg, h.ID, hs.admin1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { comp.Close() })
	return comp
}

// A compliance device whose certificate does not verify against the
// trust root this device pinned is refused like any unexplained device:
// nothing is sent, and no notice is stored.
func TestLegalHoldForgedCertificateRefused(t *testing.T) {
	ctx := context.Background()
	hs := startHoldServer(t, "sqlite")
	alice, _ := register(t, hs.ts, "alice")
	bob, _ := register(t, hs.ts, "bob")
	mustSend(t, alice, bob.Self().Username, "hi")
	activeHold(t, hs, bob)
	// As if the server had signed with a key alice never pinned.
	wrong := make([]byte, 33)
	wrong[0] = 5
	rand.Read(wrong[1:])
	if err := alice.store.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetBlobSetting(ctx, settingTrustRoot, wrong) }); err != nil {
		t.Fatal(err)
	}
	m, err := alice.Send(ctx, bob.Self().Username, "to bob")
	var ue *UnverifiedDeviceError
	if !errors.As(err, &ue) || m.Status != Queued {
		t.Fatalf("send to an account with an unverified compliance device: %v (%v), want UnverifiedDeviceError and held", err, m.Status)
	}
	if got := bodies(drain(t, bob)); slices.Contains(got, "to bob") {
		t.Fatal("the message went out although a device was unexplained")
	}
	if evs, err := alice.RefreshHolds(ctx); err != nil || len(evs) != 0 {
		t.Fatalf("a forged hold was reported: %v %v", evs, err)
	}
	if hs, err := alice.LegalHolds(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("a forged hold was stored: %v %v", hs, err)
	}
}

// Once a device has seen the server say legal holds are disabled for
// good, it refuses compliance devices even with valid certificates.
func TestLegalHoldNeverPinned(t *testing.T) {
	ctx := context.Background()
	hs := startHoldServer(t, "sqlite")
	alice, _ := register(t, hs.ts, "alice")
	bob, _ := register(t, hs.ts, "bob")
	mustSend(t, alice, bob.Self().Username, "hi")
	// What RefreshHolds stores when the list says "policy": "never".
	if err := alice.store.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetSetting(ctx, settingHoldsNever, 1) }); err != nil {
		t.Fatal(err)
	}
	activeHold(t, hs, bob)
	if m, err := alice.Send(ctx, bob.Self().Username, "to bob"); !errors.Is(err, ErrHoldsRefused) || m.Status != Queued {
		t.Fatalf("send: %v (%v), want ErrHoldsRefused and held", err, m.Status)
	}
	if got := bodies(drain(t, bob)); slices.Contains(got, "to bob") {
		t.Fatal("the message went out to an account with a compliance device although holds are disabled for good")
	}
	if evs, err := alice.RefreshHolds(ctx); err != nil || len(evs) != 0 {
		t.Fatalf("a hold was reported although holds are disabled for good: %v %v", evs, err)
	}
}

// A server started with --legal-hold never tells clients so, and they
// remember it.
func TestLegalHoldPolicyNever(t *testing.T) {
	ctx := context.Background()
	ts := &testServer{t: t, backend: "sqlite", secret: make([]byte, 32), holds: server.LegalHoldConfig{Mode: server.HoldsNever}}
	rand.Read(ts.secret)
	ts.dsn = filepath.Join(t.TempDir(), "veil.db")
	ts.start()
	t.Cleanup(ts.stop)
	alice, _ := register(t, ts, "alice")
	if _, err := alice.RefreshHolds(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _, err := alice.store.Setting(ctx, settingHoldsNever); err != nil || v != 1 {
		t.Fatalf("the never policy was not remembered: %v %v", v, err)
	}
}
