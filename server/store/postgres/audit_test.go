package postgres_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/veil-e2ee/veil/server/audit"
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

// TestAuditTwoNodes: two stores (two pools, as two server nodes would
// have) append to one database at once; the head row's lock makes one
// chain of them, with checkpoints from both.
func TestAuditTwoNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	k, err := audit.DeriveKeys(bytes.Repeat([]byte("two nodes "), 4))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*postgres.Store
	for range 2 {
		s, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	const perWorker, workers = 20, 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*perWorker)
	for n, s := range nodes {
		rec := &audit.Recorder{Log: s, Keys: k, Every: 10}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				acc := store.AccountID{byte(n), byte(w)}
				for i := range perWorker {
					if _, err := rec.Record(t.Context(), audit.Event{Type: audit.DeviceLinked, Account: &acc, Device: uint32(i + 1)}); err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = 2 * workers * perWorker
	for _, s := range nodes {
		rep, err := audit.Verify(t.Context(), s, k.Public)
		if err != nil || !rep.OK || rep.Entries != total || rep.HeadSeq != total || rep.Checkpoints != total/10 {
			t.Fatalf("Verify = %+v, %v", rep, err)
		}
	}
}

func BenchmarkAuditAppend(b *testing.B) {
	s, err := postgres.Open(b.Context(), pgtest.DSN(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	storetest.BenchAuditAppend(b, s)
}
