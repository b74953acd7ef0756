package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/protocol"
)

// sealedPeer is a recipient device as the protocol sees it: its store,
// and the bundle a sender starts a session from.
type sealedPeer struct {
	d      dev
	store  *protocol.InMemoryStore
	bundle *protocol.PreKeyBundle
}

func newSealedPeer(t *testing.T, d dev, id protocol.IdentityKeyPair) sealedPeer {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	st := protocol.NewInMemoryStore(id, d.regID)
	spk, err := protocol.GenerateSignedPreKey(rand.Reader, id, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	kyber, err := protocol.GenerateKyberPreKey(rand.Reader, id, 1, true, now)
	if err != nil {
		t.Fatal(err)
	}
	st.StoreSignedPreKey(ctx, spk)
	st.StoreKyberPreKey(ctx, kyber)
	return sealedPeer{d: d, store: st, bundle: &protocol.PreKeyBundle{
		RegistrationID: d.regID, DeviceID: d.id, IdentityKey: id.Public,
		SignedPreKeyID: spk.ID, SignedPreKey: spk.KeyPair.Public, SignedPreKeySignature: spk.Signature,
		KyberPreKeyID: kyber.ID, KyberPreKey: kyber.KeyPair.Public, KyberPreKeySignature: kyber.Signature,
	}}
}

func (p sealedPeer) addr() protocol.Address {
	return protocol.Address{Name: p.d.account, DeviceID: p.d.id}
}

func (e *env) sealedMulti(msgID, message []byte, keys map[string][]byte) resp {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"message_id": msgID, "message": message, "access_keys": keys})
	return doReqWith(e.t, e.url, "PUT", "/v1/sealed", map[string]string{"Content-Type": "application/json"}, body)
}

