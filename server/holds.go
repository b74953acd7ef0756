package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/veil-e2ee/veil/legalhold"
	"github.com/veil-e2ee/veil/server/audit"
	"github.com/veil-e2ee/veil/server/store"
)

// Disclosed legal hold (docs/COMPLIANCE.md, "Legal hold"). Administrators
// request and approve a hold with their own keys (`veil admin legal-hold`,
// against the database); the organisation's compliance client then
// registers the hold's compliance device through this server, which
// checks the approvals and adds the device to the account, marked, with
// a certificate signed by the trust root clients pin. Clients encrypt to
// it only because of that certificate, and show the hold in every
// conversation with the account. Lifting the hold removes the device.

// HoldMode switches legal holds on or off.
type HoldMode string

const (
	// HoldsOff (the default): no hold can be activated; requests may be
	// recorded but nothing happens until the mode is HoldsOn.
	HoldsOff HoldMode = "off"
	// HoldsOn: approved holds can be activated.
	HoldsOn HoldMode = "on"
	// HoldsNever disables legal holds for good: the database records it,
	// no server or admin tool will enable them on it again, and clients
	// that see it refuse compliance devices from then on.
	HoldsNever HoldMode = "never"
)

// settingHolds is the server setting that records HoldsNever.
const settingHolds = "legal_hold"

// DefaultHoldApprovals is how many distinct administrators must approve
// a hold (the requester's signature counts as one).
const DefaultHoldApprovals = 2

// maxHoldReason bounds the recorded reason.
const maxHoldReason = 1000

// holdActivationWindow is how far an activation's signed time may be
// from the server's clock.
const holdActivationWindow = 5 * time.Minute

// Errors of legal holds.
var (
	// ErrHoldsDisabled: legal holds are disabled permanently on this
	// database (HoldsNever).
	ErrHoldsDisabled = errors.New("server: legal holds are disabled permanently on this database")
	// ErrUnderHold: the account has a pending or active legal hold, so it
	// cannot be erased until the hold is lifted.
	ErrUnderHold = errors.New("server: the account is under legal hold")
	// ErrHoldState: the hold is not in a state that allows this.
	ErrHoldState = errors.New("server: the hold is not in a state that allows this")
)

// LegalHoldConfig configures legal holds.
type LegalHoldConfig struct {
	// Mode: "" or HoldsOff, HoldsOn, HoldsNever.
	Mode HoldMode
	// Approvals is M, the number of distinct administrators whose
	// approvals activate a hold; 0 means DefaultHoldApprovals, and it is
	// never less than 2.
	Approvals int
	// Admins are the administrators (N) whose approvals count.
	Admins legalhold.Admins
}

func (c *LegalHoldConfig) approvals() int {
	if c.Approvals == 0 {
		return DefaultHoldApprovals
	}
	return c.Approvals
}

// setupHolds checks the legal-hold configuration against the database:
// HoldsNever is recorded there for good, and once recorded, HoldsOn is
// refused.
func setupHolds(ctx context.Context, st store.Store, c *LegalHoldConfig) error {
	switch c.Mode {
	case "", HoldsOff, HoldsOn, HoldsNever:
	default:
		return fmt.Errorf("%w: legal hold mode %q (want off, on or never)", ErrConfig, c.Mode)
	}
	hs, ok := st.(store.LegalHolds)
	if !ok {
		if c.Mode == HoldsOn || c.Mode == HoldsNever {
			return fmt.Errorf("%w: the Store must implement store.LegalHolds for legal holds", ErrConfig)
		}
		return nil
	}
	if c.Mode == HoldsNever {
		return hs.SetSetting(ctx, settingHolds, string(HoldsNever))
	}
	v, err := hs.Setting(ctx, settingHolds)
	if err != nil {
		return err
	}
	if v == string(HoldsNever) {
		if c.Mode == HoldsOn {
			return fmt.Errorf("%w: %v; they cannot be switched on again", ErrConfig, ErrHoldsDisabled)
		}
		c.Mode = HoldsNever
		return nil
	}
	if c.Mode == HoldsOn {
		if c.approvals() < 2 {
			return fmt.Errorf("%w: a legal hold needs at least 2 approvals", ErrConfig)
		}
		if len(c.Admins) < c.approvals() {
			return fmt.Errorf("%w: legal holds need %d approvals but the admins file lists %d administrators", ErrConfig, c.approvals(), len(c.Admins))
		}
	}
	return nil
}

