package server

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/veil-e2ee/veil/protocol"
)

// registerKeyed registers an account whose identity key is a real
// Curve25519 key (sender certificates name it).
func (e *env) registerKeyed(name string) (dev, protocol.IdentityKeyPair) {
	e.t.Helper()
	id, err := protocol.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	body := keysBody(2, 2)
	body["username"] = name
	body["identity_key"] = id.Public.Bytes()
	body["registration_id"] = 77
	r := e.do("POST", "/v1/accounts", nil, body)
	if r.status != 201 {
		e.t.Fatalf("register %s: %d %s", name, r.status, r.body)
	}
	m := r.json(e.t)
	return dev{account: m["account_id"].(string), id: 1, cred: m["credential"].(string), regID: 77, identity: id.Public.Bytes()}, id
}

func (e *env) sealedSend(to string, key []byte, msgID []byte, targets []dev, content []byte) resp {
	e.t.Helper()
	var envs []env1
	for _, d := range targets {
		envs = append(envs, env1{DeviceID: d.id, RegistrationID: d.regID, Type: EnvelopeSealed, Content: content})
	}
	body, _ := json.Marshal(map[string]any{"message_id": msgID, "envelopes": envs})
	h := map[string]string{"Content-Type": "application/json"}
	if key != nil {
		h["Unidentified-Access-Key"] = base64.StdEncoding.EncodeToString(key)
	}
	return doReqWith(e.t, e.url, "PUT", "/v1/sealed/"+to, h, body)
}

// TestSenderCertificate: the server issues a certificate for the calling
// device that validates against the trust root it publishes; a second
// node with the same secret publishes the same root.
func TestSenderCertificate(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, withClock(func() time.Time { return now }))
	alice, aliceID := e.registerKeyed(uniqueName("alice"))

	r := e.do("GET", "/v1/certificate/trust-root", nil, nil)
	if r.status != 200 {
		t.Fatalf("trust root: %d %s", r.status, r.body)
	}
	var tr struct {
		TrustRoot []byte `json:"trust_root"`
		KeyID     uint32 `json:"key_id"`
	}
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatal(err)
	}
	root, err := protocol.ParsePublicKey(tr.TrustRoot)
	if err != nil || tr.KeyID != 1 {
		t.Fatalf("trust root %x key id %d: %v", tr.TrustRoot, tr.KeyID, err)
	}
	e2 := newEnv(t, withStore(e.st))
	if r2 := e2.do("GET", "/v1/certificate/trust-root", nil, nil); string(r2.body) != string(r.body) {
		t.Fatalf("two nodes with one secret publish different roots: %s vs %s", r.body, r2.body)
	}

	if r := e.do("GET", "/v1/certificate/sender", nil, nil); r.status != 401 {
		t.Fatalf("certificate without credential: %d", r.status)
	}
	r = e.do("GET", "/v1/certificate/sender", &alice, nil)
	if r.status != 200 {
		t.Fatalf("sender certificate: %d %s", r.status, r.body)
	}
	var sc struct {
		Certificate []byte `json:"certificate"`
		Expires     int64  `json:"expires"`
	}
	if err := json.Unmarshal(r.body, &sc); err != nil {
		t.Fatal(err)
	}
	cert, err := protocol.ParseSenderCertificate(sc.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if cert.SenderUUID != alice.account || cert.DeviceID != 1 || !cert.IdentityKey.Equal(aliceID.Public) {
		t.Fatalf("certificate names %s.%d %v", cert.SenderUUID, cert.DeviceID, cert.IdentityKey)
	}
	if want := now.Add(DefaultSenderCertTTL); !cert.Expiration.Equal(want) || sc.Expires != want.Unix() {
		t.Fatalf("expires %v / %d, want %v", cert.Expiration, sc.Expires, want)
	}
	if err := cert.Validate(root, now.Add(time.Hour)); err != nil {
		t.Fatalf("certificate does not validate: %v", err)
	}
	if err := cert.Validate(root, now.Add(DefaultSenderCertTTL+time.Second)); err == nil {
		t.Fatal("expired certificate validated")
	}
	// A key that is not a Curve25519 key cannot be certified (the server
	// keeps identity keys opaque, so registration accepted it).
	body := keysBody(1, 1)
	body["username"] = uniqueName("odd")
	body["identity_key"] = append([]byte{0x07}, randBytes(32)...)
	body["registration_id"] = 5
	reg := e.do("POST", "/v1/accounts", nil, body)
	m := reg.json(t)
	odd := dev{account: m["account_id"].(string), id: 1, cred: m["credential"].(string)}
	if r := e.do("GET", "/v1/certificate/sender", &odd, nil); r.status != 409 || r.code(t) != "identity_key_unusable" {
		t.Fatalf("odd identity key: %d %s", r.status, r.body)
	}
}

