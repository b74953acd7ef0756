package audit

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var secret = []byte("a test secret of at least 32 bytes, for the audit package")

// mem is an in-memory store.AuditLog for the package's own tests.
type mem struct{ Memory }

func (m *mem) AppendAudit(ctx context.Context, e store.AuditEntry, seal func(*store.AuditEntry) error) (store.AuditEntry, error) {
	seq, h, _ := m.AuditHead(ctx)
	e.Seq, e.PrevHash = seq+1, h
	if err := seal(&e); err != nil {
		return store.AuditEntry{}, err
	}
	m.Entries = append(m.Entries, e)
	return e, nil
}

func (m *mem) PutAuditCheckpoint(_ context.Context, c store.AuditCheckpoint) error {
	for _, x := range m.Checkpoints {
		if x.Seq == c.Seq {
			return nil
		}
	}
	m.Checkpoints = append(m.Checkpoints, c)
	return nil
}

func fill(t testing.TB, n int) (*mem, *Keys) {
	t.Helper()
	k, err := DeriveKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	m := &mem{}
	rec := &Recorder{Log: m, Keys: k, Every: 4, Now: func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC) }}
	for i := range n {
		acc := store.AccountID{byte(i % 3)}
		if _, err := rec.Record(t.Context(), Event{Type: DeviceLinked, Account: &acc, Device: uint32(i), Details: map[string]string{"via": "link_token"}}); err != nil {
			t.Fatal(err)
		}
	}
	return m, k
}

func TestKeys(t *testing.T) {
	if _, err := DeriveKeys(secret[:31]); !errors.Is(err, ErrSecret) {
		t.Fatalf("short secret: %v", err)
	}
	k1, _ := DeriveKeys(secret)
	k2, _ := DeriveKeys(append([]byte("x"), secret...))
	a := store.AccountID{1, 2, 3}
	if p := k1.Pseudonym(a); len(p) != PseudonymLen || !bytes.Equal(p, k1.Pseudonym(a)) || bytes.Equal(p, k2.Pseudonym(a)) ||
		bytes.Equal(p, k1.Pseudonym(store.AccountID{1, 2, 4})) || bytes.Contains(p, a[:3]) {
		t.Fatalf("pseudonyms: %x %x", p, k2.Pseudonym(a))
	}
	h := bytes.Repeat([]byte{7}, HashLen)
	c := store.AuditCheckpoint{Seq: 9, Hash: h, Signature: k1.Sign(9, h)}
	if !VerifyCheckpoint(k1.Public, c) || VerifyCheckpoint(k2.Public, c) {
		t.Fatal("checkpoint signature")
	}
	c.Seq = 10
	if VerifyCheckpoint(k1.Public, c) {
		t.Fatal("a checkpoint verified for another seq")
	}
}

func TestRecorderRejects(t *testing.T) {
	m, k := fill(t, 0)
	rec := &Recorder{Log: m, Keys: k}
	for _, ev := range []Event{
		{Type: ""}, {Type: "Account Created"}, {Type: CheckpointLine}, {Type: strings.Repeat("a", 65)},
		{Type: "x", Details: map[string]string{"Bad Key": "v"}},
		{Type: "x", Details: map[string]string{"k": strings.Repeat("v", 65)}},
	} {
		if _, err := rec.Record(t.Context(), ev); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", ev, err)
		}
	}
	if len(m.Entries) != 0 {
		t.Fatalf("%d entries stored", len(m.Entries))
	}
}