// holdRecord is the server's document about a hold, stored opaque to
// the store in store.Hold.Record.
type holdRecord struct {
	Reason      string         `json:"reason"`
	RequestedBy string         `json:"requested_by"`
	RequestedAt int64          `json:"requested_at"`
	Approvals   []holdApproval `json:"approvals"`
	ActivatedBy string         `json:"activated_by,omitempty"`
	ActivatedAt int64          `json:"activated_at,omitempty"`
	LiftedBy    string         `json:"lifted_by,omitempty"`
	LiftedAt    int64          `json:"lifted_at,omitempty"`
	LiftReason  string         `json:"lift_reason,omitempty"`
	LiftSig     b64            `json:"lift_signature,omitempty"`
}

type holdApproval struct {
	Admin     string `json:"admin"`
	Signature b64    `json:"signature"`
	At        int64  `json:"at"`
}

func decodeRecord(h store.Hold) (*holdRecord, error) {
	var r holdRecord
	if err := json.Unmarshal(h.Record, &r); err != nil {
		return nil, fmt.Errorf("server: stored hold %x: %w", h.ID, err)
	}
	return &r, nil
}

func (r *holdRecord) request(h store.Hold) *legalhold.Request {
	return &legalhold.Request{HoldID: h.ID, Account: h.Account, Reason: r.Reason, RequestedAt: time.Unix(r.RequestedAt, 0)}
}

func (r *holdRecord) approvals() []legalhold.Approval {
	out := make([]legalhold.Approval, 0, len(r.Approvals))
	for _, a := range r.Approvals {
		out = append(out, legalhold.Approval{Admin: a.Admin, Signature: a.Signature})
	}
	return out
}

// HoldInfo is a legal hold as administrators see it.
type HoldInfo struct {
	ID          string   `json:"id"`
	AccountID   string   `json:"account_id"`
	State       string   `json:"state"`
	Reason      string   `json:"reason"`
	RequestedBy string   `json:"requested_by"`
	RequestedAt int64    `json:"requested_at"`
	ApprovedBy  []string `json:"approved_by"`
	// Needed is how many approvals activation takes (0 when unknown).
	Needed      int    `json:"approvals_needed,omitempty"`
	DeviceID    uint32 `json:"device_id,omitempty"`
	ActivatedBy string `json:"activated_by,omitempty"`
	ActivatedAt int64  `json:"activated_at,omitempty"`
	LiftedBy    string `json:"lifted_by,omitempty"`
	LiftedAt    int64  `json:"lifted_at,omitempty"`
	LiftReason  string `json:"lift_reason,omitempty"`
}

func holdInfo(h store.Hold, admins legalhold.Admins, needed int) (*HoldInfo, error) {
	r, err := decodeRecord(h)
	if err != nil {
		return nil, err
	}
	hi := &HoldInfo{ID: hex.EncodeToString(h.ID[:]), AccountID: h.Account.String(), State: string(h.State), Reason: r.Reason,
		RequestedBy: r.RequestedBy, RequestedAt: r.RequestedAt, Needed: needed, DeviceID: h.DeviceID,
		ActivatedBy: r.ActivatedBy, ActivatedAt: r.ActivatedAt, LiftedBy: r.LiftedBy, LiftedAt: r.LiftedAt, LiftReason: r.LiftReason}
	if admins != nil {
		hi.ApprovedBy = admins.Approvers(r.request(h), r.approvals())
	} else {
		for _, a := range r.Approvals {
			hi.ApprovedBy = append(hi.ApprovedBy, a.Admin)
		}
	}
	if hi.ApprovedBy == nil {
		hi.ApprovedBy = []string{}
	}
	return hi, nil
}

