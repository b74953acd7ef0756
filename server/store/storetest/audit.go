package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/audit"
	"github.com/veil-e2ee/veil/server/store"
)

// auditSecret keys the suite's audit log.
var auditSecret = bytes.Repeat([]byte("audit-secret/"), 3)

func auditKeys(t *testing.T) *audit.Keys {
	t.Helper()
	k, err := audit.DeriveKeys(auditSecret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func auditLog(t *testing.T, s store.Store) store.AuditLog {
	t.Helper()
	a, ok := s.(store.AuditLog)
	if !ok {
		t.Fatalf("%T does not implement store.AuditLog", s)
	}
	return a
}

// fillAudit records n events through a Recorder checkpointing every
// `every` entries; odd entries concern account 1, every third account 2.
func fillAudit(t *testing.T, a store.AuditLog, every uint64, n int) *audit.Recorder {
	t.Helper()
	rec := &audit.Recorder{Log: a, Keys: auditKeys(t), Every: every, Now: func() time.Time { return Epoch }}
	one, two := ID(1), ID(2)
	for i := 1; i <= n; i++ {
		ev := audit.Event{Type: audit.RateLimited, Details: map[string]string{"limit": "send", "i": fmt.Sprint(i)}}
		switch {
		case i%3 == 0:
			ev.Account, ev.Type, ev.Device = &two, audit.DeviceLinked, uint32(i)
		case i%2 == 1:
			ev.Account = &one
		}
		e, err := rec.Record(ctx(t), ev)
		if err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
		if e.Seq != uint64(i) {
			t.Fatalf("Record %d got seq %d", i, e.Seq)
		}
	}
	return rec
}

func verifyAudit(t *testing.T, a store.AuditLog) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(ctx(t), a, auditKeys(t).Public)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// testAudit: appends chain with gapless seqs, the head moves with them,
// listing pages by seq and filters by time and account pseudonym,
// checkpoints are stored once per seq, a failing seal stores nothing,
// and everything survives reopening and verifies.
func testAudit(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	a := auditLog(t, s)
	seq, head, err := a.AuditHead(ctx(t))
	if err != nil || seq != 0 || !bytes.Equal(head, audit.Genesis) {
		t.Fatalf("empty head = %d %x, %v", seq, head, err)
	}
	if rep := verifyAudit(t, a); !rep.OK || rep.Entries != 0 {
		t.Fatalf("empty log: %+v", rep)
	}
	fillAudit(t, a, 10, 25)
	seq, head, err = a.AuditHead(ctx(t))
	if err != nil || seq != 25 {
		t.Fatalf("head = %d, %v", seq, err)
	}
	all, err := a.ListAudit(ctx(t), store.AuditQuery{})
	if err != nil || len(all) != 25 {
		t.Fatalf("ListAudit = %d entries, %v", len(all), err)
	}
	prev := audit.Genesis
	for i, e := range all {
		if e.Seq != uint64(i+1) || !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, audit.Hash(prev, &e)) {
			t.Fatalf("entry %d: %+v", i+1, e)
		}
		if !e.Time.Equal(Epoch.Truncate(time.Minute)) {
			t.Fatalf("entry time %v, want the minute of %v", e.Time, Epoch)
		}
		prev = e.Hash
	}
	if !bytes.Equal(head, prev) {
		t.Fatalf("head hash %x, last entry %x", head, prev)
	}
	if e := all[2]; e.Type != audit.DeviceLinked || e.Device != 3 || len(e.Account) != audit.PseudonymLen ||
		string(e.Details) != `{"i":"3","limit":"send"}` {
		t.Fatalf("entry 3 = %+v (details %s)", e, e.Details)
	}
	if all[1].Account != nil {
		t.Fatalf("entry 2 has account %x, want none", all[1].Account)
	}
	page, err := a.ListAudit(ctx(t), store.AuditQuery{After: 20, Limit: 3})
	if err != nil || len(page) != 3 || page[0].Seq != 21 || page[2].Seq != 23 {
		t.Fatalf("page after 20: %+v, %v", page, err)
	}
	k := auditKeys(t)
	mine, err := a.ListAudit(ctx(t), store.AuditQuery{Account: k.Pseudonym(ID(2))})
	if err != nil || len(mine) != 8 {
		t.Fatalf("account 2's entries: %d, %v", len(mine), err)
	}
	for _, e := range mine {
		if e.Seq%3 != 0 || !bytes.Equal(e.Account, k.Pseudonym(ID(2))) {
			t.Fatalf("account 2's entries include %+v", e)
		}
	}
	if none, err := a.ListAudit(ctx(t), store.AuditQuery{Account: k.Pseudonym(ID(3))}); err != nil || len(none) != 0 {
		t.Fatalf("account 3's entries: %+v, %v", none, err)
	}
	if later, err := a.ListAudit(ctx(t), store.AuditQuery{Since: Epoch.Add(time.Minute)}); err != nil || len(later) != 0 {
		t.Fatalf("entries since a minute later: %d, %v", len(later), err)
	}
	if now, err := a.ListAudit(ctx(t), store.AuditQuery{Since: Epoch.Truncate(time.Minute)}); err != nil || len(now) != 25 {
		t.Fatalf("entries since the minute: %d, %v", len(now), err)
	}
	cps, err := a.AuditCheckpoints(ctx(t), 0, 0)
	if err != nil || len(cps) != 2 || cps[0].Seq != 10 || cps[1].Seq != 20 || !bytes.Equal(cps[1].Hash, all[19].Hash) {
		t.Fatalf("checkpoints = %+v, %v", cps, err)
	}
	// A second checkpoint for seq 20 (another node's) keeps the first.
	if err := a.PutAuditCheckpoint(ctx(t), store.AuditCheckpoint{Seq: 20, Hash: all[19].Hash, Signature: []byte("other"), Time: Epoch}); err != nil {
		t.Fatal(err)
	}
	if cps2, _ := a.AuditCheckpoints(ctx(t), 10, 5); len(cps2) != 1 || !bytes.Equal(cps2[0].Signature, cps[1].Signature) {
		t.Fatalf("checkpoint after a duplicate = %+v", cps2)
	}
	// A failing seal stores nothing and leaves the head.
	boom := errors.New("boom")
	_, err = a.AppendAudit(ctx(t), store.AuditEntry{Type: "x", Time: Epoch, Details: []byte("{}")}, func(*store.AuditEntry) error { return boom })
	if err == nil {
		t.Fatal("AppendAudit with a failing seal succeeded")
	}
	if seq, _, _ := a.AuditHead(ctx(t)); seq != 25 {
		t.Fatalf("head after a failed append = %d", seq)
	}
	// Reopen: the chain, its head and checkpoints are durable.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	a = auditLog(t, open(t))
	rec := &audit.Recorder{Log: a, Keys: k, Every: 10, Now: func() time.Time { return Epoch }}
	if cp, err := rec.Checkpoint(ctx(t)); err != nil || cp != 25 {
		t.Fatalf("Checkpoint = %d, %v", cp, err)
	}
	one := ID(1)
	if e, err := rec.Record(ctx(t), audit.Event{Type: audit.AccountCreated, Account: &one, Device: 1}); err != nil || e.Seq != 26 || !bytes.Equal(e.PrevHash, head) {
		t.Fatalf("Record after reopening = %+v, %v", e, err)
	}
	rep := verifyAudit(t, a)
	if !rep.OK || rep.Entries != 26 || rep.Checkpoints != 3 || rep.LastCheckpoint != 25 || rep.Unprotected != 1 {
		t.Fatalf("Verify = %+v", rep)
	}
}

// testAuditConcurrent: appends racing from many goroutines (on
// PostgreSQL, many connections, as several nodes would) form one chain.
func testAuditConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	a := auditLog(t, open(t))
	rec := &audit.Recorder{Log: a, Keys: auditKeys(t), Every: 7, Now: func() time.Time { return Epoch }}
	const workers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each+1)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acc := ID(byte(w + 1))
			for i := range each {
				if _, err := rec.Record(ctx(t), audit.Event{Type: audit.DeviceLinked, Account: &acc, Device: uint32(i + 1)}); err != nil {
					errs <- err
				}
			}
		}()
	}
	// Verifying while appends commit must not report a problem (the
	// head moves on while the entries are read).
	done := make(chan struct{})
	verified := make(chan int)
	go func() {
		n := 0
		defer func() { verified <- n }()
		for {
			select {
			case <-done:
				return
			default:
			}
			rep, err := audit.Verify(ctx(t), a, auditKeys(t).Public)
			if err != nil || !rep.OK {
				errs <- fmt.Errorf("verify during appends: %+v, %v", rep, err)
				return
			}
			n++
		}
	}()
	wg.Wait()
	close(done)
	if n := <-verified; n == 0 {
		t.Log("no verification overlapped the appends")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rep := verifyAudit(t, a)
	if !rep.OK || rep.Entries != workers*each || rep.HeadSeq != workers*each || rep.Checkpoints != workers*each/7 {
		t.Fatalf("after concurrent appends: %+v", rep)
	}
}

