package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-e2ee/veil/server/store"
)

// Observability for admins beyond the request metrics: what clients could
// not decrypt (counts by cause, reported by the clients themselves, with
// no content and no identifiers), the sweeper's runs and the audit log's
// length. docs/OPERATIONS.md "What to watch".

// DecryptFailureCauses are the causes clients may report.
var DecryptFailureCauses = []string{
	"bad_mac", "no_session", "reused_keys", "unknown_prekey", "invalid_message",
	"sealed_unreadable", "certificate_invalid", "certificate_expired", "certificate_revoked",
	"no_sender_key", "not_group_member",
}

// maxReportedPerCause bounds one report's count per cause.
const maxReportedPerCause = 10000

type observability struct {
	decryptFailures *prometheus.CounterVec
	sweeps          prometheus.Counter
	auditLength     prometheus.Gauge
	holds           *prometheus.GaugeVec
	causes          map[string]bool
}

func newObservability(reg *prometheus.Registry) *observability {
	o := &observability{
		decryptFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_client_decrypt_failures_total", Help: "Messages clients reported they could not decrypt, by cause (reported counts; no content, no identifiers).",
		}, []string{"cause"}),
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_sweeper_runs_total", Help: "Completed runs of the retention sweeper on this node.",
		}),
		auditLength: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veil_audit_chain_length", Help: "Entries in the audit log's hash chain (its head's sequence number), as of the last sweep.",
		}),
		holds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veil_legal_holds", Help: "Legal holds by state (pending, active), as of the last sweep.",
		}, []string{"state"}),
		causes: map[string]bool{},
	}
	for _, c := range DecryptFailureCauses {
		o.causes[c] = true
		o.decryptFailures.WithLabelValues(c) // present at 0
	}
	o.holds.WithLabelValues("pending")
	o.holds.WithLabelValues("active")
	reg.MustRegister(o.decryptFailures, o.sweeps, o.auditLength, o.holds)
	return o
}

// observeSweep counts a sweeper run and samples the audit chain length.
func (s *Server) observeSweep() {
	s.obs.sweeps.Inc()
	ctx, cancel := context.WithTimeout(s.baseCtx, 10*time.Second)
	defer cancel()
	if seq, _, err := s.aud.rec.Log.AuditHead(ctx); err == nil {
		s.obs.auditLength.Set(float64(seq))
	}
	if hs, ok := s.cfg.Store.(store.LegalHolds); ok {
		if list, err := hs.Holds(ctx, nil, false); err == nil {
			n := map[store.HoldState]int{}
			for _, h := range list {
				n[h.State]++
			}
			s.obs.holds.WithLabelValues("pending").Set(float64(n[store.HoldPending]))
			s.obs.holds.WithLabelValues("active").Set(float64(n[store.HoldActive]))
		}
	}
}

type failureReport struct {
	Counts map[string]int `json:"counts"`
}

// handleDecryptFailures takes a device's counts of messages it could not
// decrypt, by cause. Only the counts are kept, in the metrics; the
// reporting device is not recorded.
func (s *Server) handleDecryptFailures(w http.ResponseWriter, r *http.Request, p principal) error {
	body, ae := readBody(w, r, 4096)
	if ae != nil {
		return ae
	}
	var rep failureReport
	if e := decodeStrict(body, &rep); e != nil {
		return e
	}
	if len(rep.Counts) == 0 {
		return badRequest("invalid_field", "Field \"counts\" must name at least one cause.")
	}
	for c, n := range rep.Counts {
		if !s.obs.causes[c] {
			return badRequest("invalid_field", "Field \"counts\" names an unknown cause; the known ones are listed in docs/API.md.")
		}
		if n < 0 || n > maxReportedPerCause {
			return badRequest("invalid_field", "A count must be between 0 and %d.", maxReportedPerCause)
		}
	}
	if err := s.limit(r.Context(), "report", s.lim.Link, p.account[:], binaryDevice(p.device)); err != nil {
		return err
	}
	for c, n := range rep.Counts {
		s.obs.decryptFailures.WithLabelValues(c).Add(float64(n))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