// ParseHoldID parses a hold id (32 hex digits).
func ParseHoldID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%q is not a hold id (32 hex digits)", s)
	}
	copy(id[:], b)
	return id, nil
}

// HoldAdmin is what the admin tools need to change holds: the database,
// the server secret (for the audit log), the administrators and the
// approval threshold of the servers that use this database.
type HoldAdmin struct {
	Store     store.Store
	Secret    []byte
	Admins    legalhold.Admins
	Approvals int // 0: DefaultHoldApprovals
	Now       func() time.Time
}

func (a *HoldAdmin) holds() (store.LegalHolds, error) {
	hs, ok := a.Store.(store.LegalHolds)
	if !ok {
		return nil, fmt.Errorf("%w: the store has no legal holds", ErrConfig)
	}
	return hs, nil
}

func (a *HoldAdmin) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *HoldAdmin) needed() int {
	if a.Approvals == 0 {
		return DefaultHoldApprovals
	}
	return a.Approvals
}

func (a *HoldAdmin) record(ctx context.Context, typ string, h store.Hold, details map[string]string) error {
	k, err := audit.DeriveKeys(a.Secret)
	if err != nil {
		return err
	}
	al, ok := a.Store.(store.AuditLog)
	if !ok {
		return fmt.Errorf("%w: the store has no audit log", ErrConfig)
	}
	details["hold"] = hex.EncodeToString(h.ID[:])
	rec := &audit.Recorder{Log: al, Keys: k, Now: a.Now}
	if _, err := rec.Record(ctx, audit.Event{Type: typ, Account: &h.Account, Device: h.DeviceID, Details: details}); err != nil {
		return fmt.Errorf("the hold changed but recording it in the audit log failed: %w", err)
	}
	return nil
}

// begin is what every change starts with: the store's holds, key's
// administrator in the admins file, and (when refuseNever) holds not
// refused for good by "never".
func (a *HoldAdmin) begin(ctx context.Context, key *legalhold.AdminKey, refuseNever bool) (store.LegalHolds, error) {
	hs, err := a.holds()
	if err != nil {
		return nil, err
	}
	if err := a.checkAdmin(key); err != nil {
		return nil, err
	}
	if refuseNever {
		if v, err := hs.Setting(ctx, settingHolds); err != nil {
			return nil, err
		} else if v == string(HoldsNever) {
			return nil, ErrHoldsDisabled
		}
	}
	return hs, nil
}

func (a *HoldAdmin) checkAdmin(key *legalhold.AdminKey) error {
	pub, ok := a.Admins[key.Name]
	if !ok {
		return fmt.Errorf("%w: %q is not in the admins file", legalhold.ErrBadApproval, key.Name)
	}
	if !pub.Equal(key.Public()) {
		return fmt.Errorf("%w: this key is not the one the admins file lists for %s", legalhold.ErrBadApproval, key.Name)
	}
	return nil
}

func validReason(s string) error {
	if strings.TrimSpace(s) == "" || len(s) > maxHoldReason || !utf8.ValidString(s) {
		return fmt.Errorf("a hold needs a reason (1 to %d bytes of text)", maxHoldReason)
	}
	return nil
}

