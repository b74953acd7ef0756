package server

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/wake"
)

// Data-subject rights: a user (or an admin, `veil admin export|erase`)
// reads everything the server holds about an account, or erases it and
// gets a receipt signed by the server. docs/COMPLIANCE.md.

// ReceiptKey derives the key that signs erasure receipts from the server
// secret (the same on every node).
func ReceiptKey(secret []byte) ed25519.PrivateKey {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("veil server v1 erasure receipts"))
	return ed25519.NewKeyFromSeed(m.Sum(nil))
}

// Receipt says that an account was erased, and what went.
type Receipt struct {
	Version       int    `json:"version"`
	AccountID     string `json:"account_id"`
	ErasedAt      int64  `json:"erased_at"` // Unix seconds, minute precision
	Devices       int    `json:"devices"`
	PreKeys       int    `json:"prekeys"`
	Envelopes     int    `json:"envelopes"`
	EnvelopeBytes int64  `json:"envelope_bytes"`
	Blobs         int    `json:"blobs"`
	Signature     []byte `json:"signature"` // Ed25519 over the fields above (receiptMessage)
}

func receiptMessage(r *Receipt) []byte {
	b := []byte("veil erasure receipt v1\n")
	b = fmt.Appendf(b, "%s\n", r.AccountID)
	for _, v := range []int64{int64(r.Version), r.ErasedAt, int64(r.Devices), int64(r.PreKeys), int64(r.Envelopes), r.EnvelopeBytes, int64(r.Blobs)} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

// VerifyReceipt checks a receipt's signature against the server's
// receipt key (GET /v1/receipts/key).
func VerifyReceipt(pub ed25519.PublicKey, r *Receipt) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, receiptMessage(r), r.Signature)
}

// Erase deletes an account with everything the database holds about it,
// checks that no trace is left, and returns the signed receipt. The
// server, `veil admin erase` and self-service deletion all go through it.
func Erase(ctx context.Context, st store.Store, secret []byte, id store.AccountID, now time.Time) (*Receipt, error) {
	ds, ok := st.(store.DataSubject)
	if !ok {
		return nil, fmt.Errorf("%w: the store cannot erase accounts", ErrConfig)
	}
	if held, err := underHold(ctx, st, id); err != nil {
		return nil, err
	} else if held {
		return nil, ErrUnderHold
	}
	e, err := ds.EraseAccount(ctx, id)
	if err != nil {
		return nil, err
	}
	traces, err := ds.AccountTraces(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(traces) > 0 {
		return nil, fmt.Errorf("server: erasure incomplete: rows remain in %v", traces)
	}
	r := &Receipt{Version: 1, AccountID: id.String(), ErasedAt: now.UTC().Truncate(time.Minute).Unix(),
		Devices: e.Devices, PreKeys: e.PreKeys, Envelopes: e.Envelopes, EnvelopeBytes: e.EnvelopeBytes, Blobs: e.Blobs}
	r.Signature = ed25519.Sign(ReceiptKey(secret), receiptMessage(r))
	return r, nil
}

// Export is everything the database holds about an account, as the
// access right and `veil admin export` report it.
type Export struct {
	AccountID        string         `json:"account_id"`
	Username         string         `json:"username"`
	IdentityKey      b64            `json:"identity_key"`
	CreatedAt        int64          `json:"created_at"`
	SealedFromAnyone bool           `json:"sealed_from_anyone"`
	AccessKeySet     bool           `json:"access_key_set"`
	RecoverySet      bool           `json:"recovery_credential_set"`
	Devices          []ExportDevice `json:"devices"`
	BlobCount        int            `json:"blobs"`
	BlobBytes        int64          `json:"blob_bytes"`
	LinkTokens       int            `json:"link_tokens"`
	// LegalHolds are the disclosed legal holds placed on the account
	// (their states and times; every device of the account was shown
	// them while they were active).
	LegalHolds []ExportHold `json:"legal_holds"`
}

// ExportHold is one legal hold in an Export.
type ExportHold struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	DeviceID    uint32 `json:"compliance_device,omitempty"`
	RequestedAt int64  `json:"requested_at"`
	ActivatedAt int64  `json:"activated_at,omitempty"`
	LiftedAt    int64  `json:"lifted_at,omitempty"`
}

// ExportDevice is one device in an Export.
type ExportDevice struct {
	DeviceID          uint32 `json:"device_id"`
	RegistrationID    uint32 `json:"registration_id"`
	CreatedAt         int64  `json:"created_at"`
	LastSeen          int64  `json:"last_seen"`
	EncryptedName     b64    `json:"encrypted_name,omitempty"`
	OneTimePreKeys    int    `json:"one_time_prekeys"`
	OneTimeKEMPreKeys int    `json:"one_time_kem_prekeys"`
	QueuedEnvelopes   int    `json:"queued_envelopes"`
	QueuedBytes       int64  `json:"queued_bytes"`
	Compliance        bool   `json:"compliance_device,omitempty"`
}