// Exec runs a statement directly on a store's database, bypassing the
// store, with ? placeholders (a PostgreSQL caller rewrites them).
type Exec func(t *testing.T, query string, args ...any)

// AuditTamper is the tampering half of the audit conformance: open gives
// a fresh store and a way to write to its database behind its back.
// Every edit, removal, insertion, reordering, rewrite before a checkpoint
// and truncation past a checkpoint must fail verification; a tail after
// the last checkpoint cut together with the head is the documented blind
// spot.
func AuditTamper(t *testing.T, open func(t *testing.T) (store.Store, Exec)) {
	cases := []struct {
		name  string
		kind  string // the problem Verify must report; "" means it verifies
		spoil func(t *testing.T, a store.AuditLog, exec Exec)
	}{
		{"Untouched", "", func(*testing.T, store.AuditLog, Exec) {}},
		{"EditDetails", audit.ProblemAltered, func(t *testing.T, _ store.AuditLog, exec Exec) {
			exec(t, `UPDATE audit_log SET details = ? WHERE seq = 5`, `{"limit":"lookup"}`)
		}},
		{"EditType", audit.ProblemAltered, func(t *testing.T, _ store.AuditLog, exec Exec) {
			exec(t, `UPDATE audit_log SET type = 'account_created' WHERE seq = 22`)
		}},
		{"EditAccount", audit.ProblemAltered, func(t *testing.T, _ store.AuditLog, exec Exec) {
			exec(t, `UPDATE audit_log SET account = NULL WHERE seq = 3`)
		}},
		{"Delete", audit.ProblemMissing, func(t *testing.T, _ store.AuditLog, exec Exec) {
			exec(t, `DELETE FROM audit_log WHERE seq = 7`)
		}},
		{"Reorder", audit.ProblemChainBroken, func(t *testing.T, _ store.AuditLog, exec Exec) {
			exec(t, `UPDATE audit_log SET seq = seq + 1000000 WHERE seq IN (8, 9)`)
			exec(t, `UPDATE audit_log SET seq = 8 WHERE seq = 1000009`)
			exec(t, `UPDATE audit_log SET seq = 9 WHERE seq = 1000008`)
		}},
		{"Insert", audit.ProblemAltered, func(t *testing.T, _ store.AuditLog, exec Exec) {
			exec(t, `UPDATE audit_log SET seq = seq + 1000000 WHERE seq >= 12`)
			exec(t, `UPDATE audit_log SET seq = seq - 999999 WHERE seq > 1000000`)
			exec(t, `INSERT INTO audit_log (seq, minute, type, account, device, details, prev_hash, hash)
				SELECT 12, minute, 'account_created', account, device, details, hash, hash FROM audit_log WHERE seq = 11`)
		}},
		{"RewriteBeforeCheckpoint", audit.ProblemCheckpoint, func(t *testing.T, a store.AuditLog, exec Exec) {
			// Edit entry 5 and recompute every later hash, as someone
			// who knows the format but not the key would.
			exec(t, `UPDATE audit_log SET details = '{}' WHERE seq = 5`)
			rechain(t, a, exec)
		}},
		{"Truncate", audit.ProblemTruncated, func(t *testing.T, a store.AuditLog, exec Exec) {
			exec(t, `DELETE FROM audit_log WHERE seq > 15`)
			exec(t, `UPDATE audit_head SET seq = 15, hash = (SELECT hash FROM audit_log WHERE seq = 15) WHERE id = 1`)
		}},
		{"TruncateTailKeepHead", audit.ProblemHead, func(t *testing.T, _ store.AuditLog, exec Exec) {
			exec(t, `DELETE FROM audit_log WHERE seq > 23`)
		}},
		{"ForgeCheckpoint", audit.ProblemCheckpointSig, func(t *testing.T, _ store.AuditLog, exec Exec) {
			exec(t, `UPDATE audit_checkpoints SET signature = hash WHERE seq = 10`)
		}},
		{"TruncateTailAndHead", "", func(t *testing.T, _ store.AuditLog, exec Exec) {
			// After the last checkpoint (20) nothing is signed: entries
			// cut together with the head go unnoticed (docs/OPERATIONS.md).
			exec(t, `DELETE FROM audit_log WHERE seq > 22`)
			exec(t, `UPDATE audit_head SET seq = 22, hash = (SELECT hash FROM audit_log WHERE seq = 22) WHERE id = 1`)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, exec := open(t)
			a := auditLog(t, s)
			fillAudit(t, a, 10, 25)
			tc.spoil(t, a, exec)
			rep := verifyAudit(t, a)
			if tc.kind == "" {
				if !rep.OK || rep.Err() != nil {
					t.Fatalf("Verify = %+v", rep)
				}
				return
			}
			if rep.OK || !errors.Is(rep.Err(), audit.ErrTampered) {
				t.Fatalf("tampering not detected: %+v", rep)
			}
			if !slices.ContainsFunc(rep.Problems, func(p audit.Problem) bool { return p.Kind == tc.kind }) {
				t.Fatalf("problems %+v, want one of kind %s", rep.Problems, tc.kind)
			}
		})
	}
}

// rechain recomputes every entry's prev_hash and hash and the head.
func rechain(t *testing.T, a store.AuditLog, exec Exec) {
	t.Helper()
	es, err := a.ListAudit(ctx(t), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	prev := audit.Genesis
	for i := range es {
		h := audit.Hash(prev, &es[i])
		exec(t, `UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?`, prev, h, int64(es[i].Seq))
		prev = h
	}
	exec(t, `UPDATE audit_head SET hash = ? WHERE id = 1`, prev)
}

// BenchAuditAppend measures audit appends (one transaction each, the
// head row taken under lock), from parallel goroutines.
func BenchAuditAppend(b *testing.B, s store.Store) {
	a, ok := s.(store.AuditLog)
	if !ok {
		b.Fatalf("%T does not implement store.AuditLog", s)
	}
	k, err := audit.DeriveKeys(auditSecret)
	if err != nil {
		b.Fatal(err)
	}
	rec := &audit.Recorder{Log: a, Keys: k}
	acc := ID(1)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rec.Record(b.Context(), audit.Event{Type: audit.RateLimited, Account: &acc, Details: map[string]string{"limit": "send"}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