// Request records a new legal hold on account, requested (and so
// approved once) by key's administrator. Nothing is delivered to anyone
// until enough administrators approved it and the compliance device
// registered.
func (a *HoldAdmin) Request(ctx context.Context, key *legalhold.AdminKey, account store.AccountID, reason string) (*HoldInfo, error) {
	if err := validReason(reason); err != nil {
		return nil, err
	}
	hs, err := a.begin(ctx, key, true)
	if err != nil {
		return nil, err
	}
	now := a.now().UTC().Truncate(time.Second)
	h := store.Hold{Account: account, State: store.HoldPending, UpdatedAt: now}
	if _, err := io.ReadFull(rand.Reader, h.ID[:]); err != nil {
		return nil, err
	}
	rec := &holdRecord{Reason: reason, RequestedBy: key.Name, RequestedAt: now.Unix()}
	rec.Approvals = []holdApproval{{Admin: key.Name, Signature: key.Sign(rec.request(h).Message()), At: now.Unix()}}
	if h.Record, err = json.Marshal(rec); err != nil {
		return nil, err
	}
	if err := hs.CreateHold(ctx, h); err != nil {
		return nil, err
	}
	if h, err = hs.Hold(ctx, h.ID); err != nil {
		return nil, err
	}
	if err := a.record(ctx, "legal_hold_requested", h, map[string]string{"admin": key.Name}); err != nil {
		return nil, err
	}
	return holdInfo(h, a.Admins, a.needed())
}

// Approve adds key's administrator's approval to a pending hold.
func (a *HoldAdmin) Approve(ctx context.Context, key *legalhold.AdminKey, id [16]byte) (*HoldInfo, error) {
	hs, err := a.begin(ctx, key, true)
	if err != nil {
		return nil, err
	}
	now := a.now()
	return a.change(ctx, hs, id, "legal_hold_approved", key, func(h store.Hold, rec *holdRecord) error {
		if h.State != store.HoldPending {
			return fmt.Errorf("%w: it is %s", ErrHoldState, h.State)
		}
		for _, ap := range rec.Approvals {
			if ap.Admin == key.Name {
				return fmt.Errorf("%s already approved this hold: a second administrator must approve it", key.Name)
			}
		}
		rec.Approvals = append(rec.Approvals, holdApproval{Admin: key.Name, Signature: key.Sign(rec.request(h).Message()), At: now.Unix()})
		return nil
	}, func(h store.Hold, b []byte) (store.Hold, error) {
		return hs.UpdateHoldRecord(ctx, id, h.Version, b, now)
	})
}

// Lift ends a hold: its compliance device (if it registered) is removed
// with its queue, and senders drop it at their next send. One
// administrator suffices (lifting takes access away).
func (a *HoldAdmin) Lift(ctx context.Context, key *legalhold.AdminKey, id [16]byte, reason string) (*HoldInfo, error) {
	if err := validReason(reason); err != nil {
		return nil, err
	}
	hs, err := a.begin(ctx, key, false)
	if err != nil {
		return nil, err
	}
	now := a.now().UTC().Truncate(time.Second)
	return a.change(ctx, hs, id, "legal_hold_lifted", key, func(h store.Hold, rec *holdRecord) error {
		if h.State == store.HoldLifted {
			return fmt.Errorf("%w: it was lifted already", ErrHoldState)
		}
		rec.LiftedBy, rec.LiftedAt, rec.LiftReason = key.Name, now.Unix(), reason
		rec.LiftSig = key.Sign(legalhold.LiftMessage(h.ID, reason, now))
		return nil
	}, func(h store.Hold, b []byte) (store.Hold, error) { return hs.LiftHold(ctx, id, h.Version, b, now) })
}

