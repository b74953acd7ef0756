package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-e2ee/veil/server/audit"
	"github.com/veil-e2ee/veil/server/store"
)

// The audit log (server/audit): security events, no content, accounts
// pseudonymised. Handlers record with one call after the action
// committed; a failure to record is logged and counted, never turned into
// a failed request (the action already happened).

// auditTimeout bounds one append, detached from the request's context
// (a client hanging up must not lose the record).
const auditTimeout = 10 * time.Second

// maxNoisyPerMinute bounds the repeatable events (rate limits tripped,
// prekeys exhausted, refused recoveries) one node records per minute, so
// a flood of refused requests cannot flood the log; identical events
// within a minute are recorded once.
const maxNoisyPerMinute = 120

// auditState is the server's audit recorder and its flood guard.
type auditState struct {
	rec *audit.Recorder
	// events counts appended entries by type; failed counts appends and
	// checkpoints that failed; dropped counts repeats not recorded.
	events          *prometheus.CounterVec
	failed, dropped prometheus.Counter

	mu     sync.Mutex
	minute int64
	seen   map[string]bool
}

func newAuditState(cfg Config, now func() time.Time, reg *prometheus.Registry) (*auditState, error) {
	k, err := audit.DeriveKeys(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("%w: audit keys: %v", ErrConfig, err)
	}
	a, ok := cfg.Store.(store.AuditLog)
	if !ok {
		return nil, fmt.Errorf("%w: the Store must implement store.AuditLog", ErrConfig)
	}
	st := &auditState{rec: &audit.Recorder{Log: a, Keys: k, Now: now}, seen: map[string]bool{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_audit_events_total", Help: "Entries appended to the audit log by this node, by event type.",
		}, []string{"type"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_audit_failures_total", Help: "Audit appends or checkpoints that failed (the event is missing from the log; see the server log).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_audit_suppressed_total", Help: "Repeated rate-limit, prekey or recovery-refused events not recorded (one per minute each, at most 120 a minute per node).",
		}),
	}
	reg.MustRegister(st.events, st.failed, st.dropped)
	return st, nil
}

// noisy reports whether an event of a repeatable type should be dropped
// (already recorded this minute, or over the per-minute budget).
func (a *auditState) noisy(key string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := now.Unix() / 60
	if m != a.minute {
		a.minute, a.seen = m, map[string]bool{}
	}
	if a.seen[key] || len(a.seen) >= maxNoisyPerMinute {
		return true
	}
	a.seen[key] = true
	return false
}

// AuditKey is the public key (Ed25519, 32 bytes) that signs the audit
// log's checkpoints.
func (s *Server) AuditKey() []byte { return append([]byte(nil), s.aud.rec.Keys.Public...) }

// auditEvent records a security event about acct (nil: none) and device
// (0: none); details are key, value pairs of short non-identifying text.
func (s *Server) auditEvent(typ string, acct *store.AccountID, device uint32, details ...string) {
	ev := audit.Event{Type: typ, Account: acct, Device: device}
	if len(details) > 0 {
		ev.Details = map[string]string{}
		for i := 0; i+1 < len(details); i += 2 {
			ev.Details[details[i]] = details[i+1]
		}
	}
	switch typ {
	case audit.RateLimited, audit.PreKeysExhausted, audit.RecoveryRefused:
		key := typ + "/" + strconv.FormatUint(uint64(device), 10) + "/" + strconv.Quote(hex.EncodeToString(s.aud.pseudonym(acct))) + "/" + strconv.Quote(joinDetails(details))
		if s.aud.noisy(key, s.now()) {
			s.aud.dropped.Inc()
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.baseCtx), auditTimeout)
	defer cancel()
	if _, err := s.aud.rec.Record(ctx, ev); err != nil {
		s.aud.failed.Inc()
		s.log.Error("server: audit record failed", "event", typ, redactErr(err))
		return
	}
	s.aud.events.WithLabelValues(typ).Inc()
}

func (a *auditState) pseudonym(acct *store.AccountID) []byte {
	if acct == nil {
		return nil
	}
	return a.rec.Keys.Pseudonym(*acct)
}

func joinDetails(d []string) string {
	b, _ := json.Marshal(d)
	return string(b)
}

// accountLimits are the rate limits whose first key part is the
// requesting (or, for recovery, the target) account.
var accountLimits = map[string]bool{"lookup": true, "link": true, "prekeys": true, "send": true, "recover_account": true}

// auditRateLimited records a tripped limit: its name, and the account
// when the bucket is an account's (never a client address).
func (s *Server) auditRateLimited(name string, parts [][]byte) {
	var acct *store.AccountID
	if accountLimits[name] && len(parts) > 0 && len(parts[0]) == len(store.AccountID{}) {
		acct = new(store.AccountID)
		copy(acct[:], parts[0])
	}
	s.auditEvent(audit.RateLimited, acct, 0, "limit", name)
}

// auditCheckpoint signs the chain head at each sweep, so the entries
// left unprotected are at most one sweep interval's.
func (s *Server) auditCheckpoint() {
	ctx, cancel := context.WithTimeout(s.baseCtx, auditTimeout)
	defer cancel()
	if _, err := s.aud.rec.Checkpoint(ctx); err != nil && s.baseCtx.Err() == nil {
		s.aud.failed.Inc()
		s.log.Warn("server: audit checkpoint failed", redactErr(err))
	}
}

type auditEntryJSON struct {
	Seq     uint64          `json:"seq"`
	Time    string          `json:"time"`
	Type    string          `json:"type"`
	Device  uint32          `json:"device,omitempty"`
	Details json.RawMessage `json:"details"`
	Hash    string          `json:"hash"`
}

// maxAuditPage bounds one page of GET /v1/accounts/me/audit.
const maxAuditPage = 100

// handleAccountAudit: the audit entries about the caller's own account,
// oldest first, paged by seq (?after=SEQ&limit=N).
func (s *Server) handleAccountAudit(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return badRequest("invalid_query", "Parameter \"after\" must be a sequence number.")
		}
		after = n
	}
	limit := maxAuditPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditPage {
			return badRequest("invalid_query", "Parameter \"limit\" must be between 1 and %d.", maxAuditPage)
		}
		limit = n
	}
	es, err := s.aud.rec.Log.ListAudit(r.Context(), store.AuditQuery{After: after, Account: s.aud.pseudonym(&p.account), Limit: limit})
	if err != nil {
		return err
	}
	out := struct {
		Entries []auditEntryJSON `json:"entries"`
	}{Entries: make([]auditEntryJSON, 0, len(es))}
	for _, e := range es {
		d := json.RawMessage(e.Details)
		if !json.Valid(d) {
			d = json.RawMessage("{}")
		}
		out.Entries = append(out.Entries, auditEntryJSON{Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339), Type: e.Type, Device: e.Device, Details: d, Hash: hex.EncodeToString(e.Hash)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Event types as the handlers' hooks name them.
const (
	evAccountCreated   = audit.AccountCreated
	evDeviceLinked     = audit.DeviceLinked
	evDeviceRemoved    = audit.DeviceRemoved
	evAccountRecovered = audit.AccountRecovered
	evRecoveryRefused  = audit.RecoveryRefused
	evPreKeysExhausted = audit.PreKeysExhausted
)

func countText(n int) string { return strconv.Itoa(n) }
