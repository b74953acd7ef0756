package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// client is the smallest client that does the real thing: keys generated
// on the device and kept in its encrypted device store
// (client/devicestore), PQXDH sessions from server bundles, envelopes over
// HTTP, delivery over WebSocket, and each received message decrypted and
// stored together with the new ratchet state in one transaction before it
// is acknowledged. (The full SDK adds fan-out to every device, retries,
// the outbox, key maintenance and more.)
type client struct {
	name    string
	base    string // server URL
	http    *http.Client
	id      protocol.IdentityKeyPair
	regID   uint32
	db      *devicestore.Store
	account string
	device  uint32
	cred    string
}

func newClient(ctx context.Context, name, base, dir, passphrase string) (*client, error) {
	id, err := protocol.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		return nil, err
	}
	reg, err := protocol.GenerateRegistrationID(rand.Reader)
	if err != nil {
		return nil, err
	}
	db, err := devicestore.Create(ctx, dir, devicestore.Passphrase(passphrase))
	if err != nil {
		return nil, err
	}
	if err := db.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetLocalIdentity(ctx, id, reg) }); err != nil {
		db.Close()
		return nil, err
	}
	return &client{name: name, base: base, http: &http.Client{Timeout: 10 * time.Second}, id: id, regID: reg, db: db}, nil
}

// update runs fn in one device-store transaction, with a Cipher whose
// stores are that transaction: ratchet state and whatever fn stores
// commit together, or not at all.
func (c *client) update(ctx context.Context, fn func(tx *devicestore.Tx, cipher *protocol.Cipher) error) error {
	return c.db.Update(ctx, func(tx *devicestore.Tx) error {
		return fn(tx, protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil))
	})
}

type keyJSON struct {
	KeyID     uint32 `json:"key_id"`
	PublicKey []byte `json:"public_key"`
	Signature []byte `json:"signature,omitempty"`
}

// register creates the account with a signed prekey, a last-resort Kyber
// prekey and a few one-time keys of each kind; only public halves leave
// the device.
func (c *client) register(ctx context.Context) error {
	now := time.Now()
	spk, err := protocol.GenerateSignedPreKey(rand.Reader, c.id, 1, now)
	if err != nil {
		return err
	}
	lastResort, err := protocol.GenerateKyberPreKey(rand.Reader, c.id, 1, true, now)
	if err != nil {
		return err
	}
	otks, err := protocol.GeneratePreKeys(rand.Reader, 100, 5)
	if err != nil {
		return err
	}
	req := map[string]any{
		"username": c.name, "identity_key": c.id.Public.Bytes(), "registration_id": c.regID,
		"signed_prekey":          keyJSON{spk.ID, spk.KeyPair.Public.Bytes(), spk.Signature},
		"last_resort_kem_prekey": keyJSON{lastResort.ID, lastResort.KeyPair.Public.Bytes(), lastResort.Signature},
	}
	var ecs, kems []keyJSON
	var kyber []protocol.KyberPreKeyRecord
	for _, k := range otks {
		ecs = append(ecs, keyJSON{KeyID: k.ID, PublicKey: k.KeyPair.Public.Bytes()})
	}
	for i := uint32(0); i < 5; i++ {
		k, err := protocol.GenerateKyberPreKey(rand.Reader, c.id, 200+i, false, now)
		if err != nil {
			return err
		}
		kems = append(kems, keyJSON{k.ID, k.KeyPair.Public.Bytes(), k.Signature})
		kyber = append(kyber, k)
	}
	req["one_time_prekeys"], req["one_time_kem_prekeys"] = ecs, kems
	// The private halves are stored before the public ones are published.
	err = c.db.Update(ctx, func(tx *devicestore.Tx) error {
		for _, k := range otks {
			if err := tx.StorePreKey(ctx, k); err != nil {
				return err
			}
		}
		for _, k := range append(kyber, lastResort) {
			if err := tx.StoreKyberPreKey(ctx, k); err != nil {
				return err
			}
		}
		return tx.StoreSignedPreKey(ctx, spk)
	})
	if err != nil {
		return err
	}
	var resp struct {
		AccountID  string `json:"account_id"`
		DeviceID   uint32 `json:"device_id"`
		Credential string `json:"credential"`
	}
	if err := c.call(ctx, "POST", "/v1/accounts", req, &resp); err != nil {
		return err
	}
	cred, err := base64.StdEncoding.DecodeString(resp.Credential)
	if err != nil {
		return err
	}
	c.account, c.device, c.cred = resp.AccountID, resp.DeviceID, resp.Credential
	return c.db.Update(ctx, func(tx *devicestore.Tx) error {
		return tx.SetAccount(ctx, devicestore.Account{AccountID: resp.AccountID, DeviceID: resp.DeviceID,
			Username: c.name, ServerURL: c.base, Credential: cred, CreatedAt: now})
	})
}

