package server

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/wake"
)

// Linking a device (docs/API.md, "Linking"): an existing device mints a
// one-time link token and leaves a sealed provisioning message (which
// carries the token) in a relay slot named by the new device; the new
// device takes the message and spends the token to add itself. The
// server sees only ciphertext, a random slot id and the token's hash.

const (
	linkTokenTTL       = 10 * time.Minute
	provisioningTTL    = 10 * time.Minute
	maxProvisioningMsg = 16 << 10 // bytes of sealed message
	linkTokenSize      = 32
)

var (
	errNoProvisioning      = newError(http.StatusNotFound, "provisioning_not_found", "Nothing has been left for this link code yet (or it expired); ask the existing device to approve the code.")
	errProvisioningExists  = newError(http.StatusConflict, "provisioning_exists", "A message was already left for this link code; make a new code on the new device.")
	errInvalidLinkToken    = newError(http.StatusForbidden, "invalid_link_token", "The link token is unknown, used or expired; approve the new device again.")
	errLinkingUnsupported  = newError(http.StatusNotImplemented, "not_supported", "This server's store does not support linking devices.")
	errInvalidProvisioning = badRequest("invalid_provisioning_id", "The provisioning id in the path must be 16 bytes in unpadded base64url (22 characters).")
)

// provisioner is the configured store's Provisioner (the metrics wrapper
// around the store does not time these rare calls).
func (s *Server) provisioner() (store.Provisioner, error) {
	if p, ok := s.cfg.Store.(store.Provisioner); ok {
		return p, nil
	}
	return nil, errLinkingUnsupported
}

// relayHash parses a relay id from the path and hashes it.
func relayHash(r *http.Request) ([]byte, *apiError) {
	id, err := base64.RawURLEncoding.Strict().DecodeString(r.PathValue("id"))
	if err != nil || len(id) != 16 {
		return nil, errInvalidProvisioning
	}
	h := sha256.Sum256(id)
	return h[:], nil
}

type linkTokenResponse struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"`
}

func (s *Server) handleLinkToken(w http.ResponseWriter, r *http.Request, p principal) error {
	pv, err := s.provisioner()
	if err != nil {
		return err
	}
	if err := s.limit(r.Context(), "link", s.lim.Link, p.account[:]); err != nil {
		return err
	}
	tok := make([]byte, linkTokenSize)
	if _, err := s.rand.Read(tok); err != nil {
		return err
	}
	h := sha256.Sum256(tok)
	if err := pv.CreateLinkToken(r.Context(), h[:], p.account, s.now().Add(linkTokenTTL)); err != nil {
		return err
	}
	s.log.Info("server: link token issued", "account", s.keys.logID(p.account))
	writeJSON(w, http.StatusCreated, linkTokenResponse{Token: base64.StdEncoding.EncodeToString(tok), ExpiresIn: int(linkTokenTTL / time.Second)})
	return nil
}

type provisioningJSON struct {
	Message b64 `json:"message"`
}