// ExportAccount gathers an account's Export.
func ExportAccount(ctx context.Context, st store.Store, id store.AccountID) (*Export, error) {
	ds, ok := st.(store.DataSubject)
	if !ok {
		return nil, fmt.Errorf("%w: the store cannot export accounts", ErrConfig)
	}
	d, err := ds.ExportAccount(ctx, id)
	if err != nil {
		return nil, err
	}
	x := &Export{AccountID: id.String(), Username: d.Account.Username, IdentityKey: d.Account.IdentityKey, CreatedAt: d.Account.CreatedAt.Unix(),
		SealedFromAnyone: d.SealedFromAnyone, AccessKeySet: d.AccessKeySet, RecoverySet: d.RecoverySet,
		BlobCount: d.Blobs.Count, BlobBytes: d.Blobs.Bytes, LinkTokens: d.LinkTokens, Devices: []ExportDevice{}}
	for _, dev := range d.Devices {
		q, pk := d.Queued[dev.DeviceID], d.PreKeys[dev.DeviceID]
		x.Devices = append(x.Devices, ExportDevice{DeviceID: dev.DeviceID, RegistrationID: dev.RegistrationID, CreatedAt: dev.CreatedAt.Unix(),
			LastSeen: dev.LastSeen.Unix(), EncryptedName: d.DeviceNames[dev.DeviceID], OneTimePreKeys: pk.EC, OneTimeKEMPreKeys: pk.KEM,
			QueuedEnvelopes: q.Count, QueuedBytes: q.Bytes, Compliance: dev.Compliance})
	}
	sort.Slice(x.Devices, func(i, j int) bool { return x.Devices[i].DeviceID < x.Devices[j].DeviceID })
	x.LegalHolds = []ExportHold{}
	if hs, ok := st.(store.LegalHolds); ok {
		list, err := hs.Holds(ctx, &id, false)
		if err != nil {
			return nil, err
		}
		for _, h := range list {
			rec, err := decodeRecord(h)
			if err != nil {
				return nil, err
			}
			x.LegalHolds = append(x.LegalHolds, ExportHold{ID: hex.EncodeToString(h.ID[:]), State: string(h.State), DeviceID: h.DeviceID,
				RequestedAt: rec.RequestedAt, ActivatedAt: rec.ActivatedAt, LiftedAt: rec.LiftedAt})
		}
	}
	return x, nil
}

// handleExport serves the access right: everything held about the
// caller's account.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request, p principal) error {
	x, err := ExportAccount(r.Context(), s.cfg.Store, p.account)
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	if err != nil {
		return err
	}
	s.auditEvent("account_exported", &p.account, p.device, "by", "self")
	writeJSON(w, http.StatusOK, x)
	return nil
}

// handleDeleteAccount serves the erasure right: the caller's account and
// everything about it go; the answer is the signed receipt.
func (s *Server) handleDeleteAccount(w http.ResponseWriter, r *http.Request, p principal) error {
	devs, err := s.st.Devices(r.Context(), p.account)
	if err != nil {
		return err
	}
	rc, err := Erase(r.Context(), s.cfg.Store, s.cfg.Secret, p.account, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	if errors.Is(err, ErrUnderHold) {
		return errAccountUnderHold
	}
	if err != nil {
		return err
	}
	for _, d := range devs {
		s.auth.forget(authKey{account: p.account, device: d.DeviceID})
		s.notify(wake.Signal{Key: s.keys.wakeKey(p.account, d.DeviceID), Takeover: takeoverAll})
	}
	s.auditEvent("account_erased", &p.account, 0, "by", "self")
	s.log.Info("server: account erased", "account", s.keys.logID(p.account))
	writeJSON(w, http.StatusOK, rc)
	return nil
}

func (s *Server) subjectStore() store.DataSubject { return s.cfg.Store.(store.DataSubject) }

type receiptKeyResponse struct {
	PublicKey b64 `json:"public_key"`
}

// handleReceiptKey publishes the key that signs erasure receipts.
func (s *Server) handleReceiptKey(w http.ResponseWriter, r *http.Request, _ principal) error {
	writeJSON(w, http.StatusOK, receiptKeyResponse{PublicKey: []byte(ReceiptKey(s.cfg.Secret).Public().(ed25519.PublicKey))})
	return nil
}