// apiError is the server's JSON error.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("server: %d %s: %s", e.Status, e.Code, e.Message)
}

func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cred != "" {
		req.SetBasicAuth(fmt.Sprintf("%s.%d", c.account, c.device), c.cred)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error apiError `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		e.Error.Status = resp.StatusCode
		return &e.Error
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// contact is what a lookup returns.
type contact struct {
	AccountID   string `json:"account_id"`
	IdentityKey []byte `json:"identity_key"`
}

func (c *client) lookup(ctx context.Context, username string) (contact, error) {
	var ct contact
	err := c.call(ctx, "GET", "/v1/usernames/"+username, nil, &ct)
	return ct, err
}

// startSessions fetches bundles for every device of account and runs
// PQXDH with each.
func (c *client) startSessions(ctx context.Context, account string) error {
	var resp struct {
		IdentityKey []byte `json:"identity_key"`
		Devices     []struct {
			DeviceID       uint32   `json:"device_id"`
			RegistrationID uint32   `json:"registration_id"`
			SignedPreKey   keyJSON  `json:"signed_prekey"`
			PreKey         *keyJSON `json:"prekey"`
			KEMPreKey      keyJSON  `json:"kem_prekey"`
		} `json:"devices"`
	}
	if err := c.call(ctx, "GET", "/v1/bundles/"+account, nil, &resp); err != nil {
		return err
	}
	ik, err := protocol.ParsePublicKey(resp.IdentityKey)
	if err != nil {
		return err
	}
	var bundles []*protocol.PreKeyBundle
	for _, d := range resp.Devices {
		spk, err := protocol.ParsePublicKey(d.SignedPreKey.PublicKey)
		if err != nil {
			return err
		}
		kem, err := protocol.ParseKEMPublicKey(d.KEMPreKey.PublicKey)
		if err != nil {
			return err
		}
		b := &protocol.PreKeyBundle{
			RegistrationID: d.RegistrationID, DeviceID: d.DeviceID, IdentityKey: ik,
			SignedPreKeyID: d.SignedPreKey.KeyID, SignedPreKey: spk, SignedPreKeySignature: d.SignedPreKey.Signature,
			KyberPreKeyID: d.KEMPreKey.KeyID, KyberPreKey: kem, KyberPreKeySignature: d.KEMPreKey.Signature,
		}
		if d.PreKey != nil {
			pk, err := protocol.ParsePublicKey(d.PreKey.PublicKey)
			if err != nil {
				return err
			}
			b.HasPreKey, b.PreKeyID, b.PreKey = true, d.PreKey.KeyID, pk
		}
		bundles = append(bundles, b)
	}
	return c.update(ctx, func(_ *devicestore.Tx, cipher *protocol.Cipher) error {
		for _, b := range bundles {
			if err := cipher.ProcessPreKeyBundle(ctx, protocol.Address{Name: account, DeviceID: b.DeviceID}, b); err != nil {
				return err
			}
		}
		return nil
	})
}

// send encrypts text for every device of account (one device each in the
// demo) and hands the envelopes to the server under a fresh message id.
func (c *client) send(ctx context.Context, account string, devices []uint32, text string) error {
	encrypt := func() (envs []map[string]any, err error) {
		err = c.update(ctx, func(tx *devicestore.Tx, cipher *protocol.Cipher) error {
			for _, d := range devices {
				addr := protocol.Address{Name: account, DeviceID: d}
				ct, err := cipher.Encrypt(ctx, addr, []byte(text))
				if err != nil {
					return err
				}
				rec, err := tx.LoadSession(ctx, addr)
				if err != nil {
					return err
				}
				reg, _ := rec.RemoteRegistrationID()
				envs = append(envs, map[string]any{"device_id": d, "registration_id": reg, "type": uint8(ct.Type), "content": ct.Body})
			}
			return nil
		})
		return envs, err
	}
	envs, err := encrypt()
	if errors.Is(err, protocol.ErrNoSession) {
		if err := c.startSessions(ctx, account); err != nil {
			return err
		}
		envs, err = encrypt()
	}
	if err != nil {
		return err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	return c.call(ctx, "PUT", "/v1/messages/"+account, map[string]any{"message_id": id, "envelopes": envs}, nil)
}

// received is one decrypted message.
type received struct {
	From, Text string
	Type       protocol.MessageType
	Bytes      int
}

// receive connects the device's WebSocket and decrypts until it has n
// messages, acknowledging each only after it is decrypted and stored.
func (c *client) receive(ctx context.Context, n int) ([]received, error) {
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%s.%d:%s", c.account, c.device, c.cred))))
	url := "ws" + c.base[len("http"):] + "/v1/queue/websocket"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, err
	}
	defer conn.CloseNow()
	var out []received
	for len(out) < n {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return out, err
		}
		var f struct {
			Type     string `json:"type"`
			Envelope struct {
				Seq          int64  `json:"seq"`
				MessageID    []byte `json:"message_id"`
				Type         uint8  `json:"type"`
				Sender       string `json:"sender"`
				SenderDevice uint32 `json:"sender_device"`
				Content      []byte `json:"content"`
			} `json:"envelope"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return out, err
		}
		if f.Type != "envelope" {
			continue
		}
		e := f.Envelope
		from := protocol.Address{Name: e.Sender, DeviceID: e.SenderDevice}
		// Decrypt and store the message with the new ratchet state in one
		// transaction; acknowledge only after it commits.
		var pt []byte
		err = c.update(ctx, func(tx *devicestore.Tx, cipher *protocol.Cipher) error {
			var err error
			pt, err = cipher.Decrypt(ctx, from, protocol.CiphertextMessage{Type: protocol.MessageType(e.Type), Body: e.Content})
			if err != nil {
				return err
			}
			conv, err := tx.Conversation(ctx, e.Sender)
			if err != nil {
				return err
			}
			now := time.Now()
			_, err = tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: e.Sender, SenderDevice: e.SenderDevice,
				MessageID: e.MessageID, Body: pt, SentAt: now, ReceivedAt: now})
			return err
		})
		switch {
		case err == nil:
			out = append(out, received{From: e.Sender, Text: string(pt), Type: protocol.MessageType(e.Type), Bytes: len(e.Content)})
		case errors.Is(err, protocol.ErrDuplicateMessage), errors.Is(err, devicestore.ErrDuplicate):
			// Already stored: a redelivery. Acknowledge, show nothing new.
		default:
			return out, fmt.Errorf("decrypting envelope %d: %w", e.Seq, err)
		}
		ack, _ := json.Marshal(map[string]any{"type": "ack", "seq": e.Seq})
		if err := conn.Write(ctx, websocket.MessageText, ack); err != nil {
			return out, err
		}
	}
	conn.Close(websocket.StatusNormalClosure, "done")
	return out, nil
}

// storedMessages counts the messages in the device store.
func (c *client) storedMessages(ctx context.Context) (int, error) {
	convs, err := c.db.Conversations(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, cv := range convs {
		ms, err := c.db.Messages(ctx, cv.ID, 0, 1000)
		if err != nil {
			return 0, err
		}
		n += len(ms)
	}
	return n, nil
}
