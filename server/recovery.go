package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/wake"
)

// Account recovery: a user who lost every device proves the account is
// theirs with a credential derived from their recovery key (the server
// keeps only its SHA-256), and gets one new device in place of all the
// old ones; the account, its username and its identity key stay, so
// contacts' safety numbers do not change. docs/API.md ("Account recovery").

// RecoveryCredentialLen is the length of a recovery credential.
const RecoveryCredentialLen = 32

var errRecoveryDenied = newError(http.StatusUnauthorized, "recovery_denied",
	"The recovery credential does not open this account (or the account has none). Check the recovery key.")

type recoveryRequest struct {
	Credential b64 `json:"credential"`
}

func (s *Server) recoveryStore() store.Recovery { return s.cfg.Store.(store.Recovery) }

// handleSetRecovery stores the hash of the account's recovery credential.
func (s *Server) handleSetRecovery(w http.ResponseWriter, r *http.Request, p principal) error {
	body, ae := readBody(w, r, 1024)
	if ae != nil {
		return ae
	}
	var req recoveryRequest
	if e := decodeStrict(body, &req); e != nil {
		return e
	}
	if len(req.Credential) != RecoveryCredentialLen {
		return badRequest("invalid_field", "Field \"credential\" must be %d bytes.", RecoveryCredentialLen)
	}
	h := sha256.Sum256(req.Credential)
	if err := s.recoveryStore().SetRecoveryHash(r.Context(), p.account, h[:]); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		return err
	}
	s.log.Info("server: recovery credential set", "account", s.keys.logID(p.account))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type recoverRequest struct {
	Credential     b64    `json:"credential"`
	RegistrationID uint32 `json:"registration_id"`
	keysJSON
}

// handleRecover replaces every device of the account with one new device
// when the recovery credential matches.
func (s *Server) handleRecover(w http.ResponseWriter, r *http.Request, _ principal) error {
	acct, ok := parseAccountID(r.PathValue("account"))
	if !ok {
		return badRequest("invalid_account_id", "The account id in the path must be a lowercase UUID.")
	}
	body, ae := readBody(w, r, maxKeysBody)
	if ae != nil {
		return ae
	}
	var req recoverRequest
	if e := decodeStrict(body, &req); e != nil {
		return e
	}
	if len(req.Credential) != RecoveryCredentialLen {
		return badRequest("invalid_field", "Field \"credential\" must be %d bytes.", RecoveryCredentialLen)
	}
	if ae := checkRegistrationID(req.RegistrationID); ae != nil {
		return ae
	}
	up, ae := req.keysJSON.toStore(true)
	if ae != nil {
		return ae
	}
	// A credential has 256 bits: the limit keeps a stream of guesses from
	// filling the logs and the database.
	if err := s.limit(r.Context(), "recover_account", s.lim.Recover, acct[:]); err != nil {
		return err
	}
	if err := s.limit(r.Context(), "recover_client", s.lim.Recover, []byte(s.clientAddr(r))); err != nil {
		return err
	}
	want, err := s.recoveryStore().RecoveryHash(r.Context(), acct)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !found {
		want = dummyHash[:]
	}
	got := sha256.Sum256(req.Credential)
	if subtle.ConstantTimeCompare(got[:], want) != 1 || !found {
		s.log.Warn("server: account recovery refused", "account", s.keys.logID(acct))
		s.auditEvent(evRecoveryRefused, &acct, 0)
		return errRecoveryDenied
	}
	cred, err := s.newCredential()
	if err != nil {
		return err
	}
	d, removed, err := s.recoveryStore().ReplaceDevices(r.Context(), acct, store.NewDevice{
		RegistrationID: req.RegistrationID, CredentialHash: CredentialHash(cred), PreKeys: up, Now: s.now(),
	})
	if errors.Is(err, store.ErrNotFound) {
		return errRecoveryDenied // the account went away meanwhile
	}
	if err != nil {
		return err
	}
	for _, dev := range removed {
		s.auth.forget(authKey{account: acct, device: dev})
		s.notify(wake.Signal{Key: s.keys.wakeKey(acct, dev), Takeover: takeoverAll})
	}
	s.log.Info("server: account recovered", "account", s.keys.logID(acct), "device", d.DeviceID, "devices_removed", len(removed))
	s.auditEvent(evAccountRecovered, &acct, d.DeviceID, "devices_removed", countText(len(removed)))
	writeJSON(w, http.StatusCreated, linkedResponse{AccountID: acct.String(), DeviceID: d.DeviceID, Credential: base64.StdEncoding.EncodeToString(cred)})
	return nil
}
