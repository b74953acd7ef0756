package server

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/wake"
)

// Body limits per endpoint.
const (
	maxKeysBody = 1 << 20  // 100 KEM keys of ~1.6 KiB in base64, plus EC keys
	maxAckBody  = 64 << 10 // 1,000 seqs
)

func (s *Server) maxSendBody() int64 {
	// Every envelope at its maximum, in base64, plus framing.
	return int64(s.lim.MaxDevices)*(MaxEnvelopeBytes*4/3+256) + 4096
}

type registerResponse struct {
	AccountID  string `json:"account_id"`
	DeviceID   uint32 `json:"device_id"`
	Credential string `json:"credential"`
}

// newCredential draws a device credential; the server keeps only its hash.
func (s *Server) newCredential() ([]byte, error) {
	c := make([]byte, credentialLen)
	if _, err := io.ReadFull(s.rand, c); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request, _ principal) error {
	body, ae := readBody(w, r, maxKeysBody)
	if ae != nil {
		return ae
	}
	req, up, ae := parseRegister(body)
	if ae != nil {
		return ae
	}
	if err := s.limit(r.Context(), "register", s.lim.Register, []byte(s.clientAddr(r))); err != nil {
		return err
	}
	var id store.AccountID
	if _, err := io.ReadFull(s.rand, id[:]); err != nil {
		return err
	}
	id[6] = id[6]&0x0f | 0x40 // RFC 9562 version 4
	id[8] = id[8]&0x3f | 0x80 // variant
	cred, err := s.newCredential()
	if err != nil {
		return err
	}
	_, err = s.st.CreateAccount(r.Context(), store.NewAccount{
		ID: id, Username: req.Username, IdentityKey: req.IdentityKey, RegistrationID: req.RegistrationID,
		CredentialHash: CredentialHash(cred), PreKeys: up, Now: s.now(),
	})
	if errors.Is(err, store.ErrUsernameTaken) {
		return errUsernameTaken
	}
	if err != nil {
		return err
	}
	s.log.Info("server: account registered", "account", s.keys.logID(id))
	s.auditEvent(evAccountCreated, &id, 1)
	writeJSON(w, http.StatusCreated, registerResponse{AccountID: id.String(), DeviceID: 1, Credential: base64.StdEncoding.EncodeToString(cred)})
	return nil
}

type lookupResponse struct {
	AccountID   string `json:"account_id"`
	IdentityKey b64    `json:"identity_key"`
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request, p principal) error {
	name := r.PathValue("username")
	if !validUsername(name) {
		return badRequest("invalid_username", "A username is 3 to 32 characters: lowercase letters a-z, digits and underscore, starting with a letter.")
	}
	if err := s.limit(r.Context(), "lookup", s.lim.Lookup, p.account[:]); err != nil {
		return err
	}
	a, err := s.st.AccountByUsername(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return errAccountNotFound
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lookupResponse{AccountID: a.ID.String(), IdentityKey: a.IdentityKey})
	return nil
}