func TestVerifyAndExportRoundTrip(t *testing.T) {
	m, k := fill(t, 10)
	if len(m.Checkpoints) != 2 || m.Checkpoints[1].Seq != 8 {
		t.Fatalf("checkpoints %+v", m.Checkpoints)
	}
	rep, err := Verify(t.Context(), m, k.Public)
	if err != nil || !rep.OK || rep.Entries != 10 || rep.LastCheckpoint != 8 || rep.Unprotected != 2 || rep.Err() != nil {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	var buf bytes.Buffer
	n, err := Export(t.Context(), m, &buf)
	if err != nil || n != 10 {
		t.Fatalf("Export = %d, %v", n, err)
	}
	if got := strings.Count(buf.String(), "\n"); got != 12 {
		t.Fatalf("%d lines, want 10 entries and 2 checkpoints", got)
	}
	back, err := ReadExport(&buf)
	if err != nil {
		t.Fatal(err)
	}
	rep2, err := Verify(t.Context(), back, k.Public)
	if err != nil || !rep2.OK || rep2.HeadHash != rep.HeadHash || rep2.Checkpoints != 2 {
		t.Fatalf("Verify(export) = %+v, %v", rep2, err)
	}
	// Entries and time come back exactly.
	if !bytes.Equal(back.Entries[3].Hash, m.Entries[3].Hash) || !back.Entries[3].Time.Equal(m.Entries[3].Time) ||
		!bytes.Equal(back.Entries[3].Details, m.Entries[3].Details) {
		t.Fatalf("entry 4 after the round trip: %+v vs %+v", back.Entries[3], m.Entries[3])
	}
}

// TestVerifyTampering: every kind of change to a log is reported.
func TestVerifyTampering(t *testing.T) {
	cases := []struct {
		name  string
		kind  string
		spoil func(m *mem, k *Keys)
	}{
		{"edit", ProblemAltered, func(m *mem, _ *Keys) { m.Entries[2].Device = 99 }},
		{"edit time", ProblemAltered, func(m *mem, _ *Keys) { m.Entries[2].Time = m.Entries[2].Time.Add(time.Minute) }},
		{"delete", ProblemMissing, func(m *mem, _ *Keys) { m.Entries = append(m.Entries[:4], m.Entries[5:]...) }},
		{"reorder", ProblemOutOfOrder, func(m *mem, _ *Keys) { m.Entries[4], m.Entries[5] = m.Entries[5], m.Entries[4] }},
		{"insert", ProblemOutOfOrder, func(m *mem, _ *Keys) {
			x := m.Entries[2]
			m.Entries = append(m.Entries[:3], append([]store.AuditEntry{x}, m.Entries[3:]...)...)
		}},
		{"truncate", ProblemTruncated, func(m *mem, _ *Keys) { m.Entries = m.Entries[:6] }},
		{"rechain", ProblemCheckpoint, func(m *mem, _ *Keys) {
			m.Entries[1].Details = []byte(`{}`)
			prev := Genesis
			for i := range m.Entries {
				m.Entries[i].PrevHash = prev
				m.Entries[i].Hash = Hash(prev, &m.Entries[i])
				prev = m.Entries[i].Hash
			}
		}},
		{"forged checkpoint", ProblemCheckpointSig, func(m *mem, _ *Keys) { m.Checkpoints[0].Signature[0] ^= 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, k := fill(t, 10)
			tc.spoil(m, k)
			rep, err := Verify(t.Context(), m, k.Public)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || !errors.Is(rep.Err(), ErrTampered) {
				t.Fatalf("not detected: %+v", rep)
			}
			found := false
			for _, p := range rep.Problems {
				found = found || p.Kind == tc.kind
			}
			if !found {
				t.Fatalf("problems %+v, want %s", rep.Problems, tc.kind)
			}
		})
	}
}

func TestReadExportRejects(t *testing.T) {
	for _, in := range []string{
		`{"type":"x","seq":1,"time":"yesterday","hash":""}`,
		`{"type":"x","seq":1,"time":"2026-01-01T00:00:00Z","hash":"zz"}`,
		`{"type":"x","seq":1,"time":"2026-01-01T00:00:00Z","hash":"","extra":1}`,
		`{"type":"x","seq":-1,"time":"2026-01-01T00:00:00Z","hash":""}`,
		`{"type":"checkpoint","seq":1,"time":"2026-01-01T00:00:00Z","hash":"","signature":"q"}`,
		`{"type":"x","seq":1,"time":"2026-01-01T00:00:00Z","hash":""} {}`,
		`not json`,
	} {
		if _, err := ReadExport(strings.NewReader(in)); !errors.Is(err, ErrExport) {
			t.Errorf("%s: %v", in, err)
		}
	}
}

// FuzzReadExport: any input is parsed or refused with ErrExport, never a
// panic; what parses verifies without error (a report, maybe failing).
func FuzzReadExport(f *testing.F) {
	m, k := fill(f, 5)
	var buf bytes.Buffer
	Export(context.Background(), m, &buf)
	f.Add(buf.Bytes())
	f.Add([]byte(`{"type":"checkpoint","seq":1,"time":"2026-01-01T00:00:00Z","hash":"00","signature":"00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		mem, err := ReadExport(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrExport) {
				t.Fatalf("error %v is not ErrExport", err)
			}
			return
		}
		if _, err := Verify(context.Background(), mem, k.Public); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkVerify: verification cost per entry (hash and compare; one
// signature check per 100 entries).
func BenchmarkVerify(b *testing.B) {
	k, _ := DeriveKeys(secret)
	m := &mem{}
	rec := &Recorder{Log: m, Keys: k}
	acc := store.AccountID{1}
	for i := range 10000 {
		rec.Record(context.Background(), Event{Type: RateLimited, Account: &acc, Device: uint32(i), Details: map[string]string{"limit": "send"}})
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := Verify(context.Background(), m, k.Public)
		if err != nil || !rep.OK {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/entry")
}
