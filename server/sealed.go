package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/veil-e2ee/veil/protocol"
	"github.com/veil-e2ee/veil/server/store"
)

// Sealed sender: the server issues sender certificates and accepts
// envelopes whose sender it does not learn. See docs/API.md ("Sealed
// sender") and docs/PROTOCOL.md.

// EnvelopeSealed is the envelope type of a sealed-sender message (as in
// Signal's Envelope.Type UNIDENTIFIED_SENDER). Sealed sends must use it.
const EnvelopeSealed = 6

// AccessKeyLen is the length of an unidentified-access key.
const AccessKeyLen = 16

// DefaultSenderCertTTL is how long an issued sender certificate is valid.
const DefaultSenderCertTTL = 24 * time.Hour

// maxMultiRecipients bounds one sealed sender v2 send (a 1,000-member
// group with several devices each fits).
const maxMultiRecipients = 5000

// certKeys are the sealed-sender signing keys: the trust root clients pin
// and the server key it certifies.
type certKeys struct {
	root       protocol.KeyPair
	server     protocol.KeyPair
	serverCert []byte
	keyID      uint32
}

// deriveCertKeys derives the trust root and server certificate key from
// the server secret (the same on every node, so every node issues
// certificates that verify against the same root).
func deriveCertKeys(secret []byte, keyID uint32, rand io.Reader) (certKeys, error) {
	key := func(label string) (protocol.KeyPair, error) {
		m := hmac.New(sha256.New, secret)
		fmt.Fprintf(m, "veil server v1 sealed sender %s", label)
		priv, err := protocol.ParsePrivateKey(clamp(m.Sum(nil)))
		if err != nil {
			return protocol.KeyPair{}, err
		}
		return protocol.NewKeyPair(priv), nil
	}
	var k certKeys
	var err error
	if k.root, err = key("trust root"); err != nil {
		return k, err
	}
	if k.server, err = key(fmt.Sprintf("server key %d", keyID)); err != nil {
		return k, err
	}
	k.keyID = keyID
	k.serverCert, err = protocol.NewServerCertificate(k.root, keyID, k.server.Public, rand)
	return k, err
}

func clamp(b []byte) []byte {
	b[0] &= 248
	b[31] &= 127
	b[31] |= 64
	return b
}

// TrustRoot is the public key (33 bytes) that sender certificates chain
// to; clients pin it.
func (s *Server) TrustRoot() []byte { return s.cert.root.Public.Bytes() }

type trustRootResponse struct {
	TrustRoot b64    `json:"trust_root"`
	KeyID     uint32 `json:"key_id"`
}

// handleTrustRoot answers the public key clients pin to check sender
// certificates.
func (s *Server) handleTrustRoot(w http.ResponseWriter, r *http.Request, _ principal) error {
	writeJSON(w, http.StatusOK, trustRootResponse{TrustRoot: s.cert.root.Public.Bytes(), KeyID: s.cert.keyID})
	return nil
}

type senderCertResponse struct {
	Certificate b64   `json:"certificate"`
	Expires     int64 `json:"expires"`
}

// handleSenderCert issues a short-lived sender certificate for the
// calling device: its account id, device id and the account's identity
// key, signed by the server key.
func (s *Server) handleSenderCert(w http.ResponseWriter, r *http.Request, p principal) error {
	acc, err := s.st.Account(r.Context(), p.account)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized // removed between authentication and now
		}
		return err
	}
	ik, err := protocol.ParsePublicKey(acc.IdentityKey)
	if err != nil {
		return newError(http.StatusConflict, "identity_key_unusable", "The account's identity key is not a Curve25519 public key (0x05 and 32 bytes), so no sender certificate can name it.")
	}
	exp := s.now().Add(s.cfg.SenderCertTTL).Truncate(time.Second)
	cert, err := protocol.IssueSenderCertificate(s.cert.server, s.cert.serverCert, p.account.String(), p.device, ik, exp, s.rand)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, senderCertResponse{Certificate: cert, Expires: exp.Unix()})
	return nil
}

