package server

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/server/audit"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
)

// TestAuditRetention: the sweeper prunes audit entries older than the
// retention up to a signed checkpoint; the rest still verifies, starting
// from that checkpoint; removing the anchor checkpoint is detected.
func TestAuditRetention(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			opts := []envOpt{withClock(clock), withLimits(func(l *Limits) { l.AuditRetention = 90 * 24 * time.Hour })}
			var dsn string
			if backend == "postgres" {
				dsn = pgtest.DSN(t)
				st, err := postgres.Open(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				opts = append(opts, withStore(st))
			}
			e := newEnv(t, opts...)
			ctx := context.Background()
			log := e.st.(store.AuditLog)
			for range 3 {
				e.register(uniqueName("early"), 1, 1)
			}
			e.srv.sweepOnce() // checkpoint over the early entries
			early, _, _ := log.AuditHead(ctx)
			advance(100 * 24 * time.Hour)
			for range 2 {
				e.register(uniqueName("late"), 1, 1)
			}
			e.srv.sweepOnce() // checkpoint, then prune what is older than 90 days
			entries, err := log.ListAudit(ctx, store.AuditQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) == 0 || entries[0].Seq != early+1 {
				t.Fatalf("after pruning the log starts at %v, want seq %d", entries, early+1)
			}
			pub := ed25519.PublicKey(e.srv.AuditKey())
			rep, err := audit.Verify(ctx, log, pub)
			if err != nil || !rep.OK || rep.PrunedThrough != early {
				t.Fatalf("verify after pruning: %+v, %v", rep, err)
			}
			// Removing the anchor leaves a chain with nothing to start from.
			if backend == "sqlite" {
				db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "veil.db"))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE seq = ?`, int64(early)); err != nil {
					t.Fatal(err)
				}
			} else {
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				if _, err := conn.Exec(ctx, `DELETE FROM audit_checkpoints WHERE seq = $1`, int64(early)); err != nil {
					t.Fatal(err)
				}
			}
			if rep, err := audit.Verify(ctx, log, pub); err != nil || rep.OK {
				t.Fatalf("a log without its anchor verified: %+v, %v", rep, err)
			}
		})
	}
}