func (s *Server) handlePutProvisioning(w http.ResponseWriter, r *http.Request, p principal) error {
	pv, err := s.provisioner()
	if err != nil {
		return err
	}
	h, ae := relayHash(r)
	if ae != nil {
		return ae
	}
	body, ae := readBody(w, r, 4*maxProvisioningMsg/3+1024)
	if ae != nil {
		return ae
	}
	var req provisioningJSON
	if ae := decodeStrict(body, &req); ae != nil {
		return ae
	}
	if len(req.Message) == 0 || len(req.Message) > maxProvisioningMsg {
		return badRequest("invalid_field", "Field \"message\" must hold 1 to %d bytes.", maxProvisioningMsg)
	}
	if err := s.limit(r.Context(), "link", s.lim.Link, p.account[:]); err != nil {
		return err
	}
	if err := pv.PutProvisioning(r.Context(), h, req.Message, s.now().Add(provisioningTTL)); errors.Is(err, store.ErrExists) {
		return errProvisioningExists
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleTakeProvisioning(w http.ResponseWriter, r *http.Request, _ principal) error {
	pv, err := s.provisioner()
	if err != nil {
		return err
	}
	h, ae := relayHash(r)
	if ae != nil {
		return ae
	}
	if err := s.limit(r.Context(), "provisioning", s.lim.Lookup, []byte(s.clientAddr(r))); err != nil {
		return err
	}
	msg, err := pv.TakeProvisioning(r.Context(), h, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return errNoProvisioning
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, provisioningJSON{Message: msg})
	return nil
}

type linkWithTokenRequest struct {
	LinkToken      b64    `json:"link_token"`
	RegistrationID uint32 `json:"registration_id"`
	keysJSON
}

// parseLinkWithToken decodes and validates a new device's body.
func parseLinkWithToken(body []byte) (linkWithTokenRequest, store.PreKeyUpload, *apiError) {
	var req linkWithTokenRequest
	if ae := decodeStrict(body, &req); ae != nil {
		return req, store.PreKeyUpload{}, ae
	}
	if len(req.LinkToken) != linkTokenSize {
		return req, store.PreKeyUpload{}, badRequest("invalid_field", "Field \"link_token\" must hold %d bytes.", linkTokenSize)
	}
	if ae := checkRegistrationID(req.RegistrationID); ae != nil {
		return req, store.PreKeyUpload{}, ae
	}
	up, ae := req.keysJSON.toStore(true)
	return req, up, ae
}

type linkedResponse struct {
	AccountID  string `json:"account_id"`
	DeviceID   uint32 `json:"device_id"`
	Credential string `json:"credential"`
}

func (s *Server) handleLinkWithToken(w http.ResponseWriter, r *http.Request, _ principal) error {
	pv, err := s.provisioner()
	if err != nil {
		return err
	}
	body, ae := readBody(w, r, maxKeysBody)
	if ae != nil {
		return ae
	}
	req, up, ae := parseLinkWithToken(body)
	if ae != nil {
		return ae
	}
	if err := s.limit(r.Context(), "link_token", s.lim.Register, []byte(s.clientAddr(r))); err != nil {
		return err
	}
	h := sha256.Sum256(req.LinkToken)
	acct, err := pv.UseLinkToken(r.Context(), h[:], s.now())
	if errors.Is(err, store.ErrNotFound) {
		return errInvalidLinkToken
	}
	if err != nil {
		return err
	}
	cred, err := s.newCredential()
	if err != nil {
		return err
	}
	d, err := s.st.AddDevice(r.Context(), acct, store.NewDevice{
		RegistrationID: req.RegistrationID, CredentialHash: CredentialHash(cred), PreKeys: up, Now: s.now(),
	}, s.lim.MaxDevices)
	switch {
	case errors.Is(err, store.ErrDeviceLimit):
		return errDeviceLimit
	case errors.Is(err, store.ErrNotFound):
		return errInvalidLinkToken // the account went away meanwhile
	case err != nil:
		return err
	}
	s.log.Info("server: device linked with a token", "account", s.keys.logID(acct), "device", d.DeviceID)
	s.auditEvent(evDeviceLinked, &acct, d.DeviceID, "via", "link_token")
	writeJSON(w, http.StatusCreated, linkedResponse{AccountID: acct.String(), DeviceID: d.DeviceID, Credential: base64.StdEncoding.EncodeToString(cred)})
	return nil
}

// expireDevices removes linked devices unseen for DeviceExpiry and
// closes their connections on every node.
func (s *Server) expireDevices() {
	x, ok := s.cfg.Store.(store.DeviceExpirer)
	if !ok || s.lim.DeviceExpiry < 0 {
		return
	}
	gone, err := x.ExpireDevices(s.baseCtx, s.now().Add(-s.lim.DeviceExpiry))
	if err != nil {
		if s.baseCtx.Err() == nil {
			s.log.Warn("server: device expiry failed", redactErr(err))
		}
		return
	}
	for _, d := range gone {
		s.auth.forget(authKey{account: d.Account, device: d.DeviceID})
		s.notify(wake.Signal{Key: s.keys.wakeKey(d.Account, d.DeviceID), Takeover: takeoverAll})
		s.auditEvent(evDeviceRemoved, &d.Account, d.DeviceID, "reason", "expired")
	}
	if len(gone) > 0 {
		s.log.Info("server: removed devices unseen for the expiry period", "count", len(gone))
	}
}

// sweepProvisioning deletes expired link tokens, relay messages and
// blobs, and expires stale devices.
func (s *Server) sweepProvisioning() {
	s.sweepBlobs()
	s.expireDevices()
	pv, err := s.provisioner()
	if err != nil {
		return
	}
	if err := pv.SweepProvisioning(s.baseCtx, s.now()); err != nil && s.baseCtx.Err() == nil {
		s.log.Warn("server: provisioning sweep failed", redactErr(err))
	}
}

// maxDeviceName bounds an encrypted device name.
const maxDeviceName = 512

type deviceNameJSON struct {
	Name b64 `json:"name"`
}

func (s *Server) handleSetDeviceName(w http.ResponseWriter, r *http.Request, p principal) error {
	n, ok := s.cfg.Store.(store.DeviceNamer)
	if !ok {
		return errLinkingUnsupported
	}
	dev, okID := parseDeviceID(r.PathValue("device"))
	if !okID {
		return badRequest("invalid_device_id", "The device id in the path must be a positive decimal number.")
	}
	body, ae := readBody(w, r, 4*maxDeviceName)
	if ae != nil {
		return ae
	}
	var req deviceNameJSON
	if ae := decodeStrict(body, &req); ae != nil {
		return ae
	}
	if len(req.Name) == 0 || len(req.Name) > maxDeviceName {
		return badRequest("invalid_field", "Field \"name\" must hold 1 to %d bytes (an encrypted name).", maxDeviceName)
	}
	if err := n.SetDeviceName(r.Context(), p.account, dev, req.Name); errors.Is(err, store.ErrNotFound) {
		return errDeviceNotFound
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
