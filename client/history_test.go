package client

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/converge"
	"github.com/veil-e2ee/veil/protocol"
)

func FuzzParseHistory(f *testing.F) {
	f.Add([]byte(historyMagic + "\x01"))
	f.Add(append([]byte(historyMagic+"\x01"), appendBytes(nil, 2, appendStr(appendStr(appendBytes(nil, 5, []byte("0123456789abcdef")), 1, "peer"), 2, "sender"))...))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseHistory(b)
		if err != nil {
			if !errors.Is(err, errHistory) {
				t.Fatalf("error outside errHistory: %v", err)
			}
			return
		}
		for _, m := range a.messages {
			if m.Peer == "" || len(m.MessageID) == 0 {
				t.Fatal("a message without peer or id was accepted")
			}
		}
	})
}

// The archive round-trips what the importer needs.
func TestHistoryArchiveRoundTrip(t *testing.T) {
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	ctx := t.Context()
	k, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	err := alice.store.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.ImportIdentity(ctx, "peer-1", k.Public, devicestore.Verified, alice.now()); err != nil {
			return err
		}
		if err := tx.PutContact(ctx, devicestore.Contact{AccountID: "peer-1", Username: "bob_x"}); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			if _, err := tx.ImportMessage(ctx, devicestore.HistoryMessage{Peer: "peer-1", Message: devicestore.Message{
				Sender: "peer-1", SenderDevice: 1, MessageID: bytes.Repeat([]byte{byte(i)}, 16), Body: []byte{'m', byte('0' + i)},
				SentAt: alice.now(), ReceivedAt: alice.now(), Edited: i == 1, Deleted: i == 2}, BodyStamp: converge.Stamp{Time: int64(i)}}); err != nil {
				return err
			}
		}
		if err := tx.FinishImport(ctx); err != nil {
			return err
		}
		_, err := tx.AdvanceReadMarker(ctx, "peer-1", converge.Stamp{Time: 9, Origin: "x"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	plain, n, err := alice.exportHistory(ctx)
	if err != nil || n != 3 {
		t.Fatalf("export: %d messages, %v", n, err)
	}
	a, err := parseHistory(plain)
	if err != nil || len(a.messages) != 3 || len(a.identities) != 1 || a.identities[0].Trust != devicestore.Verified ||
		len(a.contacts) != 1 || a.contacts[0].Username != "bob_x" || a.reads["peer-1"].Time != 9 || !a.messages[1].Edited || !a.messages[2].Deleted {
		t.Fatalf("parsed archive: %+v, %v", a, err)
	}
	// A truncated archive never panics (a cut at a record boundary parses
	// with fewer records; the AEAD stops truncation in transit anyway).
	for i := 0; i < len(plain); i++ {
		parseHistory(plain[:i])
	}
}