// change applies an administrator's change to a hold with compare and
// swap: read the hold, let edit check it and change its record, store
// it with apply (at the version read), and start over if someone else
// changed the hold meanwhile; then record the event typ in the audit log.
func (a *HoldAdmin) change(ctx context.Context, hs store.LegalHolds, id [16]byte, typ string, key *legalhold.AdminKey,
	edit func(store.Hold, *holdRecord) error, apply func(store.Hold, []byte) (store.Hold, error)) (*HoldInfo, error) {
	for {
		h, err := hs.Hold(ctx, id)
		if err != nil {
			return nil, err
		}
		rec, err := decodeRecord(h)
		if err != nil {
			return nil, err
		}
		if err := edit(h, rec); err != nil {
			return nil, err
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		h, err = apply(h, b)
		if errors.Is(err, store.ErrConflict) {
			continue // changed meanwhile: read again
		}
		if err != nil {
			return nil, err
		}
		if err := a.record(ctx, typ, h, map[string]string{"admin": key.Name}); err != nil {
			return nil, err
		}
		return holdInfo(h, a.Admins, a.needed())
	}
}

// List returns the holds, of one account when account is non-nil.
func (a *HoldAdmin) List(ctx context.Context, account *store.AccountID) ([]*HoldInfo, error) {
	hs, err := a.holds()
	if err != nil {
		return nil, err
	}
	list, err := hs.Holds(ctx, account, false)
	if err != nil {
		return nil, err
	}
	out := make([]*HoldInfo, 0, len(list))
	for _, h := range list {
		hi, err := holdInfo(h, a.Admins, a.needed())
		if err != nil {
			return nil, err
		}
		out = append(out, hi)
	}
	return out, nil
}

// underHold reports whether account has a pending or active hold.
func underHold(ctx context.Context, st store.Store, account store.AccountID) (bool, error) {
	hs, ok := st.(store.LegalHolds)
	if !ok {
		return false, nil
	}
	list, err := hs.Holds(ctx, &account, false)
	if err != nil {
		return false, err
	}
	for _, h := range list {
		if h.State != store.HoldLifted {
			return true, nil
		}
	}
	return false, nil
}

// ---- HTTP ----------------------------------------------------------------

var (
	errHoldsOff       = newError(http.StatusForbidden, "legal_hold_disabled", "Legal holds are not enabled on this server.")
	errHoldNotFound   = newError(http.StatusNotFound, "hold_not_found", "There is no legal hold with this id.")
	errHoldNotPending = newError(http.StatusConflict, "hold_not_pending", "This hold is already active or lifted; a compliance device registers only once, for a pending hold.")
	errComplianceDev  = newError(http.StatusForbidden, "compliance_device", "This device is the compliance device of a legal hold; only lifting the hold removes it.")
	// errComplianceReceiver refuses a compliance device every route but
	// those open to receivers (route.auth).
	errComplianceReceiver = newError(http.StatusForbidden, "compliance_device", "This is the compliance device of a legal hold; it can only receive.")
	errAccountUnderHold   = newError(http.StatusConflict, "legal_hold", "The account is under legal hold; it can be erased once the hold is lifted.")
)

// holdCertJSON is a hold certificate as clients receive it (beside a
// device in bundles and device lists, and in the list of holds).
type holdCertJSON struct {
	HoldID      string `json:"hold_id"`
	DeviceID    uint32 `json:"device_id"`
	IdentityKey b64    `json:"identity_key"`
	Since       int64  `json:"since"`
	Signature   b64    `json:"signature"`
	// AccountHash names the account in the public list (GET /v1/holds).
	AccountHash b64 `json:"account_hash,omitempty"`
}

// holdCert signs the certificate of an active hold with the trust root.
func (s *Server) holdCert(h store.Hold) (*holdCertJSON, error) {
	rec, err := decodeRecord(h)
	if err != nil {
		return nil, err
	}
	c := &legalhold.Certificate{Account: h.Account, DeviceID: h.DeviceID, HoldID: h.ID, Since: time.Unix(rec.ActivatedAt, 0), IdentityKey: h.IdentityKey}
	if err := c.Sign(s.cert.root, s.rand); err != nil {
		return nil, err
	}
	return &holdCertJSON{HoldID: hex.EncodeToString(h.ID[:]), DeviceID: h.DeviceID, IdentityKey: h.IdentityKey, Since: rec.ActivatedAt, Signature: c.Signature}, nil
}

// complianceCerts returns the certificates of the account's compliance
// devices, by device id (nil when there are none).
func (s *Server) complianceCerts(ctx context.Context, account store.AccountID) (map[uint32]*holdCertJSON, error) {
	hs, ok := s.cfg.Store.(store.LegalHolds)
	if !ok {
		return nil, nil
	}
	devs, err := hs.ComplianceDevices(ctx, account)
	if err != nil || len(devs) == 0 {
		return nil, err
	}
	out := make(map[uint32]*holdCertJSON, len(devs))
	for dev, id := range devs {
		h, err := hs.Hold(ctx, id)
		if err != nil {
			return nil, err
		}
		if h.State != store.HoldActive {
			continue
		}
		if out[dev], err = s.holdCert(h); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type holdsResponse struct {
	// Policy is off, on or never (disabled permanently).
	Policy string          `json:"policy"`
	Holds  []*holdCertJSON `json:"holds"`
}

// handleHolds answers the public list of active holds: every client
// checks the accounts it talks to against it, so a hold is shown in
// every conversation with the account, not only to those who send.
func (s *Server) handleHolds(w http.ResponseWriter, r *http.Request, _ principal) error {
	out := holdsResponse{Policy: string(s.holdMode()), Holds: []*holdCertJSON{}}
	if hs, ok := s.cfg.Store.(store.LegalHolds); ok {
		list, err := hs.Holds(r.Context(), nil, true)
		if err != nil {
			return err
		}
		for _, h := range list {
			c, err := s.holdCert(h)
			if err != nil {
				return err
			}
			ah := legalhold.AccountHash(h.Account)
			c.AccountHash = ah[:]
			out.Holds = append(out.Holds, c)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) holdMode() HoldMode {
	if s.cfg.LegalHold.Mode == "" {
		return HoldsOff
	}
	return s.cfg.LegalHold.Mode
}

type activateRequest struct {
	Admin       string `json:"admin"`
	SignedAt    int64  `json:"signed_at"`
	Signature   b64    `json:"signature"`
	IdentityKey b64    `json:"identity_key"`
	// CredentialHash is the SHA-256 of the 32-byte credential the
	// compliance device drew for itself: the signed activation binds it,
	// so whoever replays the request gains no way in, and the device's
	// own retry is answered again (idempotent).
	CredentialHash b64    `json:"credential_hash"`
	RegistrationID uint32 `json:"registration_id"`
	keysJSON
}

type activateResponse struct {
	AccountID   string        `json:"account_id"`
	Username    string        `json:"username"`
	DeviceID    uint32        `json:"device_id"`
	Certificate *holdCertJSON `json:"certificate"`
}

func parseActivate(body []byte) (activateRequest, store.PreKeyUpload, *apiError) {
	var req activateRequest
	if e := decodeStrict(body, &req); e != nil {
		return req, store.PreKeyUpload{}, e
	}
	if !legalhold.ValidName(req.Admin) {
		return req, store.PreKeyUpload{}, badRequest("invalid_field", "Field \"admin\" must name an administrator of the admins file.")
	}
	if len(req.IdentityKey) != 33 {
		return req, store.PreKeyUpload{}, badRequest("invalid_field", "Field \"identity_key\" must be a 33-byte public key.")
	}
	if len(req.CredentialHash) != sha256.Size {
		return req, store.PreKeyUpload{}, badRequest("invalid_field", "Field \"credential_hash\" must be the 32-byte SHA-256 of the device's credential.")
	}
	if e := checkRegistrationID(req.RegistrationID); e != nil {
		return req, store.PreKeyUpload{}, e
	}
	up, e := req.keysJSON.toStore(true)
	return req, up, e
}

// handleActivateHold registers the compliance device of an approved
// hold: the organisation's compliance client calls it with an
// administrator's signature.
func (s *Server) handleActivateHold(w http.ResponseWriter, r *http.Request, _ principal) error {
	id, err := ParseHoldID(r.PathValue("hold"))
	if err != nil {
		return badRequest("invalid_hold_id", "The hold id in the path must be 32 hex digits.")
	}
	body, ae := readBody(w, r, maxKeysBody)
	if ae != nil {
		return ae
	}
	req, up, ae := parseActivate(body)
	if ae != nil {
		return ae
	}
	if err := s.limit(r.Context(), "register", s.lim.Register, []byte(s.clientAddr(r))); err != nil {
		return err
	}
	hs, ok := s.cfg.Store.(store.LegalHolds)
	if !ok || s.holdMode() != HoldsOn {
		return errHoldsOff
	}
	cfg := &s.cfg.LegalHold
	at := time.Unix(req.SignedAt, 0)
	if d := s.now().Sub(at); d > holdActivationWindow || d < -holdActivationWindow {
		return newError(http.StatusForbidden, "bad_signature", "The activation was signed more than %v from the server's time; sign it again.", holdActivationWindow)
	}
	if cfg.Admins.Verify(req.Admin, legalhold.ActivationMessage(id, req.CredentialHash, req.IdentityKey, req.RegistrationID, at), req.Signature) != nil {
		return newError(http.StatusForbidden, "bad_signature", "The activation is not signed by that administrator's key in this server's admins file.")
	}
	h, err := hs.Hold(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errHoldNotFound
	} else if err != nil {
		return err
	}
	if h.State == store.HoldActive && subtle.ConstantTimeCompare(h.IdentityKey, req.IdentityKey) == 1 {
		// The same device asking again (its answer was lost), or someone
		// replaying its request: the same answer, which lets in only the
		// holder of the credential.
		d, err := s.st.Device(r.Context(), h.Account, h.DeviceID)
		if err == nil && subtle.ConstantTimeCompare(d.CredentialHash, req.CredentialHash) == 1 {
			return s.answerActivation(w, r, h)
		}
	}
	if h.State != store.HoldPending {
		return errHoldNotPending
	}
	rec, err := decodeRecord(h)
	if err != nil {
		return err
	}
	approvers := cfg.Admins.Approvers(rec.request(h), rec.approvals())
	if len(approvers) < cfg.approvals() {
		return newError(http.StatusForbidden, "hold_not_approved", "The hold has %d of the %d approvals it needs from distinct administrators; another administrator must approve it first.",
			len(approvers), cfg.approvals())
	}
	now := s.now().UTC().Truncate(time.Second)
	rec.ActivatedBy, rec.ActivatedAt = req.Admin, now.Unix()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	h, dev, err := hs.ActivateHold(r.Context(), id, h.Version, b, req.IdentityKey,
		store.NewDevice{RegistrationID: req.RegistrationID, CredentialHash: req.CredentialHash, PreKeys: up, Now: now})
	if errors.Is(err, store.ErrConflict) {
		return errHoldNotPending
	} else if errors.Is(err, store.ErrNotFound) {
		return errHoldNotFound
	} else if err != nil {
		return err
	}
	s.auditEvent("legal_hold_activated", &h.Account, dev.DeviceID, "hold", hex.EncodeToString(id[:]), "admin", req.Admin)
	s.log.Warn("server: legal hold activated; a compliance device joined the account", "account", s.keys.logID(h.Account), "device", dev.DeviceID)
	return s.answerActivation(w, r, h)
}

// answerActivation tells the compliance device of an active hold which
// device it is, with its certificate.
func (s *Server) answerActivation(w http.ResponseWriter, r *http.Request, h store.Hold) error {
	acc, err := s.st.Account(r.Context(), h.Account)
	if err != nil {
		return err
	}
	cert, err := s.holdCert(h)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, activateResponse{AccountID: h.Account.String(), Username: acc.Username, DeviceID: h.DeviceID, Certificate: cert})
	return nil
}
