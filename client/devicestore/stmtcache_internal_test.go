package devicestore

import (
	"context"
	"testing"
)

// The statement cache prepares what a transaction ran, after the commit,
// and later transactions run the prepared statement with the same
// results.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	s, err := Create(ctx, t.TempDir(), Passphrase("pass"), WithKDFParams(KDFParams{Time: 1, Memory: 64, Threads: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := len(s.stmts.stmts) // statements of Create's own updates
	for i := range 3 {
		if err := s.Update(ctx, func(tx *Tx) error { return tx.SetSetting(ctx, "n", int64(i)) }); err != nil {
			t.Fatal(err)
		}
		s.stmts.mu.Lock()
		n, pending := len(s.stmts.stmts), len(s.stmts.pending)
		s.stmts.mu.Unlock()
		if n != before+1 || pending != 0 {
			t.Fatalf("after update %d: %d statements cached (want %d), %d pending", i, n, before+1, pending)
		}
		if v, ok, err := s.Setting(ctx, "n"); err != nil || !ok || v != int64(i) {
			t.Fatalf("setting = %d, %v, %v; want %d", v, ok, err, i)
		}
	}
}
