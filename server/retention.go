package server

import (
	"context"
	"errors"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// Retention: how long the server keeps each kind of data is set in one
// place, Limits (EnvelopeTTL, DedupWindow, BlobTTL, DeviceExpiry,
// InactiveAccounts, AuditRetention), and the sweeper enforces it. docs/COMPLIANCE.md lists the
// defaults.

// inactiveBatch bounds the accounts erased per sweep.
const inactiveBatch = 100

// sweepInactive erases accounts none of whose devices was seen for
// Limits.InactiveAccounts, when that is set.
func (s *Server) sweepInactive() {
	if s.lim.InactiveAccounts <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.baseCtx, time.Minute)
	defer cancel()
	now := s.now()
	ids, err := s.subjectStore().InactiveAccounts(ctx, now.Add(-s.lim.InactiveAccounts), inactiveBatch)
	if err != nil {
		if s.baseCtx.Err() == nil {
			s.log.Warn("server: inactive-account sweep failed", redactErr(err))
		}
		return
	}
	for _, id := range ids {
		if _, err := Erase(ctx, s.cfg.Store, s.cfg.Secret, id, now); errors.Is(err, ErrUnderHold) {
			continue // kept while the hold lasts
		} else if err != nil {
			s.log.Warn("server: erasing an inactive account failed", redactErr(err))
			continue
		}
		s.auditEvent("account_erased", &id, 0, "reason", "inactive")
		s.log.Info("server: inactive account erased", "account", s.keys.logID(id))
	}
}

// pruneAudit drops audit entries older than Limits.AuditRetention, up to
// a signed checkpoint (it runs after the sweep's checkpoint).
func (s *Server) pruneAudit() {
	if s.lim.AuditRetention < 0 {
		return
	}
	p, ok := s.cfg.Store.(store.AuditPruner)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(s.baseCtx, time.Minute)
	defer cancel()
	anchor, n, err := p.PruneAudit(ctx, s.now().Add(-s.lim.AuditRetention))
	if err != nil {
		if s.baseCtx.Err() == nil {
			s.log.Warn("server: audit pruning failed", redactErr(err))
		}
		return
	}
	if n > 0 {
		s.log.Info("server: audit entries past retention pruned", "count", n, "anchor", anchor)
	}
}
