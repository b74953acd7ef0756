package client

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql "sqlite3", to play a reinstall on the server's file

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// reinstall plays a user who lost their device and came back on the same
// account with a new identity key (what account recovery without a
// backup looks like): the server's record of the account gets the new
// key and loses the old one-time prekeys, and a fresh profile takes over
// the device's credential and uploads new prekeys.
func reinstall(t *testing.T, ts *testServer, old *Client) *Client {
	t.Helper()
	ctx := context.Background()
	acct, err := old.store.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := old.store.LocalRegistrationID(ctx)
	old.Close()
	newID, _ := protocol.GenerateIdentityKeyPair(rand.Reader)

	ts.stop()
	db, err := sql.Open("sqlite3", "file:"+ts.dsn)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := uuidBytes(acct.AccountID)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE accounts SET identity_key = ? WHERE id = ?`, []any{newID.Public.Bytes(), uid}},
		{`DELETE FROM one_time_prekeys WHERE account_id = ?`, []any{uid}},
	} {
		if res, err := db.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		} else if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("%s changed nothing", q.sql)
		}
	}
	db.Close()
	ts.start()

	cfg := testConfig(filepath.Join(t.TempDir(), "reinstalled"), ts.URL)
	store, err := devicestore.Create(ctx, cfg.Dir, cfg.Unlock, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	err = store.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.SetLocalIdentity(ctx, newID, reg); err != nil {
			return err
		}
		return tx.SetAccount(ctx, acct)
	})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if rep, err := c.MaintainKeys(ctx); err != nil || !rep.RotatedSigned || rep.RefilledPreKeys != PreKeyBatch {
		t.Fatalf("reinstalled device's keys: %+v, %v", rep, err)
	}
	return c
}

// TestIdentityChange: bob comes back with a new identity key. Alice, who
// had verified him, receives his message, learns of the change and loses
// the verified mark; her sends are held (a typed error with the new
// safety number) until she accepts it. Carol, who only had an old
// session, sends into it; the reinstalled device cannot decrypt, heals
// the session, and Carol's resend is held the same way until she
// accepts.
func TestIdentityChange(t *testing.T) {
	ts := startServer(t, "sqlite")
	ctx := context.Background()
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	carol, _ := register(t, ts, "carol")
	an, bn := alice.Self().Username, bob.Self().Username

	mustSend(t, alice, bn, "hi bob")
	mustSend(t, carol, bn, "hi bob, carol here")
	drain(t, bob)
	mustSend(t, bob, an, "hi alice")
	drain(t, alice)
	sn, err := bob.SafetyNumber(ctx, an)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Verify(ctx, bn, "12345"+sn.Digits[5:]); !errors.Is(err, ErrSafetyNumberMismatch) {
		t.Fatalf("verify with a wrong number: %v", err)
	}
	if err := alice.Verify(ctx, bn, sn.String()); err != nil {
		t.Fatal(err)
	}
	if ct, _ := alice.Contact(ctx, bn); !ct.Verified() {
		t.Fatalf("after Verify: %+v", ct)
	}

	bob = reinstall(t, ts, bob)
	mustSend(t, bob, an, "I'm back")
	evs := drain(t, alice)
	if len(evs) < 2 || evs[0].Kind != EventIdentityChanged || evs[0].Contact != bn || evs[1].Kind != EventMessage || evs[1].Message.Body != "I'm back" {
		t.Fatalf("alice's events after bob's reinstall: %+v", evs)
	}
	newSN, _ := bob.SafetyNumber(ctx, an)
	if evs[0].SafetyNumber != newSN.String() || newSN.Digits == sn.Digits {
		t.Fatalf("event safety number %q, bob's new one %q (old %q)", evs[0].SafetyNumber, newSN, sn)
	}
	if ct, _ := alice.Contact(ctx, bn); ct.Verified() || ct.Trust != "changed" {
		t.Fatalf("after the change alice's contact is %+v; want changed, not verified", ct)
	}
	m, err := alice.Send(ctx, bn, "held until I accept")
	var ice *IdentityChangedError
	if !errors.As(err, &ice) || ice.Username != bn || ice.SafetyNumber != newSN.String() {
		t.Fatalf("send to a changed identity: %v", err)
	}
	if err == nil || m.Status != 0 || len(bodies(drain(t, bob))) != 0 {
		t.Fatalf("a message went out to an unaccepted key (status %v)", m.Status)
	}
	if err := alice.AcceptIdentity(ctx, bn, sn.String()); !errors.Is(err, ErrSafetyNumberMismatch) {
		t.Fatalf("accepting with the old number: %v", err)
	}
	if err := alice.AcceptIdentity(ctx, bn, ice.SafetyNumber); err != nil {
		t.Fatal(err)
	}
	if ct, _ := alice.Contact(ctx, bn); ct.Trust != "trusted" {
		t.Fatalf("after accepting: %+v", ct)
	}
	mustSend(t, alice, bn, "accepted")
	if got := bodies(drain(t, bob)); !slices.Equal(got, []string{"accepted"}) {
		t.Fatalf("bob got %q after alice accepted", got)
	}

	// Carol still has her session with bob's old key and writes into it.
	if m := mustSend(t, carol, bn, "do you still read this?"); m.Status != Sent {
		t.Fatalf("carol's send: %v", m.Status)
	}
	evs = drain(t, bob)                                                                                        // undecryptable: bob heals and asks carol to resend
	if len(evs) == 0 || evs[0].Kind != EventUndecryptable || evs[0].ContactAccount != carol.Self().AccountID { // the new profile does not know carol yet
		t.Fatalf("bob's events for carol's message into the old session: %+v", evs)
	}
	evs = drain(t, carol) // the request comes from the new key: the resend is held
	if len(evs) == 0 || evs[0].Kind != EventIdentityChanged {
		t.Fatalf("carol's events: %+v", evs)
	}
	if len(bodies(drain(t, bob))) != 0 {
		t.Fatal("carol's resend went out before she accepted the new key")
	}
	csn, _ := carol.SafetyNumber(ctx, bn)
	if err := carol.AcceptIdentity(ctx, bn, csn.Digits); err != nil {
		t.Fatal(err)
	}
	if got := bodies(drain(t, bob)); !slices.Equal(got, []string{"do you still read this?"}) {
		t.Fatalf("after carol accepted, bob got %q", got)
	}
}
