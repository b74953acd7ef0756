package postgres_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

// TestAuditTamper edits the tables directly, as a database administrator
// could. (The conformance suite's Audit and AuditConcurrent run too.)
func TestAuditTamper(t *testing.T) {
	storetest.AuditTamper(t, func(t *testing.T) (store.Store, storetest.Exec) {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		exec := func(t *testing.T, q string, args ...any) {
			t.Helper()
			n := 0
			var b strings.Builder
			for _, r := range q {
				if r == '?' {
					n++
					fmt.Fprintf(&b, "$%d", n)
					continue
				}
				b.WriteRune(r)
			}
			if _, err := s.Pool().Exec(t.Context(), b.String(), args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return s, exec
	})
}
