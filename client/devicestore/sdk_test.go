package devicestore_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

func TestSendLogAndSettings(t *testing.T) {
	ctx := t.Context()
	clock := time.UnixMilli(1_700_000_000_000)
	s, err := devicestore.Create(ctx, t.TempDir(), devicestore.Passphrase(testPass),
		devicestore.WithKDFParams(fastKDF), devicestore.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id1, id2 := msgID(t), msgID(t)
	update(t, s, func(tx *devicestore.Tx) error { return tx.LogSend(ctx, id1, "bob", []byte("payload one")) })
	clock = clock.Add(time.Hour)
	update(t, s, func(tx *devicestore.Tx) error { return tx.LogSend(ctx, id2, "bob", []byte("payload two")) })
	// A second log of the same id keeps the first payload.
	update(t, s, func(tx *devicestore.Tx) error { return tx.LogSend(ctx, id1, "bob", []byte("other")) })
	if p, err := s.SentPayload(ctx, id1, "bob"); err != nil || string(p) != "payload one" {
		t.Fatalf("SentPayload = %q, %v", p, err)
	}
	if _, err := s.SentPayload(ctx, id1, "carol"); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("SentPayload for another recipient: %v, want ErrNotFound", err)
	}
	var n int64
	update(t, s, func(tx *devicestore.Tx) (err error) { n, err = tx.PruneSendLog(ctx, clock); return err })
	if n != 1 {
		t.Fatalf("pruned %d, want 1", n)
	}
	if _, err := s.SentPayload(ctx, id1, "bob"); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatal("pruned entry still there")
	}
	if p, _ := s.SentPayload(ctx, id2, "bob"); !bytes.Equal(p, []byte("payload two")) {
		t.Fatal("newer entry pruned")
	}

	if _, ok, err := s.Setting(ctx, "next_prekey_id"); ok || err != nil {
		t.Fatalf("unset setting = %v, %v", ok, err)
	}
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetSetting(ctx, "next_prekey_id", 7) })
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetSetting(ctx, "next_prekey_id", 107) })
	if v, ok, err := s.Setting(ctx, "next_prekey_id"); !ok || err != nil || v != 107 {
		t.Fatalf("Setting = %d, %v, %v", v, ok, err)
	}
}

func TestKeyInfos(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	id, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	t0 := time.UnixMilli(1_700_000_000_000)
	update(t, s, func(tx *devicestore.Tx) error {
		for i, at := range []time.Time{t0, t0.Add(48 * time.Hour)} {
			spk, err := protocol.GenerateSignedPreKey(rand.Reader, id, uint32(i+1), at)
			if err != nil {
				return err
			}
			if err := tx.StoreSignedPreKey(ctx, spk); err != nil {
				return err
			}
			for j, lr := range []bool{true, false} { // ids 10, 11, 20, 21; last-resort 10 and 20
				k, err := protocol.GenerateKyberPreKey(rand.Reader, id, uint32(10*(i+1)+j), lr, at)
				if err != nil {
					return err
				}
				if err := tx.StoreKyberPreKey(ctx, k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	spks, err := s.SignedPreKeyInfos(ctx)
	if err != nil || len(spks) != 2 || spks[0].ID != 2 || spks[1].ID != 1 || !spks[0].CreatedAt.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("SignedPreKeyInfos = %+v, %v (want newest first)", spks, err)
	}
	lrs, err := s.LastResortKyberInfos(ctx)
	if err != nil || len(lrs) != 2 || lrs[0].ID != 20 || lrs[1].ID != 10 {
		t.Fatalf("LastResortKyberInfos = %+v, %v (want only last-resort keys, newest first)", lrs, err)
	}
}

func TestMessageStatus(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	mid := msgID(t)
	var local int64
	update(t, s, func(tx *devicestore.Tx) error {
		conv, err := tx.Conversation(ctx, "bob")
		if err != nil {
			return err
		}
		local, err = tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: "me", SenderDevice: 1, Outgoing: true,
			MessageID: mid, Body: []byte("hi"), SentAt: time.Now(), Status: devicestore.Queued})
		return err
	})
	if m, err := s.MessageByID(ctx, "me", mid); err != nil || m.ID != local || m.Status != devicestore.Queued {
		t.Fatalf("MessageByID = %+v, %v", m, err)
	}
	update(t, s, func(tx *devicestore.Tx) error { return tx.SetMessageStatus(ctx, local, devicestore.Sent) })
	if m, _ := s.Message(ctx, local); m.Status != devicestore.Sent || m.Status.String() != "sent" {
		t.Fatalf("status = %v", m.Status)
	}
	if err := s.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetMessageStatus(ctx, local+100, devicestore.Sent) }); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("status of a missing message: %v", err)
	}
	if _, err := s.MessageByID(ctx, "bob", mid); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("MessageByID of another sender: %v", err)
	}
}

func TestReceived(t *testing.T) {
	ctx := t.Context()
	clock := time.UnixMilli(1_700_000_000_000)
	s, err := devicestore.Create(ctx, t.TempDir(), devicestore.Passphrase(testPass),
		devicestore.WithKDFParams(fastKDF), devicestore.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id := msgID(t)
	if ok, err := s.WasReceived(ctx, "bob", id); ok || err != nil {
		t.Fatalf("WasReceived before = %v, %v", ok, err)
	}
	update(t, s, func(tx *devicestore.Tx) error { return tx.MarkReceived(ctx, "bob", id) })
	update(t, s, func(tx *devicestore.Tx) error { return tx.MarkReceived(ctx, "bob", id) })
	if ok, _ := s.WasReceived(ctx, "bob", id); !ok {
		t.Fatal("not recorded")
	}
	if ok, _ := s.WasReceived(ctx, "carol", id); ok {
		t.Fatal("recorded for another sender")
	}
	clock = clock.Add(time.Hour)
	update(t, s, func(tx *devicestore.Tx) error { return tx.PruneReceived(ctx, clock) })
	if ok, _ := s.WasReceived(ctx, "bob", id); ok {
		t.Fatal("not pruned")
	}
}

func TestSavepoint(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	boom := errors.New("boom")
	update(t, s, func(tx *devicestore.Tx) error {
		if err := tx.Savepoint(ctx, func() error { return tx.SetSetting(ctx, "kept", 1) }); err != nil {
			return err
		}
		err := tx.Savepoint(ctx, func() error {
			if err := tx.SetSetting(ctx, "undone", 1); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Savepoint = %v, want the function's error", err)
		}
		return tx.SetSetting(ctx, "after", 1)
	})
	for name, want := range map[string]bool{"kept": true, "undone": false, "after": true} {
		if _, ok, _ := s.Setting(ctx, name); ok != want {
			t.Errorf("setting %q present = %v, want %v", name, ok, want)
		}
	}
}