type accessRequest struct {
	AccessKey    b64  `json:"access_key"`
	Unrestricted bool `json:"unrestricted"`
}

// handleSetAccess sets the caller's account's unidentified-access key
// (stored as a hash) and whether anyone may send it sealed messages.
func (s *Server) handleSetAccess(w http.ResponseWriter, r *http.Request, p principal) error {
	body, ae := readBody(w, r, 1024)
	if ae != nil {
		return ae
	}
	var req accessRequest
	if e := decodeStrict(body, &req); e != nil {
		return e
	}
	if len(req.AccessKey) != AccessKeyLen {
		return badRequest("invalid_field", "Field \"access_key\" must be %d bytes.", AccessKeyLen)
	}
	h := sha256.Sum256(req.AccessKey)
	if err := s.sealedStore().SetAccess(r.Context(), p.account, store.Access{KeyHash: h[:], Unrestricted: req.Unrestricted}); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var errAccessDenied = newError(http.StatusUnauthorized, "access_denied",
	"Sealed delivery needs the recipient's unidentified-access key (header Unidentified-Access-Key), unless the recipient accepts sealed messages from anyone.")

// sealedStore is the store's SealedAccess (both backends implement it;
// New checks).
func (s *Server) sealedStore() store.SealedAccess { return s.cfg.Store.(store.SealedAccess) }

// allowed reports whether key (nil when absent) opens the account's
// sealed delivery. It takes the same time for an unknown account.
func allowed(a store.Access, found bool, key []byte) bool {
	want := dummyHash[:]
	if found && a.KeyHash != nil {
		want = a.KeyHash
	}
	var got [32]byte
	if len(key) == AccessKeyLen {
		got = sha256.Sum256(key)
	}
	ok := subtle.ConstantTimeCompare(got[:], want) == 1 && len(key) == AccessKeyLen && found && a.KeyHash != nil
	return ok || (found && a.Unrestricted)
}

// handleSealedSend delivers one sealed message to every device of an
// account. There is no sender credential: the access key (or the
// recipient's unrestricted setting) is the authorisation, and nothing
// about the sender is stored.
func (s *Server) handleSealedSend(w http.ResponseWriter, r *http.Request, _ principal) error {
	target, ok := parseAccountID(r.PathValue("account"))
	if !ok {
		return badRequest("invalid_account_id", "The account id in the path must be a lowercase UUID.")
	}
	key, ae := accessKeyHeader(r)
	if ae != nil {
		return ae
	}
	body, ae := readBody(w, r, s.maxSendBody())
	if ae != nil {
		return ae
	}
	req, envs, ae := parseSend(body, s.lim.MaxDevices)
	if ae != nil {
		return ae
	}
	for i, e := range envs {
		if e.Type != EnvelopeSealed {
			return badRequest("invalid_field", "envelopes[%d].type must be %d (sealed sender) on this endpoint.", i, EnvelopeSealed)
		}
	}
	if err := s.limitLocal(r.Context(), "sealed_send", s.lim.SealedSend, []byte(s.clientAddr(r)), target[:]); err != nil {
		return err
	}
	acc, err := s.sealedStore().AccessOf(r.Context(), []store.AccountID{target})
	if err != nil {
		return err
	}
	a, found := acc[target]
	if !allowed(a, found, key) {
		return errAccessDenied
	}
	snd := store.Send{Recipient: target, Envelopes: envs, Now: s.now(), MaxQueue: s.lim.MaxQueue}
	copy(snd.MessageID[:], req.MessageID)
	res, err := s.deliver(r.Context(), snd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sendResponse{Duplicate: res.Duplicate})
	return nil
}

func accessKeyHeader(r *http.Request) ([]byte, *apiError) {
	v := r.Header.Get("Unidentified-Access-Key")
	if v == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil || len(key) != AccessKeyLen {
		return nil, badRequest("invalid_access_key", "Header Unidentified-Access-Key must be %d bytes in standard base64.", AccessKeyLen)
	}
	return key, nil
}

type multiRequest struct {
	MessageID  b64            `json:"message_id"`
	Message    b64            `json:"message"`
	AccessKeys map[string]b64 `json:"access_keys"`
}

// multiMismatch is one recipient's device-list problem in a 409.
type multiMismatch struct {
	Account string   `json:"account"`
	Missing []uint32 `json:"missing"`
	Extra   []uint32 `json:"extra"`
	Stale   []uint32 `json:"stale"`
}

type multiResponse struct {
	// Duplicate lists recipients that already had this message id.
	Duplicate []string `json:"duplicate"`
}

// handleSealedMulti takes one sealed sender v2 message for many
// recipients (one upload for a whole group), checks every recipient's
// access key, and queues each recipient device's share. Recipients are
// stored independently: a retry with the same message id after fixing a
// device list delivers to the rest and is a duplicate for those already
// served.
func (s *Server) handleSealedMulti(w http.ResponseWriter, r *http.Request, _ principal) error {
	body, ae := readBody(w, r, s.maxMultiBody())
	if ae != nil {
		return ae
	}
	req, ae := parseMulti(body, s.lim.MaxDevices)
	if ae != nil {
		return ae
	}
	rcpts, keys, msgID := req.rcpts, req.keys, req.messageID
	if err := s.limitLocal(r.Context(), "sealed_multi", s.lim.SealedMulti, []byte(s.clientAddr(r))); err != nil {
		return err
	}
	ids := make([]store.AccountID, len(rcpts))
	for i, rc := range rcpts {
		ids[i] = rc.account
	}
	access, err := s.sealedStore().AccessOf(r.Context(), ids)
	if err != nil {
		return err
	}
	var denied []string
	for _, rc := range rcpts {
		a, found := access[rc.account]
		if !allowed(a, found, keys[rc.account]) {
			denied = append(denied, rc.account.String())
		}
	}
	if len(denied) > 0 {
		sort.Strings(denied)
		e := *errAccessDenied
		e.extra = map[string]any{"accounts": denied}
		return &e
	}

	// Deliver concurrently so the store can group the commits.
	now := s.now()
	var (
		mu         sync.Mutex
		mismatches []multiMismatch
		dups       = []string{}
		firstErr   error
		wg         sync.WaitGroup
		sem        = make(chan struct{}, 16)
	)
	ctx := r.Context()
	for _, rc := range rcpts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			snd := store.Send{Recipient: rc.account, Envelopes: rc.envs, Now: now, MaxQueue: s.lim.MaxQueue}
			snd.MessageID = msgID
			res, err := s.st.Deliver(ctx, snd)
			var mm *store.DeviceMismatchError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.As(err, &mm):
				mismatches = append(mismatches, multiMismatch{Account: rc.account.String(), Missing: nonNil(mm.Missing), Extra: nonNil(mm.Extra), Stale: nonNil(mm.Stale)})
			case err != nil:
				if firstErr == nil || errors.Is(firstErr, store.ErrQueueFull) {
					firstErr = err
				}
			default:
				s.announce(snd, res)
				if res.Duplicate {
					dups = append(dups, rc.account.String())
				}
			}
		})
	}
	wg.Wait()
	switch {
	case len(mismatches) > 0:
		sort.Slice(mismatches, func(i, j int) bool { return mismatches[i].Account < mismatches[j].Account })
		e := newError(http.StatusConflict, "device_mismatch", "Some recipients' devices differ from the message's; see \"mismatches\". Recipients not listed were served; retry with the same message id after fixing the list.")
		e.extra = map[string]any{"mismatches": mismatches}
		return e
	case errors.Is(firstErr, store.ErrQueueFull):
		e := newError(http.StatusTooManyRequests, "recipient_queue_full", "A recipient device has too many undelivered messages; the others were served. Retry with the same message id after Retry-After seconds.")
		e.retryAfter = s.lim.QueueFullRetry
		return e
	case errors.Is(firstErr, store.ErrNotFound):
		return errAccountNotFound
	case firstErr != nil:
		return firstErr
	}
	sort.Strings(dups)
	writeJSON(w, http.StatusOK, multiResponse{Duplicate: dups})
	return nil
}