type deviceJSON struct {
	DeviceID       uint32 `json:"device_id"`
	RegistrationID uint32 `json:"registration_id"`
	Created        string `json:"created"`
	LastSeen       string `json:"last_seen"`
	Name           b64    `json:"name,omitempty"` // encrypted by the devices; opaque here
	// Compliance marks the compliance device of a legal hold (its
	// certificate); no other device has it.
	Compliance *holdCertJSON `json:"compliance,omitempty"`
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func (s *Server) handleListDevices(w http.ResponseWriter, r *http.Request, p principal) error {
	ds, err := s.st.Devices(r.Context(), p.account)
	if err != nil {
		return err
	}
	out := struct {
		Devices []deviceJSON `json:"devices"`
	}{Devices: make([]deviceJSON, 0, len(ds))}
	var names map[uint32][]byte
	if n, ok := s.cfg.Store.(store.DeviceNamer); ok {
		if names, err = n.DeviceNames(r.Context(), p.account); err != nil {
			return err
		}
	}
	certs, err := s.complianceCerts(r.Context(), p.account)
	if err != nil {
		return err
	}
	for _, d := range ds {
		out.Devices = append(out.Devices, deviceJSON{DeviceID: d.DeviceID, RegistrationID: d.RegistrationID, Created: day(d.CreatedAt), LastSeen: day(d.LastSeen),
			Name: names[d.DeviceID], Compliance: certs[d.DeviceID]})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type linkResponse struct {
	DeviceID   uint32 `json:"device_id"`
	Credential string `json:"credential"`
}

func (s *Server) handleLinkDevice(w http.ResponseWriter, r *http.Request, p principal) error {
	body, ae := readBody(w, r, maxKeysBody)
	if ae != nil {
		return ae
	}
	req, up, ae := parseLink(body)
	if ae != nil {
		return ae
	}
	if err := s.limit(r.Context(), "link", s.lim.Link, p.account[:]); err != nil {
		return err
	}
	cred, err := s.newCredential()
	if err != nil {
		return err
	}
	d, err := s.st.AddDevice(r.Context(), p.account, store.NewDevice{
		RegistrationID: req.RegistrationID, CredentialHash: CredentialHash(cred), PreKeys: up, Now: s.now(),
	}, s.lim.MaxDevices)
	switch {
	case errors.Is(err, store.ErrDeviceLimit):
		return errDeviceLimit
	case err != nil:
		return err
	}
	s.log.Info("server: device linked", "account", s.keys.logID(p.account), "device", d.DeviceID)
	s.auditEvent(evDeviceLinked, &p.account, d.DeviceID)
	writeJSON(w, http.StatusCreated, linkResponse{DeviceID: d.DeviceID, Credential: base64.StdEncoding.EncodeToString(cred)})
	return nil
}

func (s *Server) handleRemoveDevice(w http.ResponseWriter, r *http.Request, p principal) error {
	dev, ok := parseDeviceID(r.PathValue("device"))
	if !ok {
		return badRequest("invalid_device_id", "The device id in the path must be a positive decimal number.")
	}
	if d, err := s.st.Device(r.Context(), p.account, dev); err == nil && d.Compliance {
		return errComplianceDev
	}
	if err := s.st.RemoveDevice(r.Context(), p.account, dev); errors.Is(err, store.ErrNotFound) {
		return errDeviceNotFound
	} else if err != nil {
		return err
	}
	s.auth.forget(authKey{account: p.account, device: dev})
	// Close the removed device's connections on every node.
	s.notify(wake.Signal{Key: s.keys.wakeKey(p.account, dev), Takeover: takeoverAll})
	s.log.Info("server: device removed", "account", s.keys.logID(p.account), "device", dev)
	s.auditEvent(evDeviceRemoved, &p.account, dev, "reason", "removed_by_user")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type countsResponse struct {
	OneTimePreKeys    int `json:"one_time_prekeys"`
	OneTimeKEMPreKeys int `json:"one_time_kem_prekeys"`
}

func (s *Server) writeCounts(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.st.PreKeyCounts(r.Context(), p.account, p.device)
	if err != nil {
		return err
	}
	s.m.prekeyStock.WithLabelValues("ec").Observe(float64(c.EC))
	s.m.prekeyStock.WithLabelValues("kem").Observe(float64(c.KEM))
	writeJSON(w, http.StatusOK, countsResponse{OneTimePreKeys: c.EC, OneTimeKEMPreKeys: c.KEM})
	return nil
}

func (s *Server) handleUploadPreKeys(w http.ResponseWriter, r *http.Request, p principal) error {
	body, ae := readBody(w, r, maxKeysBody)
	if ae != nil {
		return ae
	}
	up, ae := parseUpload(body)
	if ae != nil {
		return ae
	}
	if err := s.st.StorePreKeys(r.Context(), p.account, p.device, up); err != nil {
		return err
	}
	return s.writeCounts(w, r, p)
}

func (s *Server) handlePreKeyCounts(w http.ResponseWriter, r *http.Request, p principal) error {
	return s.writeCounts(w, r, p)
}

type bundleJSON struct {
	DeviceID        uint32           `json:"device_id"`
	RegistrationID  uint32           `json:"registration_id"`
	SignedPreKey    signedPreKeyJSON `json:"signed_prekey"`
	PreKey          *preKeyJSON      `json:"prekey,omitempty"`
	KEMPreKey       signedPreKeyJSON `json:"kem_prekey"`
	KEMIsLastResort bool             `json:"kem_is_last_resort"`
	// Compliance, for the compliance device of a legal hold, is its
	// certificate: its keys are signed by its own identity key.
	Compliance *holdCertJSON `json:"compliance,omitempty"`
}

type bundlesResponse struct {
	AccountID   string       `json:"account_id"`
	IdentityKey b64          `json:"identity_key"`
	Devices     []bundleJSON `json:"devices"`
	// SealedFromAnyone: the account takes sealed messages without an
	// access key (so a sender who lacks its profile key can still seal).
	SealedFromAnyone bool `json:"sealed_from_anyone"`
}

func (s *Server) handleBundles(w http.ResponseWriter, r *http.Request, p principal) error {
	target, ok := parseAccountID(r.PathValue("account"))
	if !ok {
		return badRequest("invalid_account_id", "The account id in the path must be a lowercase UUID.")
	}
	var dev uint32
	if ds := r.PathValue("device"); ds != "" {
		if dev, ok = parseDeviceID(ds); !ok {
			return badRequest("invalid_device_id", "The device id in the path must be a positive decimal number.")
		}
	}
	if err := s.limit(r.Context(), "prekeys", s.lim.PreKeyFetch, p.account[:], target[:]); err != nil {
		return err
	}
	acc, err := s.st.Account(r.Context(), target)
	if errors.Is(err, store.ErrNotFound) {
		return errAccountNotFound
	} else if err != nil {
		return err
	}
	bs, err := s.st.TakeBundles(r.Context(), target, dev)
	if errors.Is(err, store.ErrNotFound) {
		if dev != 0 {
			return errDeviceNotFound
		}
		return errAccountNotFound
	} else if err != nil {
		return err
	}
	access, err := s.sealedStore().AccessOf(r.Context(), []store.AccountID{target})
	if err != nil {
		return err
	}
	certs, err := s.complianceCerts(r.Context(), target)
	if err != nil {
		return err
	}
	out := bundlesResponse{AccountID: target.String(), IdentityKey: acc.IdentityKey, Devices: make([]bundleJSON, 0, len(bs)),
		SealedFromAnyone: access[target].Unrestricted}
	for _, b := range bs {
		bj := bundleJSON{
			DeviceID: b.DeviceID, RegistrationID: b.RegistrationID,
			SignedPreKey:    signedPreKeyJSON{KeyID: b.SignedPreKey.KeyID, PublicKey: b.SignedPreKey.PublicKey, Signature: b.SignedPreKey.Signature},
			KEMPreKey:       signedPreKeyJSON{KeyID: b.KEM.KeyID, PublicKey: b.KEM.PublicKey, Signature: b.KEM.Signature},
			KEMIsLastResort: b.KEMIsLastResort, Compliance: certs[b.DeviceID],
		}
		if b.PreKey != nil {
			bj.PreKey = &preKeyJSON{KeyID: b.PreKey.KeyID, PublicKey: b.PreKey.PublicKey}
		}
		if b.KEMIsLastResort {
			s.m.lastResort.Inc()
			s.auditEvent(evPreKeysExhausted, &target, b.DeviceID, "kind", "kem_one_time")
		}
		out.Devices = append(out.Devices, bj)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type sendResponse struct {
	Duplicate bool `json:"duplicate"`
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request, p principal) error {
	target, ok := parseAccountID(r.PathValue("account"))
	if !ok {
		return badRequest("invalid_account_id", "The account id in the path must be a lowercase UUID.")
	}
	body, ae := readBody(w, r, s.maxSendBody())
	if ae != nil {
		return ae
	}
	req, envs, ae := parseSend(body, s.lim.MaxDevices)
	if ae != nil {
		return ae
	}
	if err := s.limitLocal(r.Context(), "send", s.lim.Send, p.account[:], binaryDevice(p.device)); err != nil {
		return err
	}
	now := s.now()
	snd := store.Send{Recipient: target, Envelopes: envs, Now: now, MaxQueue: s.lim.MaxQueue}
	copy(snd.MessageID[:], req.MessageID)
	if !req.Sealed {
		snd.Sender, snd.SenderDevice = p.account, p.device
	}
	if target == p.account {
		snd.ExcludeDevice = p.device
	}
	res, err := s.deliver(r.Context(), snd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sendResponse{Duplicate: res.Duplicate})
	return nil
}

// deliver stores one send and wakes the recipient's devices; store
// refusals become the API's errors (409/410, 404, 429).
func (s *Server) deliver(ctx context.Context, snd store.Send) (store.SendResult, error) {
	res, err := s.st.Deliver(ctx, snd)
	var mm *store.DeviceMismatchError
	switch {
	case errors.As(err, &mm):
		if len(mm.Missing) > 0 || len(mm.Extra) > 0 {
			e := newError(http.StatusConflict, "device_mismatch", "The envelopes do not address exactly the recipient's current devices; see \"missing\" and \"extra\".")
			e.extra = map[string]any{"missing": nonNil(mm.Missing), "extra": nonNil(mm.Extra)}
			return res, e
		}
		e := newError(http.StatusGone, "stale_devices", "Some envelopes name a registration id that is no longer current; see \"stale\".")
		e.extra = map[string]any{"stale": nonNil(mm.Stale)}
		return res, e
	case errors.Is(err, store.ErrNotFound):
		return res, errAccountNotFound
	case errors.Is(err, store.ErrQueueFull):
		e := newError(http.StatusTooManyRequests, "recipient_queue_full", "A device of the recipient has too many undelivered messages; nothing was stored. Retry after Retry-After seconds.")
		e.retryAfter = s.lim.QueueFullRetry
		return res, e
	case errors.Is(err, store.ErrInvalid):
		return res, badRequest("invalid_field", "The envelopes are not acceptable.")
	case err != nil:
		return res, err
	}
	s.announce(snd, res)
	return res, nil
}

// announce wakes the devices a stored send addressed, handing the
// envelopes to connections on this node.
func (s *Server) announce(snd store.Send, res store.SendResult) {
	target, envs, now := snd.Recipient, snd.Envelopes, snd.Now
	if res.Duplicate {
		s.m.duplicates.Inc()
		// The first attempt may have died before waking anyone.
		for _, e := range envs {
			s.notify(wake.Signal{Key: s.keys.wakeKey(target, e.DeviceID)})
		}
	} else {
		s.m.accepted.Add(float64(len(envs)))
		committed := time.Now().UnixNano()
		for i, e := range envs {
			sig := wake.Signal{Key: s.keys.wakeKey(target, e.DeviceID), CommitUnixNano: committed}
			if i < len(res.Seqs) {
				sig.Seq = res.Seqs[i]
				// The envelope exactly as the store will return it.
				s.pushLocal(sig.Key, &localEnvelope{commit: committed, env: store.Envelope{
					Seq: sig.Seq, MessageID: snd.MessageID, Recipient: target, DeviceID: e.DeviceID, Type: e.Type,
					Sender: snd.Sender, SenderDevice: snd.SenderDevice, Content: e.Content,
					ReceivedAt: now.UTC().Truncate(time.Minute),
				}})
			}
			s.notify(sig)
		}
	}
}

func nonNil(v []uint32) []uint32 {
	if v == nil {
		return []uint32{}
	}
	return v
}

func binaryDevice(d uint32) []byte {
	return []byte{byte(d >> 24), byte(d >> 16), byte(d >> 8), byte(d)}
}

// notify publishes a wake signal; a failure only delays delivery.
func (s *Server) notify(sig wake.Signal) {
	if err := s.waker.Notify(s.baseCtx, sig); err != nil && s.baseCtx.Err() == nil {
		s.m.wakeErrors.Inc()
		s.log.Warn("server: wake notify failed", redactErr(err))
	}
}

// envelopeJSON is a queued envelope as pushed or fetched.
type envelopeJSON struct {
	Seq          int64  `json:"seq"`
	MessageID    b64    `json:"message_id"`
	Type         uint8  `json:"type"`
	Sender       string `json:"sender,omitempty"`
	SenderDevice uint32 `json:"sender_device,omitempty"`
	Content      b64    `json:"content"`
	ReceivedAt   int64  `json:"received_at"`
}

func toEnvelopeJSON(e store.Envelope) envelopeJSON {
	out := envelopeJSON{Seq: e.Seq, MessageID: e.MessageID[:], Type: e.Type, Content: e.Content, ReceivedAt: e.ReceivedAt.Unix()}
	if e.Sender != (store.AccountID{}) {
		out.Sender = e.Sender.String()
		out.SenderDevice = e.SenderDevice
	}
	return out
}

type fetchResponse struct {
	Envelopes []envelopeJSON `json:"envelopes"`
	More      bool           `json:"more"`
}

func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	for k := range q {
		if k != "after" && k != "limit" {
			return badRequest("unknown_parameter", "Unknown query parameter; this endpoint takes \"after\" and \"limit\".")
		}
	}
	after, limit := int64(0), 100
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("invalid_parameter", "Parameter \"after\" must be a non-negative integer.")
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("invalid_parameter", "Parameter \"limit\" must be between 1 and 1000.")
		}
		limit = n
	}
	envs, err := s.st.Pending(r.Context(), p.account, p.device, after, limit+1)
	if err != nil {
		return err
	}
	out := fetchResponse{Envelopes: make([]envelopeJSON, 0, min(len(envs), limit))}
	for i, e := range envs {
		if i == limit {
			out.More = true
			break
		}
		out.Envelopes = append(out.Envelopes, toEnvelopeJSON(e))
	}
	if after == 0 {
		if d, err := s.st.QueueDepth(r.Context(), p.account, p.device); err == nil {
			s.m.queueDepth.Observe(float64(d))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleAck(w http.ResponseWriter, r *http.Request, p principal) error {
	body, ae := readBody(w, r, maxAckBody)
	if ae != nil {
		return ae
	}
	seqs, ae := parseAck(body)
	if ae != nil {
		return ae
	}
	if err := s.ackMany(r.Context(), p, seqs); err != nil {
		return err
	}
	s.m.acked.Add(float64(len(seqs)))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ackMany deletes several envelopes of one device: in one store call when
// the store supports it, else with concurrent deletes, which a store that
// commits writes in groups (SQLite here) still commits together.
func (s *Server) ackMany(ctx context.Context, p principal, seqs []int64) error {
	if len(seqs) == 1 {
		return s.st.Ack(ctx, p.account, p.device, seqs[0])
	}
	if s.batcher != nil {
		start := time.Now()
		err := s.batcher.AckBatch(ctx, p.account, p.device, seqs)
		timedStore{m: s.m}.obs("ack_batch", start, err)
		return err
	}
	errs := make([]error, len(seqs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, seq := range seqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = s.st.Ack(ctx, p.account, p.device, seq)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request, _ principal) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request, _ principal) error {
	if !s.Ready() {
		writeError(w, errUnavailable)
		return nil
	}
	if err := s.st.Ping(r.Context()); err != nil {
		s.log.Warn("server: readiness ping failed", redactErr(err))
		writeError(w, errUnavailable)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
