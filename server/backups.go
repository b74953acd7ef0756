package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/veil-e2ee/veil/server/store"
)

// Users' encrypted backups on the server (optional): one per account, an
// opaque age file the server cannot open. It is fetched back with the
// account's username and recovery credential — the person who lost every
// device has nothing else. docs/API.md ("Backups on the server").

// MaxAccountBackup bounds a backup kept on the server.
const MaxAccountBackup = 64 << 20

func (s *Server) backupStore() store.BackupStore { return s.cfg.Store.(store.BackupStore) }

// handlePutBackup stores (replaces) the caller's account backup.
func (s *Server) handlePutBackup(w http.ResponseWriter, r *http.Request, p principal) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		return errNotOctetStream
	}
	if err := s.limit(r.Context(), "backup", s.lim.Link, p.account[:]); err != nil {
		return err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAccountBackup))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(http.StatusRequestEntityTooLarge, "backup_too_large", "A backup kept on the server is at most %d bytes; keep this one yourself.", MaxAccountBackup)
		}
		return badRequest("body_unreadable", "The request body could not be read.")
	}
	if len(data) == 0 {
		return badRequest("empty_backup", "The backup is empty.")
	}
	if err := s.backupStore().PutAccountBackup(r.Context(), p.account, data, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		return err
	}
	s.auditEvent("backup_stored", &p.account, p.device)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type fetchBackupRequest struct {
	Username   string `json:"username"`
	Credential b64    `json:"credential"`
}

type fetchBackupResponse struct {
	AccountID string `json:"account_id"`
	Backup    b64    `json:"backup"`
}

// handleFetchBackup returns an account's backup to whoever shows its
// username and recovery credential. Guesses are limited per username and
// per client address; a wrong credential, an unknown username and an
// account without a credential get the same answer.
func (s *Server) handleFetchBackup(w http.ResponseWriter, r *http.Request, _ principal) error {
	body, ae := readBody(w, r, 1024)
	if ae != nil {
		return ae
	}
	var req fetchBackupRequest
	if e := decodeStrict(body, &req); e != nil {
		return e
	}
	if len(req.Credential) != RecoveryCredentialLen || req.Username == "" || len(req.Username) > 64 {
		return badRequest("invalid_field", "Fields \"username\" and \"credential\" (%d bytes) are required.", RecoveryCredentialLen)
	}
	uh := sha256.Sum256([]byte(req.Username))
	if err := s.limit(r.Context(), "recover_account", s.lim.Recover, uh[:]); err != nil {
		return err
	}
	if err := s.limit(r.Context(), "recover_client", s.lim.Recover, []byte(s.clientAddr(r))); err != nil {
		return err
	}
	acc, err := s.st.AccountByUsername(r.Context(), req.Username)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	want := dummyHash[:]
	if found {
		h, err := s.recoveryStore().RecoveryHash(r.Context(), acc.ID)
		switch {
		case err == nil:
			want = h
		case errors.Is(err, store.ErrNotFound):
			found = false
		default:
			return err
		}
	}
	got := sha256.Sum256(req.Credential)
	if subtle.ConstantTimeCompare(got[:], want) != 1 || !found {
		if found {
			s.auditEvent("recovery_refused", &acc.ID, 0, "what", "backup")
		}
		return errRecoveryDenied
	}
	data, err := s.backupStore().AccountBackup(r.Context(), acc.ID)
	if errors.Is(err, store.ErrNotFound) {
		return newError(http.StatusNotFound, "backup_not_found", "This account keeps no backup on the server.")
	}
	if err != nil {
		return err
	}
	s.auditEvent("backup_fetched", &acc.ID, 0)
	writeJSON(w, http.StatusOK, fetchBackupResponse{AccountID: acc.ID.String(), Backup: data})
	return nil
}