// multiRecipient is one recipient account of a sealed sender v2 send and
// the envelopes for its devices.
type multiRecipient struct {
	account store.AccountID
	envs    []store.OutgoingEnvelope
}

// parsedMulti is a validated sealed sender v2 send.
type parsedMulti struct {
	messageID [16]byte
	rcpts     []multiRecipient
	keys      map[store.AccountID][]byte
}

// parseMulti decodes and validates a sealed sender v2 send: the JSON, the
// v2 message (libsignal's format) and the access keys, which must name
// addressed accounts.
func parseMulti(body []byte, maxDevices int) (*parsedMulti, *apiError) {
	var req multiRequest
	if e := decodeStrict(body, &req); e != nil {
		return nil, e
	}
	if len(req.MessageID) != 16 {
		return nil, badRequest("invalid_field", "Field \"message_id\" must be 16 bytes (24 characters of base64).")
	}
	msg, err := protocol.ParseMultiRecipient(req.Message)
	if err != nil {
		return nil, badRequest("invalid_message", "Field \"message\" is not a sealed sender v2 message.")
	}
	var rcpts []multiRecipient
	seen := map[store.AccountID]bool{}
	devices := 0
	for i, mr := range msg.Recipients {
		if len(mr.Devices) == 0 {
			continue // an excluded recipient: nothing to deliver
		}
		if mr.Kind != protocol.ACI {
			return nil, badRequest("invalid_message", "Veil accounts are addressed by their ACI; the message names another kind of identifier.")
		}
		acc := store.AccountID(mr.ServiceID)
		if seen[acc] {
			return nil, badRequest("invalid_message", "The message names a recipient twice.")
		}
		seen[acc] = true
		if len(mr.Devices) > maxDevices {
			return nil, badRequest("invalid_message", "A recipient has more devices than an account can have.")
		}
		rc := multiRecipient{account: acc}
		content := msg.MessageFor(i)
		if len(content) > MaxEnvelopeBytes {
			return nil, newError(http.StatusRequestEntityTooLarge, "envelope_too_large", "A recipient's share is larger than %d bytes.", MaxEnvelopeBytes)
		}
		for _, d := range mr.Devices {
			if d.DeviceID == 0 {
				return nil, badRequest("invalid_message", "The message names device 0.")
			}
			rc.envs = append(rc.envs, store.OutgoingEnvelope{DeviceID: d.DeviceID, RegistrationID: d.RegistrationID, Type: EnvelopeSealed, Content: content})
		}
		devices += len(rc.envs)
		rcpts = append(rcpts, rc)
	}
	if len(rcpts) == 0 || devices > maxMultiRecipients {
		return nil, badRequest("invalid_message", "The message must address between 1 and %d devices.", maxMultiRecipients)
	}
	if len(req.AccessKeys) > len(rcpts) {
		return nil, badRequest("invalid_field", "Field \"access_keys\" names accounts the message does not address.")
	}
	keys := make(map[store.AccountID][]byte, len(req.AccessKeys))
	for k, v := range req.AccessKeys {
		acc, ok := parseAccountID(k)
		if !ok || !seen[acc] || len(v) != AccessKeyLen {
			return nil, badRequest("invalid_field", "Field \"access_keys\" must map addressed account ids to %d-byte keys.", AccessKeyLen)
		}
		keys[acc] = v
	}
	out := &parsedMulti{rcpts: rcpts, keys: keys}
	copy(out.messageID[:], req.MessageID)
	return out, nil
}

// maxMultiBody bounds a sealed sender v2 send: the shared ciphertext and a
// per-device header (~50 bytes) for every device, base64, plus the access
// keys.
func (s *Server) maxMultiBody() int64 {
	return (MaxEnvelopeBytes+maxMultiRecipients*120)*4/3 + maxMultiRecipients*70 + 4096
}