// TestSealedMulti: one sealed sender v2 upload reaches every device of
// every recipient, each device getting the share it can open; access
// keys are checked per recipient; device lists are checked per recipient
// and a retry serves the rest; nothing names the sender.
func TestSealedMulti(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	bob, bobID := e.registerKeyed(uniqueName("bob"))
	bob2 := e.link(bob, 78)
	carol, carolID := e.registerKeyed(uniqueName("carol"))
	dave, daveID := e.registerKeyed(uniqueName("dave"))
	bobKey, carolKey := randBytes(AccessKeyLen), randBytes(AccessKeyLen)
	for _, s := range []struct {
		d   dev
		req map[string]any
	}{{bob, map[string]any{"access_key": bobKey}}, {carol, map[string]any{"access_key": carolKey}},
		{dave, map[string]any{"access_key": randBytes(AccessKeyLen), "unrestricted": true}}} {
		if r := e.do("PUT", "/v1/accounts/me/access", &s.d, s.req); r.status != 204 {
			t.Fatalf("set access: %d %s", r.status, r.body)
		}
	}
	peers := []sealedPeer{newSealedPeer(t, bob, bobID), newSealedPeer(t, bob2, bobID), newSealedPeer(t, carol, carolID), newSealedPeer(t, dave, daveID)}

	// The sender: sessions with every recipient device, and a certificate.
	aliceID, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	alice := protocol.NewCipher(protocol.StoresOf(protocol.NewInMemoryStore(aliceID, 5)), rand.Reader, nil)
	var all []protocol.Address
	for _, p := range peers {
		if err := alice.ProcessPreKeyBundle(ctx, p.addr(), p.bundle); err != nil {
			t.Fatal(err)
		}
		all = append(all, p.addr())
	}
	rootKey, _ := protocol.GenerateKeyPair(rand.Reader)
	serverKey, _ := protocol.GenerateKeyPair(rand.Reader)
	sc, _ := protocol.NewServerCertificate(rootKey, 1, serverKey.Public, rand.Reader)
	certBytes, err := protocol.IssueSenderCertificate(serverKey, sc, "9d0652a3-dcc3-4d11-975f-74d61598733f", 1, aliceID.Public, time.Now().Add(time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := protocol.ParseSenderCertificate(certBytes)
	usmc := &protocol.UnidentifiedContent{Type: protocol.SenderKeyMessageType, Contents: []byte("sender-key message for the group"), Sender: cert, GroupID: randBytes(16)}
	seal := func(to []protocol.Address) []byte {
		t.Helper()
		m, err := alice.SealV2(ctx, to, usmc)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	keys := map[string][]byte{bob.account: bobKey, carol.account: carolKey}

	// Refusals first: nothing stored.
	if r := e.sealedMulti(randBytes(16), []byte("not a v2 message"), keys); r.status != 400 || r.code(t) != "invalid_message" {
		t.Fatalf("garbage message: %d %s", r.status, r.body)
	}
	msg := seal(all)
	bad := map[string][]byte{bob.account: bobKey, carol.account: randBytes(AccessKeyLen)}
	if r := e.sealedMulti(randBytes(16), msg, bad); r.status != 401 || r.code(t) != "access_denied" {
		t.Fatalf("wrong key for carol: %d %s", r.status, r.body)
	} else if acc := r.json(t)["accounts"].([]any); len(acc) != 1 || acc[0] != carol.account {
		t.Fatalf("denied accounts: %s", r.body)
	}
	if r := e.sealedMulti(randBytes(16), msg, map[string][]byte{bob.account: bobKey}); r.status != 401 {
		t.Fatalf("no key for carol: %d %s", r.status, r.body)
	}
	for _, p := range peers {
		if r := e.do("GET", "/v1/queue", &p.d, nil); len(r.json(t)["envelopes"].([]any)) != 0 {
			t.Fatalf("a refused send left envelopes: %s", r.body)
		}
	}

	msgID := randBytes(16)
	if r := e.sealedMulti(msgID, msg, keys); r.status != 200 {
		t.Fatalf("sealed multi: %d %s", r.status, r.body)
	} else if d := r.json(t)["duplicate"].([]any); len(d) != 0 {
		t.Fatalf("first send reported duplicates: %s", r.body)
	}
	if r := e.sealedMulti(msgID, msg, keys); r.status != 200 || len(r.json(t)["duplicate"].([]any)) != 3 {
		t.Fatalf("repeated multi send: %d %s", r.status, r.body)
	}
	for _, p := range peers {
		r := e.do("GET", "/v1/queue", &p.d, nil)
		envs := r.json(t)["envelopes"].([]any)
		if len(envs) != 1 {
			t.Fatalf("%s.%d got %d envelopes", p.d.account, p.d.id, len(envs))
		}
		env := envs[0].(map[string]any)
		if env["type"].(float64) != EnvelopeSealed || env["sender"] != nil {
			t.Fatalf("delivered envelope: %v", env)
		}
		body, _ := base64.StdEncoding.DecodeString(env["content"].(string))
		got, err := protocol.NewCipher(protocol.StoresOf(p.store), rand.Reader, nil).Unseal(ctx, body)
		if err != nil {
			t.Fatalf("%s.%d cannot open its share: %v", p.d.account, p.d.id, err)
		}
		if !bytes.Equal(got.Contents, usmc.Contents) || !bytes.Equal(got.GroupID, usmc.GroupID) {
			t.Fatalf("share opens to %q", got.Contents)
		}
		e.do("POST", "/v1/queue/ack", &p.d, map[string]any{"seqs": []int64{int64(env["seq"].(float64))}})
	}

	// Bob's second device left out: 409 for bob only; the others are
	// served, and the fixed retry with the same id serves bob.
	msgID = randBytes(16)
	partial := seal(slices.Delete(slices.Clone(all), 1, 2))
	r := e.sealedMulti(msgID, partial, keys)
	if r.status != 409 || r.code(t) != "device_mismatch" {
		t.Fatalf("missing device: %d %s", r.status, r.body)
	}
	var mm struct {
		Mismatches []struct {
			Account string   `json:"account"`
			Missing []uint32 `json:"missing"`
		} `json:"mismatches"`
	}
	json.Unmarshal(r.body, &mm)
	if len(mm.Mismatches) != 1 || mm.Mismatches[0].Account != bob.account || !slices.Equal(mm.Mismatches[0].Missing, []uint32{2}) {
		t.Fatalf("mismatches: %s", r.body)
	}
	if r := e.do("GET", "/v1/queue", &carol, nil); len(r.json(t)["envelopes"].([]any)) != 1 {
		t.Fatalf("carol was not served beside bob's mismatch: %s", r.body)
	}
	if r := e.sealedMulti(msgID, seal(all), keys); r.status != 200 {
		t.Fatalf("fixed retry: %d %s", r.status, r.body)
	} else if d := r.json(t)["duplicate"].([]any); len(d) != 2 {
		t.Fatalf("fixed retry duplicates: %s", r.body)
	}
	if r := e.do("GET", "/v1/queue", &bob2, nil); len(r.json(t)["envelopes"].([]any)) != 1 {
		t.Fatalf("bob's second device after the retry: %s", r.body)
	}

	// The rows: recipient device, opaque bytes, coarse time; no sender.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "veil.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, withSender int
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(sender_id) + count(sender_device) FROM envelopes`).Scan(&n, &withSender); err != nil {
		t.Fatal(err)
	}
	if n == 0 || withSender != 0 {
		t.Fatalf("%d envelopes, %d with a sender", n, withSender)
	}
}