// TestSealedSend: delivery without sender credentials needs the
// recipient's access key (or its unrestricted setting); an unknown
// account and a wrong key get the same answer; the stored row has no
// sender.
func TestSealedSend(t *testing.T) {
	e := newEnv(t)
	bob, _ := e.registerKeyed(uniqueName("bob"))
	key := randBytes(AccessKeyLen)
	if r := e.do("PUT", "/v1/accounts/me/access", &bob, map[string]any{"access_key": randBytes(15)}); r.status != 400 {
		t.Fatalf("short access key: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/v1/accounts/me/access", &bob, map[string]any{"access_key": key}); r.status != 204 {
		t.Fatalf("set access: %d %s", r.status, r.body)
	}
	content := []byte("sealed-ciphertext-for-bob")
	for name, k := range map[string][]byte{"no key": nil, "wrong key": randBytes(AccessKeyLen)} {
		if r := e.sealedSend(bob.account, k, randBytes(16), []dev{bob}, content); r.status != 401 || r.code(t) != "access_denied" {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	unknown := "0b8a3f1e-5a6c-4b1d-9e2f-3c4d5e6f7a8b"
	wrong := e.sealedSend(bob.account, randBytes(AccessKeyLen), randBytes(16), []dev{bob}, content)
	missing := e.sealedSend(unknown, key, randBytes(16), []dev{bob}, content)
	if missing.status != wrong.status || string(missing.body) != string(wrong.body) {
		t.Fatalf("unknown account answers differently from a wrong key: %d %s vs %d %s", missing.status, missing.body, wrong.status, wrong.body)
	}
	if r := doReqWith(t, e.url, "PUT", "/v1/sealed/"+bob.account, map[string]string{"Content-Type": "application/json", "Unidentified-Access-Key": "!!"}, []byte(`{}`)); r.status != 400 || r.code(t) != "invalid_access_key" {
		t.Fatalf("garbage key header: %d %s", r.status, r.body)
	}
	// Wrong envelope type, wrong devices.
	body, _ := json.Marshal(map[string]any{"message_id": randBytes(16), "envelopes": []env1{{DeviceID: 1, RegistrationID: bob.regID, Type: 1, Content: content}}})
	if r := doReqWith(t, e.url, "PUT", "/v1/sealed/"+bob.account, map[string]string{"Content-Type": "application/json", "Unidentified-Access-Key": base64.StdEncoding.EncodeToString(key)}, body); r.status != 400 {
		t.Fatalf("unsealed type on the sealed endpoint: %d %s", r.status, r.body)
	}
	if r := e.sealedSend(bob.account, key, randBytes(16), []dev{bob, {id: 2, regID: 5}}, content); r.status != 409 {
		t.Fatalf("extra device: %d %s", r.status, r.body)
	}

	msgID := randBytes(16)
	if r := e.sealedSend(bob.account, key, msgID, []dev{bob}, content); r.status != 200 || r.json(t)["duplicate"] != false {
		t.Fatalf("sealed send: %d %s", r.status, r.body)
	}
	if r := e.sealedSend(bob.account, key, msgID, []dev{bob}, content); r.status != 200 || r.json(t)["duplicate"] != true {
		t.Fatalf("repeated sealed send: %d %s", r.status, r.body)
	}

	// What the database holds for it: recipient device, opaque bytes, a
	// coarse time — no sender.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "veil.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var (
		typ        int
		stored     []byte
		sender     sql.NullString
		senderDev  sql.NullInt64
		recvMinute int64
	)
	err = db.QueryRowContext(context.Background(), `SELECT type, content, sender_id, sender_device, received_minute FROM envelopes`).Scan(&typ, &stored, &sender, &senderDev, &recvMinute)
	if err != nil {
		t.Fatal(err)
	}
	if typ != EnvelopeSealed || string(stored) != string(content) || sender.Valid || senderDev.Valid || recvMinute%60 != 0 {
		t.Fatalf("stored sealed envelope: type %d sender %v/%v minute %d", typ, sender, senderDev, recvMinute)
	}

	r := e.do("GET", "/v1/queue", &bob, nil)
	envs := r.json(t)["envelopes"].([]any)
	if len(envs) != 1 {
		t.Fatalf("bob's queue: %s", r.body)
	}
	got := envs[0].(map[string]any)
	if _, ok := got["sender"]; ok || got["type"].(float64) != EnvelopeSealed {
		t.Fatalf("delivered sealed envelope: %s", r.body)
	}

	// Unrestricted: anyone may send, key or not.
	if r := e.do("PUT", "/v1/accounts/me/access", &bob, map[string]any{"access_key": key, "unrestricted": true}); r.status != 204 {
		t.Fatalf("set unrestricted: %d %s", r.status, r.body)
	}
	if r := e.sealedSend(bob.account, nil, randBytes(16), []dev{bob}, content); r.status != 200 {
		t.Fatalf("unrestricted, no key: %d %s", r.status, r.body)
	}
}
